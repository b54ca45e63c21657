//! How often a rule may try to heal one run of a job (`max`), and how long
//! it waits between tries (`cooldown`). Pure: time comes in as `Instant`s.
//!
//! "One run" is what the user started: a job that fixups restart is still
//! the same run, or `max` could never be reached. The supervisor calls
//! [`Attempts::reset`] when the user (re)starts the job, and may call it once
//! the job has stayed up a while after its last remedy, as backoff does.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::remedy::Remedy;

/// What to do about a remedy that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run it now; this is attempt number `attempt` (from 1) of its rule.
    Run { attempt: u32 },
    /// The rule's cooldown since its last attempt has not passed: keep the
    /// job stopped and ask again at `until`.
    Wait { until: Instant },
    /// The rule has had its `max` attempts: the job fails, and `reason` says
    /// why ("fixup podman/name-in-use did not heal it after 3 tries").
    GiveUp { reason: String },
}

#[derive(Debug, Clone)]
struct Tries {
    count: u32,
    /// When the last attempt ended, or began if it has not ended.
    last: Instant,
}

/// Attempts per rule within one run of one job instance.
#[derive(Debug, Clone, Default)]
pub struct Attempts {
    rules: BTreeMap<String, Tries>,
}

impl Attempts {
    pub fn new() -> Attempts {
        Attempts::default()
    }

    /// Whether `remedy` may run at `now`.
    pub fn decide(&self, remedy: &Remedy, now: Instant) -> Decision {
        let Some(tries) = self.rules.get(&remedy.rule) else {
            return Decision::Run { attempt: 1 };
        };
        if tries.count >= remedy.max {
            let plural = if tries.count == 1 { "try" } else { "tries" };
            return Decision::GiveUp {
                reason: format!(
                    "fixup {} did not heal it after {} {plural}",
                    remedy.rule, tries.count
                ),
            };
        }
        let until = tries.last + remedy.cooldown;
        if now < until {
            return Decision::Wait { until };
        }
        Decision::Run {
            attempt: tries.count + 1,
        }
    }

    /// The remedy starts at `now`: one more attempt of its rule. Returns the
    /// attempt's number.
    pub fn started(&mut self, remedy: &Remedy, now: Instant) -> u32 {
        let tries = self.rules.entry(remedy.rule.clone()).or_insert(Tries {
            count: 0,
            last: now,
        });
        tries.count += 1;
        tries.last = now;
        tries.count
    }

    /// The remedy ended at `now`, healed or not: its cooldown counts from here.
    pub fn finished(&mut self, remedy: &Remedy, now: Instant) {
        if let Some(tries) = self.rules.get_mut(&remedy.rule) {
            tries.last = now;
        }
    }

    /// Attempts of `rule` so far in this run.
    pub fn tries(&self, rule: &str) -> u32 {
        self.rules.get(rule).map_or(0, |tries| tries.count)
    }

    /// A new run: every rule may try `max` times again.
    pub fn reset(&mut self) {
        self.rules.clear();
    }

    /// How long until `remedy` may run, for a status line; zero when it may now.
    pub fn wait_left(&self, remedy: &Remedy, now: Instant) -> Duration {
        match self.decide(remedy, now) {
            Decision::Wait { until } => until.saturating_duration_since(now),
            _ => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixup::testing::rule;
    use crate::model::Stream;

    fn remedy(name: &str, max: u32, cooldown_secs: u64) -> Remedy {
        let mut rule = rule(name, "x", "true");
        rule.max = max;
        rule.cooldown = Duration::from_secs(cooldown_secs);
        Remedy::new(&rule, "x", Stream::Stderr)
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn runs_max_times_then_gives_up() {
        let t0 = Instant::now();
        let fix = remedy("podman/name-in-use", 3, 0);
        let mut attempts = Attempts::new();
        for n in 1..=3 {
            let now = t0 + secs(n.into());
            assert_eq!(attempts.decide(&fix, now), Decision::Run { attempt: n });
            assert_eq!(attempts.started(&fix, now), n);
            attempts.finished(&fix, now);
        }
        assert_eq!(
            attempts.decide(&fix, t0 + secs(10)),
            Decision::GiveUp {
                reason: "fixup podman/name-in-use did not heal it after 3 tries".into()
            }
        );
        assert_eq!(attempts.tries("podman/name-in-use"), 3);
    }

    #[test]
    fn one_try_is_singular() {
        let t0 = Instant::now();
        let fix = remedy("sshfs/not-empty", 1, 0);
        let mut attempts = Attempts::new();
        attempts.started(&fix, t0);
        assert_eq!(
            attempts.decide(&fix, t0),
            Decision::GiveUp {
                reason: "fixup sshfs/not-empty did not heal it after 1 try".into()
            }
        );
    }

    #[test]
    fn cooldown_counts_from_the_end_of_the_last_attempt() {
        let t0 = Instant::now();
        let fix = remedy("ssh/unreachable", 5, 5);
        let mut attempts = Attempts::new();
        assert_eq!(attempts.decide(&fix, t0), Decision::Run { attempt: 1 });
        attempts.started(&fix, t0);
        // Still running (no `finished` yet): counts from its start.
        assert_eq!(
            attempts.decide(&fix, t0 + secs(1)),
            Decision::Wait {
                until: t0 + secs(5)
            }
        );
        attempts.finished(&fix, t0 + secs(20));
        assert_eq!(
            attempts.decide(&fix, t0 + secs(24)),
            Decision::Wait {
                until: t0 + secs(25)
            }
        );
        assert_eq!(attempts.wait_left(&fix, t0 + secs(24)), secs(1));
        assert_eq!(
            attempts.decide(&fix, t0 + secs(25)),
            Decision::Run { attempt: 2 }
        );
        assert_eq!(attempts.wait_left(&fix, t0 + secs(25)), Duration::ZERO);
    }

    #[test]
    fn rules_count_apart_and_reset_forgets() {
        let t0 = Instant::now();
        let a = remedy("pack/a", 1, 0);
        let b = remedy("pack/b", 1, 60);
        let mut attempts = Attempts::new();
        attempts.started(&a, t0);
        assert!(matches!(attempts.decide(&a, t0), Decision::GiveUp { .. }));
        assert_eq!(
            attempts.decide(&b, t0),
            Decision::Run { attempt: 1 },
            "another rule's cooldown and count"
        );
        attempts.reset();
        assert_eq!(attempts.decide(&a, t0), Decision::Run { attempt: 1 });
        assert_eq!(attempts.tries("pack/a"), 0);
    }
}
