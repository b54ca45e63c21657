//! A remedy that is due: the command to run (captures already substituted),
//! where to run it, how to judge it, and the environment it runs with.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{FixupRule, RemedyPlace};
use crate::model::{ExitInfo, InstanceId, Stream};

use super::quote::substitute;

/// The longest triggering line kept for the log; a remedy does not need a
/// megabyte of output to explain itself.
const LINE_KEPT: usize = 1000;

/// What one matching rule asks for. Owned, so the supervisor can keep it
/// across a cooldown without borrowing the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remedy {
    /// `pack/rule` or `job/N`.
    pub rule: String,
    /// The rule's `run` with every `{name}` replaced by its quoted capture.
    pub command: String,
    pub on: RemedyPlace,
    /// Exit codes that count as healed.
    pub ok_exit: Vec<i32>,
    /// Attempts per run of the job; see `Attempts`.
    pub max: u32,
    /// Least time between the end of one attempt and the start of the next.
    pub cooldown: Duration,
    /// Longest the remedy may run before it is stopped (and fails).
    pub timeout: Duration,
    /// The line that triggered it (cut to 1000 characters).
    pub line: String,
    pub stream: Stream,
    /// The named groups that took part in the match, unquoted.
    pub captures: BTreeMap<String, String>,
}

/// What the remedy needs to spare zap's own processes (the `port` pack uses
/// it; any remedy may). Both are set by the supervisor for the machine the
/// remedy runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    /// zap's PID, when the remedy runs on this machine.
    pub zap_pid: Option<u32>,
    /// Process groups of the job instances zap is running on that machine
    /// (not the one being healed: it is stopped by now).
    pub keep_pgids: Vec<u32>,
}

impl Remedy {
    /// The remedy `rule` asks for when `line` matched it.
    pub(crate) fn new(rule: &FixupRule, line: &str, stream: Stream) -> Remedy {
        let captures: BTreeMap<String, String> = rule
            .when
            .captures(line)
            .map(|caught| {
                rule.when
                    .capture_names()
                    .flatten()
                    .filter_map(|name| {
                        Some((name.to_string(), caught.name(name)?.as_str().to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Remedy {
            rule: rule.name.clone(),
            command: substitute(&rule.run, &captures),
            on: rule.on,
            ok_exit: rule.ok_exit.clone(),
            max: rule.max,
            cooldown: rule.cooldown,
            timeout: rule.timeout,
            line: line.chars().take(LINE_KEPT).collect(),
            stream,
            captures,
        }
    }

    /// Whether the remedy's end counts as healed: an exit code in `ok_exit`.
    /// A signal or an unknown end never does.
    pub fn healed(&self, exit: &ExitInfo) -> bool {
        matches!(exit, ExitInfo::Code(code) if self.ok_exit.contains(code))
    }

    /// The remedy's environment: the job's `env`, then `ZAP_JOB`
    /// (`system.job`), `ZAP_HOST` (the instance's host), `ZAP_RULE`, and the
    /// guard's `ZAP_PID` and `ZAP_KEEP_PGIDS` (space-separated; empty when
    /// there are none). zap's names win over the job's.
    pub fn env(
        &self,
        job_env: &BTreeMap<String, String>,
        instance: &InstanceId,
        guard: &Guard,
    ) -> BTreeMap<String, String> {
        let mut env = job_env.clone();
        env.insert("ZAP_JOB".into(), instance.job.to_string());
        env.insert("ZAP_HOST".into(), instance.host.to_string());
        env.insert("ZAP_RULE".into(), self.rule.clone());
        match guard.zap_pid {
            Some(pid) => env.insert("ZAP_PID".into(), pid.to_string()),
            None => env.remove("ZAP_PID"),
        };
        let groups: Vec<String> = guard.keep_pgids.iter().map(u32::to_string).collect();
        env.insert("ZAP_KEEP_PGIDS".into(), groups.join(" "));
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixup::testing::rule;
    use crate::model::{HostName, JobName};

    #[test]
    fn takes_captures_and_settings_from_the_rule() {
        let rule = rule(
            "podman/name-in-use",
            r#"name "(?P<name>[^"]+)" is in use(?P<unused>!)?"#,
            "podman rm -f {name}",
        );
        let remedy = Remedy::new(&rule, r#"Error: name "web 1" is in use"#, Stream::Stderr);
        assert_eq!(remedy.command, "podman rm -f 'web 1'");
        assert_eq!(remedy.captures.len(), 1);
        assert_eq!(remedy.captures["name"], "web 1");
        assert_eq!((remedy.max, remedy.ok_exit.as_slice()), (3, &[0, 1][..]));
        assert!(remedy.healed(&ExitInfo::Code(1)));
        assert!(!remedy.healed(&ExitInfo::Code(2)));
        assert!(!remedy.healed(&ExitInfo::Signal("KILL".into())));
        assert!(!remedy.healed(&ExitInfo::Unknown));
    }

    #[test]
    fn keeps_a_long_line_short() {
        let rule = rule("job/1", "x", "true");
        let line = "x".repeat(5000);
        assert_eq!(
            Remedy::new(&rule, &line, Stream::Stdout).line.len(),
            LINE_KEPT
        );
    }

    #[test]
    fn environment_names_the_job_and_the_guard() {
        let rule = rule("port/bind", "x", "true");
        let remedy = Remedy::new(&rule, "x", Stream::Stderr);
        let instance = InstanceId {
            job: JobName {
                system: "web".into(),
                job: "api".into(),
            },
            host: HostName("n1".into()),
        };
        let job_env: BTreeMap<String, String> = [("A", "1"), ("ZAP_PID", "99")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let guard = Guard {
            zap_pid: None,
            keep_pgids: vec![12, 34],
        };
        let env = remedy.env(&job_env, &instance, &guard);
        assert_eq!(env["A"], "1");
        assert_eq!(env["ZAP_JOB"], "web.api");
        assert_eq!(env["ZAP_HOST"], "n1");
        assert_eq!(env["ZAP_RULE"], "port/bind");
        assert_eq!(env["ZAP_KEEP_PGIDS"], "12 34");
        assert!(!env.contains_key("ZAP_PID"), "a job cannot claim to be zap");
        let guard = Guard {
            zap_pid: Some(7),
            keep_pgids: Vec::new(),
        };
        let env = remedy.env(&job_env, &instance, &guard);
        assert_eq!(
            (env["ZAP_PID"].as_str(), env["ZAP_KEEP_PGIDS"].as_str()),
            ("7", "")
        );
    }
}
