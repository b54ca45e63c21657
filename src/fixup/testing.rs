//! Rules made by hand for the tests of this module.

use std::time::Duration;

use regex::Regex;

use crate::config::{FixupRule, RemedyPlace, StreamFilter};

/// A rule with the defaults a job-local rule gets, but `ok_exit = [0, 1]`
/// and a 2 s cooldown so tests can tell them from the defaults.
pub fn rule(name: &str, when: &str, run: &str) -> FixupRule {
    FixupRule {
        name: name.to_string(),
        when: Regex::new(when).expect("a valid test regex"),
        stream: StreamFilter::Any,
        exit: Vec::new(),
        run: run.to_string(),
        on: RemedyPlace::Host,
        ok_exit: vec![0, 1],
        max: 3,
        cooldown: Duration::from_secs(2),
        timeout: Duration::from_secs(60),
    }
}
