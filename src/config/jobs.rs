//! One `jobs/SYSTEM.toml` → its [`System`] and [`Job`]s. References to other
//! jobs (`after`) are kept as written: they are resolved once every file is
//! read (see `graph`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use regex::Regex;

use super::fixup::{BUILT_IN_PACKS, read_job_rules};
use super::hosts::Hosts;
use super::names::{check_job_name, is_env_name};
use super::plan::{Backoff, Job, Ready, RestartPolicy, StopScope, StopSpec, System};
use super::reader::{Errors, Node, Spot, Table};
use crate::model::{HostName, JobName, Signal};

const JOB_KEYS: &[&str] = &[
    "host",
    "hosts",
    "steps",
    "env",
    "pty",
    "after",
    "ready",
    "restart",
    "restart_on",
    "restart_every",
    "backoff",
    "max_restarts",
    "log_lines",
    "stop",
    "fixups",
    "fixup",
];

/// Lines of output kept in memory per job instance (the rest is on disk).
const DEFAULT_LOG_LINES: usize = 6000;

/// Matches the `%restart` a job prints to ask for its own restart.
const DEFAULT_RESTART_ON: &str = "%restart";
const DEFAULT_PROBE_EVERY: Duration = Duration::from_secs(1);
const DEFAULT_BACKOFF: Backoff = Backoff {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(60),
};
const DEFAULT_STOP: StopSpec = StopSpec {
    signal: Signal::Term,
    timeout: Duration::from_secs(10),
    scope: StopScope::Tree,
};

/// What a job file may refer to, known before it is read.
pub struct Known<'k> {
    /// `None` when hosts.toml could not be parsed: host names then go
    /// unchecked rather than all reported unknown.
    pub hosts: Option<&'k Hosts>,
    /// Pack names from `jobs/fixups/*.toml`.
    pub packs: &'k BTreeSet<String>,
}

/// A job as read from its file, before `after` is resolved.
pub struct ReadJob {
    pub name: JobName,
    /// `None` when the job has mistakes (already reported).
    pub job: Option<Job>,
    /// `after` as written, each with where it is written.
    pub after: Vec<(String, Spot)>,
}

pub struct ReadSystem {
    /// `None` when `[system]` has mistakes.
    pub system: Option<System>,
    /// In file order.
    pub jobs: Vec<ReadJob>,
}

pub fn read_system(
    doc: &Table<'_, '_>,
    system: &str,
    known: &Known<'_>,
    errors: &mut Errors<'_>,
) -> ReadSystem {
    doc.deny_unknown(&["system", "jobs"], errors);
    let header = match doc.get("system") {
        None => Some((None, true)),
        Some(node) => node.table(errors).and_then(|table| {
            table.deny_unknown(&["description", "autostart"], errors);
            let description = table.read("description", None, |n| {
                n.str(errors).map(|d| Some(d.to_string()))
            });
            let autostart = table.read("autostart", true, |n| n.bool(errors));
            Some((description?, autostart?))
        }),
    };
    let system_value = header.map(|(description, autostart)| System {
        name: system.to_string(),
        description,
        autostart,
    });

    let mut jobs = Vec::new();
    if let Some(table) = doc.get("jobs").and_then(|node| node.table(errors)) {
        for (key, node) in table.entries() {
            let name = JobName {
                system: system.to_string(),
                job: key.get_ref().to_string(),
            };
            let spot = Spot {
                file: node.file,
                span: key.span(),
                key_path: node.path.clone(),
            };
            let name_ok = check_job_name(&name.job, &spot, errors);
            let mut after = Vec::new();
            let job = node.table(errors).and_then(|job_table| {
                let job_table = Table {
                    key_span: key.span(),
                    ..job_table
                };
                read_job(&name, &job_table, known, &mut after, errors)
            });
            jobs.push(ReadJob {
                name,
                job: job.filter(|_| name_ok),
                after,
            });
        }
    }
    ReadSystem {
        system: system_value,
        jobs,
    }
}

/// One `[jobs.NAME]`; `None` when it has mistakes. `after` gets the job's
/// `after` entries as written.
fn read_job(
    name: &JobName,
    table: &Table<'_, '_>,
    known: &Known<'_>,
    after: &mut Vec<(String, Spot)>,
    errors: &mut Errors<'_>,
) -> Option<Job> {
    table.deny_unknown(JOB_KEYS, errors);
    let hosts = read_hosts(table, known, errors);
    let steps = table.require("steps", errors, read_steps);
    let env = table.read("env", BTreeMap::new(), |n| read_env(&n, errors));
    let pty = table.read("pty", false, |n| n.bool(errors));
    let after_ok = table.read("after", (), |n| {
        for (item, text) in n.strings(errors)? {
            after.push((text.to_string(), item.spot()));
        }
        Some(())
    });
    let ready = table.read("ready", Ready::Exit(0), |n| read_ready(&n, errors));
    let restart = table.read("restart", RestartPolicy::Never, |n| {
        n.choice(
            &[
                ("never", RestartPolicy::Never),
                ("on-failure", RestartPolicy::OnFailure),
                ("always", RestartPolicy::Always),
            ],
            errors,
        )
    });
    let restart_on = match table.get("restart_on") {
        Some(node) => node.regex(errors),
        None => Regex::new(DEFAULT_RESTART_ON).ok(),
    };
    let restart_every = table.read("restart_every", None, |n| {
        n.positive_duration(errors).map(Some)
    });
    let backoff = table.read("backoff", DEFAULT_BACKOFF, |n| read_backoff(&n, errors));
    let max_restarts = table.read("max_restarts", None, |n| {
        n.integer_in(0..=i64::from(u32::MAX), errors).map(Some)
    });
    let log_lines = table.read("log_lines", DEFAULT_LOG_LINES, |n| {
        n.integer_in(1..=10_000_000, errors)
            .and_then(|lines: i64| usize::try_from(lines).ok())
    });
    let stop = table.read("stop", DEFAULT_STOP, |n| read_stop(&n, errors));
    let fixup_packs = table.read("fixups", Vec::new(), |n| read_packs(&n, known, errors));
    let fixup_rules = table.read("fixup", Vec::new(), |n| read_job_rules(&n, errors));

    after_ok?;
    Some(Job {
        name: name.clone(),
        hosts: hosts?,
        steps: steps?,
        env: env?,
        pty: pty?,
        after: Vec::new(),
        ready: ready?,
        restart: restart?,
        restart_on: restart_on?,
        restart_every: restart_every?,
        backoff: backoff?,
        max_restarts: max_restarts?,
        log_lines: log_lines?,
        stop: stop?,
        fixup_packs: fixup_packs?,
        fixup_rules: fixup_rules?,
    })
}

/// `host = "n1"` or `hosts = ["n1", "n2"]`: exactly one of them.
fn read_hosts(
    table: &Table<'_, '_>,
    known: &Known<'_>,
    errors: &mut Errors<'_>,
) -> Option<Vec<HostName>> {
    let named: Vec<(Node<'_, '_>, &str)> = match (table.get("host"), table.get("hosts")) {
        (None, None) => {
            errors.without_value(&table.spot(), "a job needs host or hosts");
            return None;
        }
        (Some(_), Some(hosts)) => {
            errors.at(&hosts.spot(), "give host or hosts, not both");
            return None;
        }
        (Some(host), None) => vec![(host.clone(), host.non_blank_str("host", errors)?)],
        (None, Some(hosts)) => {
            let named = hosts.strings(errors)?;
            if named.is_empty() {
                errors.at(&hosts.spot(), "hosts cannot be empty");
                return None;
            }
            named
        }
    };
    let mut ok = true;
    let mut seen = BTreeSet::new();
    for (node, name) in &named {
        if !seen.insert(*name) {
            errors.at(&node.spot(), format!("host \"{name}\" is listed twice"));
            ok = false;
        } else if known.hosts.is_some_and(|hosts| !hosts.knows(name)) {
            errors.at(&node.spot(), format!("unknown host \"{name}\""));
            ok = false;
        }
    }
    ok.then(|| {
        named
            .iter()
            .map(|(_, name)| HostName(name.to_string()))
            .collect()
    })
}

fn read_steps(node: Node<'_, '_>, errors: &mut Errors<'_>) -> Option<Vec<String>> {
    let steps = node.strings(errors)?;
    if steps.is_empty() {
        errors.at(&node.spot(), "a job needs at least one step");
        return None;
    }
    let mut all = Some(Vec::with_capacity(steps.len()));
    for (item, step) in steps {
        if step.trim().is_empty() {
            errors.at(&item.spot(), "a step cannot be empty");
            all = None;
        } else if let Some(all) = all.as_mut() {
            all.push(step.to_string());
        }
    }
    all
}

fn read_env(node: &Node<'_, '_>, errors: &mut Errors<'_>) -> Option<BTreeMap<String, String>> {
    let table = node.table(errors)?;
    let mut env = Some(BTreeMap::new());
    for (key, value) in table.entries() {
        let name = key.get_ref();
        if !is_env_name(name) {
            let spot = Spot {
                span: key.span(),
                ..value.spot()
            };
            errors.at(&spot, format!("bad variable name \"{name}\": use letters, digits and '_', not starting with a digit"));
            env = None;
        }
        match (value.str(errors), env.as_mut()) {
            (Some(text), Some(env)) => {
                env.insert(name.to_string(), text.to_string());
            }
            _ => env = None,
        }
    }
    env
}

/// `{ exit = N }`, `{ log = "regex" }` or `{ probe = "cmd", every = "1s" }`.
fn read_ready(node: &Node<'_, '_>, errors: &mut Errors<'_>) -> Option<Ready> {
    let table = node.table(errors)?;
    table.deny_unknown(&["exit", "log", "probe", "every"], errors);
    let kinds: Vec<(&str, Node<'_, '_>)> = ["exit", "log", "probe"]
        .into_iter()
        .filter_map(|key| Some((key, table.get(key)?)))
        .collect();
    let every = table.get("every");
    if let (Some(every), None) = (&every, table.get("probe")) {
        errors.at(&every.spot(), "\"every\" goes with \"probe\"");
    }
    match kinds.as_slice() {
        [] => {
            errors.at(&node.spot(), "ready needs one of exit, log or probe");
            None
        }
        [(key, kind)] => match *key {
            "exit" => kind.exit_code(errors).map(Ready::Exit),
            "log" => kind.regex(errors).map(Ready::Log),
            _ => {
                let command = kind.non_blank_str("probe", errors);
                let every = match every {
                    Some(every) => every.positive_duration(errors),
                    None => Some(DEFAULT_PROBE_EVERY),
                };
                Some(Ready::Probe {
                    command: command?.to_string(),
                    every: every?,
                })
            }
        },
        [_, (_, second), ..] => {
            errors.at(&second.spot(), "give only one of exit, log or probe");
            None
        }
    }
}

fn read_backoff(node: &Node<'_, '_>, errors: &mut Errors<'_>) -> Option<Backoff> {
    let table = node.table(errors)?;
    table.deny_unknown(&["initial", "max"], errors);
    let initial = table.read("initial", DEFAULT_BACKOFF.initial, |n| {
        n.positive_duration(errors)
    });
    let max = table.read("max", DEFAULT_BACKOFF.max, |n| n.positive_duration(errors));
    let backoff = Backoff {
        initial: initial?,
        max: max?,
    };
    if backoff.initial > backoff.max {
        errors.at(&node.spot(), "backoff.initial is longer than backoff.max");
        return None;
    }
    Some(backoff)
}

fn read_stop(node: &Node<'_, '_>, errors: &mut Errors<'_>) -> Option<StopSpec> {
    let table = node.table(errors)?;
    table.deny_unknown(&["signal", "timeout", "scope"], errors);
    let signal = table.read("signal", DEFAULT_STOP.signal, |n| {
        let name = n.str(errors)?;
        let signal = match name.strip_prefix("SIG").unwrap_or(name) {
            "TERM" => Some(Signal::Term),
            "INT" => Some(Signal::Int),
            "HUP" => Some(Signal::Hup),
            "KILL" => Some(Signal::Kill),
            _ => None,
        };
        if signal.is_none() {
            errors.at(&n.spot(), format!("unknown signal \"{name}\" (expected one of: \"TERM\", \"INT\", \"HUP\", \"KILL\")"));
        }
        signal
    });
    let timeout = table.read("timeout", DEFAULT_STOP.timeout, |n| n.duration(errors));
    let scope = table.read("scope", DEFAULT_STOP.scope, |n| {
        let name = n.str(errors)?;
        let scope = match name {
            "tree" => Some(StopScope::Tree),
            "group" => Some(StopScope::Group),
            _ => None,
        };
        if scope.is_none() {
            errors.at(
                &n.spot(),
                format!("unknown stop scope \"{name}\" (expected one of: \"tree\", \"group\")"),
            );
        }
        scope
    });
    Some(StopSpec {
        signal: signal?,
        timeout: timeout?,
        scope: scope?,
    })
}

fn read_packs(
    node: &Node<'_, '_>,
    known: &Known<'_>,
    errors: &mut Errors<'_>,
) -> Option<Vec<String>> {
    let names = node.strings(errors)?;
    let mut all = Some(Vec::with_capacity(names.len()));
    for (item, name) in names {
        if BUILT_IN_PACKS.contains(&name) || known.packs.contains(name) {
            if let Some(all) = all.as_mut() {
                all.push(name.to_string());
            }
        } else {
            let mut choices: Vec<&str> = BUILT_IN_PACKS.to_vec();
            choices.extend(known.packs.iter().map(String::as_str));
            errors.at(
                &item.spot(),
                format!(
                    "unknown fixup pack \"{name}\" (known: {})",
                    choices.join(", ")
                ),
            );
            all = None;
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_restart_pattern_compiles() {
        let regex = Regex::new(DEFAULT_RESTART_ON).ok();
        assert!(regex.is_some_and(|regex| regex.is_match("please %restart now")));
    }
}
