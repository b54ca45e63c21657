//! Fixup rules as the config writes them (`[[jobs.NAME.fixup]]`, and a
//! pack's `[[rule]]`s with its `[defaults]`), the names of the packs a job
//! may list, and the `{capture}` placeholders of a remedy.

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;

use super::plan::{FixupRule, RemedyPlace, StreamFilter};
use super::reader::{Errors, Node, Spot, Table};

/// The packs zap ships with, in the order `zap fixups list` shows them
/// (their files: [`super::pack::BUILT_IN_PACK_SOURCES`]).
pub const BUILT_IN_PACKS: &[&str] = &["podman", "sshfs", "port", "ssh"];

pub(super) const RULE_KEYS: &[&str] = &[
    "when", "stream", "exit", "run", "on", "ok_exit", "max", "cooldown", "timeout",
];
/// What `[defaults]` may give every rule of its pack: all but `name` and `when`.
const DEFAULTS_KEYS: &[&str] = &[
    "stream", "exit", "run", "on", "ok_exit", "max", "cooldown", "timeout",
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
            table.deny_unknown(RULE_KEYS, errors);
            read_rule(
                &table,
                format!("job/{}", index + 1),
                &RuleDefaults::none(),
                errors,
            )
        })
        .collect();
    rules.into_iter().collect()
}

/// A value a pack's `[defaults]` gives its rules.
enum Inherit<T> {
    /// Not in `[defaults]`: the rule's own default applies.
    Absent,
    /// In `[defaults]` but wrong (already reported there, once).
    Bad,
    Given(T),
}

/// A pack's `[defaults]`, read once so that a mistake there is reported once
/// rather than for every rule that inherits it.
pub(super) struct RuleDefaults {
    stream: Inherit<StreamFilter>,
    exit: Inherit<Vec<i32>>,
    run: Inherit<(String, Spot)>,
    on: Inherit<RemedyPlace>,
    ok_exit: Inherit<Vec<i32>>,
    max: Inherit<u32>,
    cooldown: Inherit<Duration>,
    timeout: Inherit<Duration>,
}

impl RuleDefaults {
    pub(super) fn none() -> Self {
        Self::filled(false)
    }

    /// For a `[defaults]` that is not even a table: rules that lean on it
    /// fail quietly instead of each reporting a missing `run`.
    pub(super) fn unusable() -> Self {
        Self::filled(true)
    }

    fn filled(bad: bool) -> Self {
        fn one<T>(bad: bool) -> Inherit<T> {
            if bad { Inherit::Bad } else { Inherit::Absent }
        }
        Self {
            stream: one(bad),
            exit: one(bad),
            run: one(bad),
            on: one(bad),
            ok_exit: one(bad),
            max: one(bad),
            cooldown: one(bad),
            timeout: one(bad),
        }
    }

    pub(super) fn read(table: &Table<'_, '_>, errors: &mut Errors<'_>) -> Self {
        fn inherit<T>(
            table: &Table<'_, '_>,
            key: &str,
            errors: &mut Errors<'_>,
            read: impl FnOnce(&Node<'_, '_>, &mut Errors<'_>) -> Option<T>,
        ) -> Inherit<T> {
            match table.get(key) {
                None => Inherit::Absent,
                Some(node) => read(&node, errors).map_or(Inherit::Bad, Inherit::Given),
            }
        }
        table.deny_unknown(DEFAULTS_KEYS, errors);
        Self {
            stream: inherit(table, "stream", errors, read_stream),
            exit: inherit(table, "exit", errors, |n, e| n.exit_codes(e)),
            run: inherit(table, "run", errors, read_run),
            on: inherit(table, "on", errors, read_on),
            ok_exit: inherit(table, "ok_exit", errors, |n, e| n.exit_codes(e)),
            max: inherit(table, "max", errors, read_max),
            cooldown: inherit(table, "cooldown", errors, |n, e| n.duration(e)),
            timeout: inherit(table, "timeout", errors, |n, e| n.positive_duration(e)),
        }
    }
}

/// The rule's own value of `key`, else the pack's default, else `default`
/// (`None`: the key is required).
fn pick<T: Clone>(
    table: &Table<'_, '_>,
    key: &str,
    inherited: &Inherit<T>,
    default: Option<T>,
    errors: &mut Errors<'_>,
    read: impl FnOnce(&Node<'_, '_>, &mut Errors<'_>) -> Option<T>,
) -> Option<T> {
    if let Some(node) = table.get(key) {
        return read(&node, errors);
    }
    match (inherited, default) {
        (Inherit::Given(value), _) => Some(value.clone()),
        (Inherit::Bad, _) => None,
        (Inherit::Absent, Some(default)) => Some(default),
        (Inherit::Absent, None) => {
            errors.without_value(&table.spot(), format!("missing key \"{key}\""));
            None
        }
    }
}

fn read_stream(node: &Node<'_, '_>, errors: &mut Errors<'_>) -> Option<StreamFilter> {
    node.choice(
        &[
            ("stdout", StreamFilter::Stdout),
            ("stderr", StreamFilter::Stderr),
            ("any", StreamFilter::Any),
        ],
        errors,
    )
}

fn read_on(node: &Node<'_, '_>, errors: &mut Errors<'_>) -> Option<RemedyPlace> {
    node.choice(
        &[("host", RemedyPlace::Host), ("local", RemedyPlace::Local)],
        errors,
    )
}

fn read_max(node: &Node<'_, '_>, errors: &mut Errors<'_>) -> Option<u32> {
    node.integer_in(1..=i64::from(u32::MAX), errors)
}

/// `run`, with every placeholder standing where the shell takes it as a
/// word of its own (see [`quoting_problem`]).
fn read_run(node: &Node<'_, '_>, errors: &mut Errors<'_>) -> Option<(String, Spot)> {
    let run = node.non_blank_str("run", errors)?;
    let spot = node.spot();
    let mut ok = true;
    for (range, placeholder) in placeholders(run) {
        if let Some(problem) = quoting_problem(run, range.start) {
            ok = false;
            let at = placeholder_spot(errors.text(spot.file), &spot, run, range);
            errors.at(
                &at,
                format!(
                    "placeholder \"{{{placeholder}}}\" is {problem}: write it bare, zap substitutes the capture as one quoted word"
                ),
            );
        }
    }
    ok.then(|| (run.to_string(), spot))
}

/// One rule; `None` when it has mistakes (already reported). Unknown keys
/// are the caller's to check: packs allow `name` too.
pub(super) fn read_rule(
    table: &Table<'_, '_>,
    name: String,
    defaults: &RuleDefaults,
    errors: &mut Errors<'_>,
) -> Option<FixupRule> {
    let when = table.require("when", errors, |n, errors| n.regex(errors));
    let stream = pick(
        table,
        "stream",
        &defaults.stream,
        Some(StreamFilter::Any),
        errors,
        read_stream,
    );
    let exit = pick(
        table,
        "exit",
        &defaults.exit,
        Some(Vec::new()),
        errors,
        |n, e| n.exit_codes(e),
    );
    let run = pick(table, "run", &defaults.run, None, errors, read_run);
    let on = pick(
        table,
        "on",
        &defaults.on,
        Some(RemedyPlace::Host),
        errors,
        read_on,
    );
    let ok_exit = pick(
        table,
        "ok_exit",
        &defaults.ok_exit,
        Some(vec![0]),
        errors,
        |n, e| n.exit_codes(e),
    );
    let max = pick(
        table,
        "max",
        &defaults.max,
        Some(DEFAULT_MAX),
        errors,
        read_max,
    );
    let cooldown = pick(
        table,
        "cooldown",
        &defaults.cooldown,
        Some(Duration::ZERO),
        errors,
        |n, e| n.duration(e),
    );
    let timeout = pick(
        table,
        "timeout",
        &defaults.timeout,
        Some(DEFAULT_TIMEOUT),
        errors,
        |n, e| n.positive_duration(e),
    );

    let when = when?;
    let (run, run_spot) = run?;
    let inherited = table.get("run").is_none();
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
            let whose = if inherited {
                format!("rule \"{name}\" takes run from [defaults], but its \"when\"")
            } else {
                "\"when\"".to_string()
            };
            let spot = placeholder_spot(errors.text(run_spot.file), &run_spot, &run, range);
            errors.at(
                &spot,
                format!(
                    "unknown placeholder \"{{{placeholder}}}\": {whose} has no capture group \"{placeholder}\" ({have})"
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

/// Why a placeholder starting at byte `at` of `run` would not become one
/// literal word, or `None` when it would.
///
/// zap quotes a capture as a word of its own (`'x y'`). Inside quotes that
/// word's quotes are mere characters and the shell still expands `$(…)`
/// within double quotes; a here-document's text and `$(( ))` are expanded
/// or evaluated again. So in all of these a hostile capture could become
/// code. A comment is harmless. This is a lexer for the common cases, not a
/// shell parser: it errs on the side of refusing.
fn quoting_problem(run: &str, at: usize) -> Option<&'static str> {
    #[derive(PartialEq)]
    enum In {
        Code,
        Single,
        Double,
        Comment,
    }
    let bytes = run.as_bytes();
    let mut state = In::Code;
    let mut heredoc = false;
    let mut arithmetic = 0usize;
    let mut i = 0;
    while i < at.min(bytes.len()) {
        let byte = bytes[i];
        match state {
            In::Code => match byte {
                b'\\' => i += 1,
                b'\'' => state = In::Single,
                b'"' => state = In::Double,
                b'#' if i == 0
                    || matches!(
                        bytes[i - 1],
                        b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')'
                    ) =>
                {
                    state = In::Comment;
                }
                b'<' if bytes.get(i + 1) == Some(&b'<') => {
                    heredoc = true;
                    i += 1;
                }
                b'$' if run[i..].starts_with("$((") => {
                    arithmetic += 1;
                    i += 2;
                }
                b')' if arithmetic > 0 && bytes.get(i + 1) == Some(&b')') => {
                    arithmetic -= 1;
                    i += 1;
                }
                _ => {}
            },
            In::Single => {
                if byte == b'\'' {
                    state = In::Code;
                }
            }
            In::Double => match byte {
                b'\\' => i += 1,
                b'"' => state = In::Code,
                _ => {}
            },
            In::Comment => {
                if byte == b'\n' {
                    state = In::Code;
                }
            }
        }
        i += 1;
    }
    match state {
        In::Comment => None,
        In::Single => Some("inside single quotes"),
        In::Double => Some("inside double quotes"),
        In::Code if heredoc => Some("after a here-document (<<), whose text the shell expands"),
        In::Code if arithmetic > 0 => Some("inside $(( )), which evaluates its text"),
        In::Code => None,
    }
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
    use crate::config::{SourceFile, load_sources};

    /// The errors (column, message) of a job-local rule whose `run` is `run`,
    /// written on line 6 as a `'''` string.
    fn run_errors(run: &str) -> Vec<(usize, String)> {
        let text = format!(
            "[jobs.build]\nhost = \"local\"\nsteps = [\"make\"]\n[[jobs.build.fixup]]\nwhen = '(?P<name>\\w+) (?P<n>\\d+)'\nrun = '''{run}'''\n"
        );
        let sources = [SourceFile::new("jobs/web.toml", text)];
        match load_sources(std::path::Path::new("/srv/cfg"), &sources) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .diagnostics()
                .iter()
                .map(|d| (d.column, d.message.clone()))
                .collect(),
        }
    }

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

    #[test]
    fn placeholders_must_stand_as_words_of_their_own() {
        for run in [
            "podman rm -f {name}",
            "podman run --name={name} x",
            "x={name}; echo \"$x\"",
            "# note: {name} is quoted by zap\necho {name}",
            "echo 'it''s' {name} \"$HOME\" {n}",
            "echo \\\" {name}",
            "echo $((1 + 2)) {n}",
            "echo ${#name} {n}",
        ] {
            assert_eq!(run_errors(run), [], "{run}");
        }
        let why = |column: usize, problem: &str| {
            vec![(
                column,
                format!(
                    "placeholder \"{{name}}\" is {problem}: write it bare, zap substitutes the capture as one quoted word"
                ),
            )]
        };
        assert_eq!(
            run_errors("echo \"{name}\""),
            why(16, "inside double quotes")
        );
        assert_eq!(
            run_errors("sh -c 'rm {name}'"),
            why(20, "inside single quotes")
        );
        assert_eq!(
            run_errors("echo \"a \\\" {name}\""),
            why(21, "inside double quotes")
        );
        assert_eq!(
            run_errors("echo $(( {name} + 1 ))"),
            why(19, "inside $(( )), which evaluates its text")
        );
        assert_eq!(
            run_errors("cat <<EOF\n{name}\nEOF"),
            why(
                1,
                "after a here-document (<<), whose text the shell expands"
            )
        );
    }
}
