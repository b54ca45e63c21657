//! Fixup rules as the config writes them (`[[jobs.NAME.fixup]]`), the names
//! of the packs a job may list, and the `{capture}` placeholders of a remedy.

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;

use super::plan::{FixupRule, RemedyPlace, StreamFilter};
use super::reader::{Errors, Node, Spot, Table};

/// The packs zap ships with.
pub const BUILT_IN_PACKS: &[&str] = &["podman", "sshfs", "port", "ssh"];

const RULE_KEYS: &[&str] = &[
    "when", "stream", "exit", "run", "on", "ok_exit", "max", "cooldown", "timeout",
];

const DEFAULT_MAX: u32 = 3;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The `{name}` placeholders of a remedy, with their byte ranges in `run`
/// (braces included). A name is `[A-Za-z_][A-Za-z0-9_]*`; `${NAME}` is the
/// shell's own syntax and `{print $1}` is not a name, so both stay as written.
pub fn placeholders(run: &str) -> Vec<(Range<usize>, &str)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(open) = run[from..].find('{').map(|at| from + at) {
        from = open + 1;
        if run[..open].ends_with('$') {
            continue;
        }
        let Some(close) = run[from..].find('}').map(|at| from + at) else {
            break;
        };
        let name = &run[from..close];
        let mut chars = name.chars();
        let is_name = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if is_name {
            found.push((open..close + 1, name));
            from = close + 1;
        }
    }
    found
}

/// `[[jobs.NAME.fixup]]`: the job-local rules, named `job/1`, `job/2`, …
pub fn read_job_rules(node: &Node<'_, '_>, errors: &mut Errors<'_>) -> Option<Vec<FixupRule>> {
    let items = node.array(errors)?;
    let rules: Vec<Option<FixupRule>> = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let table = item.table(errors)?;
            read_rule(&table, format!("job/{}", index + 1), errors)
        })
        .collect();
    rules.into_iter().collect()
}

/// One rule; `None` when it has mistakes (already reported).
pub fn read_rule(
    table: &Table<'_, '_>,
    name: String,
    errors: &mut Errors<'_>,
) -> Option<FixupRule> {
    table.deny_unknown(RULE_KEYS, errors);
    let when = table.require("when", errors, |n, errors| n.regex(errors));
    let stream = table.read("stream", StreamFilter::Any, |n| {
        n.choice(
            &[
                ("stdout", StreamFilter::Stdout),
                ("stderr", StreamFilter::Stderr),
                ("any", StreamFilter::Any),
            ],
            errors,
        )
    });
    let exit = table.read("exit", Vec::new(), |n| n.exit_codes(errors));
    let run = table.require("run", errors, |n, errors| {
        let run = n.non_blank_str("run", errors)?;
        Some((run.to_string(), n.spot()))
    });
    let on = table.read("on", RemedyPlace::Host, |n| {
        n.choice(
            &[("host", RemedyPlace::Host), ("local", RemedyPlace::Local)],
            errors,
        )
    });
    let ok_exit = table.read("ok_exit", vec![0], |n| n.exit_codes(errors));
    let max = table.read("max", DEFAULT_MAX, |n| {
        n.integer_in(1..=i64::from(u32::MAX), errors)
    });
    let cooldown = table.read("cooldown", Duration::ZERO, |n| n.duration(errors));
    let timeout = table.read("timeout", DEFAULT_TIMEOUT, |n| n.positive_duration(errors));

    let when = when?;
    let (run, run_spot) = run?;
    let captures: BTreeSet<&str> = when.capture_names().flatten().collect();
    let mut placeholders_ok = true;
    for (range, placeholder) in placeholders(&run) {
        if !captures.contains(placeholder) {
            placeholders_ok = false;
            let have = if captures.is_empty() {
                "it has none".to_string()
            } else {
                let names: Vec<&str> = captures.iter().copied().collect();
                format!("it has {}", names.join(", "))
            };
            let spot = placeholder_spot(errors.text(run_spot.file), &run_spot, &run, range);
            errors.at(
                &spot,
                format!(
                    "unknown placeholder \"{{{placeholder}}}\": \"when\" has no capture group \"{placeholder}\" ({have})"
                ),
            );
        }
    }
    if !placeholders_ok {
        return None;
    }
    Some(FixupRule {
        name,
        when,
        stream: stream?,
        exit: exit?,
        run,
        on: on?,
        ok_exit: ok_exit?,
        max: max?,
        cooldown: cooldown?,
        timeout: timeout?,
    })
}

/// Points at the placeholder itself when the string is written without
/// escapes (so that its bytes are the file's bytes); else at the whole string.
fn placeholder_spot(text: &str, run_spot: &Spot, run: &str, range: Range<usize>) -> Spot {
    let raw = text.get(run_spot.span.clone()).unwrap_or("");
    let quote = if raw.starts_with("'''") || raw.starts_with("\"\"\"") {
        3
    } else {
        1
    };
    let inner = raw.get(quote..raw.len().saturating_sub(quote));
    if inner == Some(run) {
        let start = run_spot.span.start + quote;
        Spot {
            span: start + range.start..start + range.end,
            ..run_spot.clone()
        }
    } else {
        run_spot.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_named_placeholders_only() {
        let run = "podman rm -f {name} && echo ${HOME} {1} {print $1} {_x2}";
        let names: Vec<&str> = placeholders(run)
            .into_iter()
            .map(|(_, name)| name)
            .collect();
        assert_eq!(names, ["name", "_x2"]);
        let (range, _) = &placeholders(run)[0];
        assert_eq!(&run[range.clone()], "{name}");
        assert!(placeholders("a { b").is_empty());
        assert_eq!(placeholders("{{a}}").len(), 1);
    }
}
