//! The packs compiled into zap, and the test cases every pack carries: lines
//! of real output and what the pack's rules must make of them.
//!
//! The config layer reads the built-in packs exactly as it reads a user's
//! `jobs/fixups/NAME.toml`, so they obey the same format and checks.

use std::collections::BTreeMap;

use crate::config::{Diagnostic, FixupPack, FixupRule, PackExpect, PackTest, StreamFilter};
use crate::model::Stream;

use super::remedy::Remedy;
use super::rules::{claimant, first_match};

/// A test case of a pack that its rules do not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFailure {
    pub pack: String,
    /// Its position among the pack's cases, from 1.
    pub case: usize,
    pub line: String,
    /// What went wrong, in one or a few lines.
    pub problem: String,
    /// Where the case is written (file, line, column), with the problem as
    /// its message: what `zap check` prints.
    pub at: Diagnostic,
}

/// Every failing case of `pack`; empty when the pack proves itself.
pub fn test_pack(pack: &FixupPack) -> Vec<TestFailure> {
    pack.tests
        .iter()
        .enumerate()
        .filter_map(|(index, case)| {
            let problem = run_case(pack, case).err()?;
            let mut at = case.at.clone();
            at.message = format!(
                "fixup pack \"{}\": test case {} fails: {problem}",
                pack.name,
                index + 1
            );
            Some(TestFailure {
                pack: pack.name.clone(),
                case: index + 1,
                line: case.line.clone(),
                problem,
                at,
            })
        })
        .collect()
}

/// Judges one case as a job listing only this pack would: `Ok` with the
/// remedy that fired (if any) when the case holds, else what is wrong.
pub fn run_case(pack: &FixupPack, case: &PackTest) -> Result<Option<Remedy>, String> {
    let rules: Vec<&FixupRule> = pack.rules.iter().collect();
    let fired = first_match(&rules, &case.line, case.stream, case.exit);
    match (&case.expect, fired) {
        (PackExpect::Nothing, None) => Ok(None),
        (PackExpect::Nothing, Some(remedy)) => Err(format!(
            "expected no rule to fire, but {} did: {}",
            remedy.rule, remedy.command
        )),
        (PackExpect::Fires { rule, .. }, None) => Err(why_silent(pack, case, rule)),
        (
            PackExpect::Fires {
                rule,
                run,
                captures,
            },
            Some(remedy),
        ) => {
            let wanted = format!("{}/{rule}", pack.name);
            if remedy.rule != wanted {
                return Err(format!(
                    "expected {wanted} to fire, but {} claims the line first",
                    remedy.rule
                ));
            }
            if let Some(run) = run
                && *run != remedy.command
            {
                return Err(format!(
                    "{wanted} produces a different remedy\n  got:      {}\n  expected: {run}",
                    remedy.command
                ));
            }
            check_captures(&remedy, captures)?;
            Ok(Some(remedy))
        }
    }
}

/// Why no rule fired for a case that expected `rule` to.
fn why_silent(pack: &FixupPack, case: &PackTest, rule: &str) -> String {
    let wanted = format!("{}/{rule}", pack.name);
    let rules: Vec<&FixupRule> = pack.rules.iter().collect();
    let found = rules.iter().find(|r| r.name == wanted);
    match (claimant(&rules, &case.line, case.stream), found) {
        (_, None) => format!("the pack has no rule {wanted}"),
        (Some(other), _) if other.name != wanted => {
            format!(
                "expected {wanted} to fire, but {} claims the line first",
                other.name
            )
        }
        (Some(_), Some(found)) => {
            let codes: Vec<String> = found.exit.iter().map(i32::to_string).collect();
            let given = case.exit.map_or("gives no exit code".to_string(), |code| {
                format!("gives exit = {code}")
            });
            format!(
                "{wanted} matches the line but fires only when the job exits with {}; the case {given}",
                codes.join(" or ")
            )
        }
        (None, Some(found)) if found.when.is_match(&case.line) => format!(
            "{wanted} matches the line but does not listen to {} (stream = {})",
            stream_name(case.stream),
            filter_name(found.stream)
        ),
        (None, Some(_)) => {
            format!("expected {wanted} to fire, but its \"when\" does not match the line")
        }
    }
}

fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
    }
}

fn filter_name(filter: StreamFilter) -> &'static str {
    match filter {
        StreamFilter::Stdout => "stdout",
        StreamFilter::Stderr => "stderr",
        StreamFilter::Any => "any",
    }
}

/// Each expected capture has the expected value; a group that took no part
/// counts as empty, as it is substituted.
fn check_captures(remedy: &Remedy, expected: &BTreeMap<String, String>) -> Result<(), String> {
    for (name, want) in expected {
        let got = remedy.captures.get(name).map_or("", String::as_str);
        if got != want {
            return Err(format!(
                "{} captures {name} = {got:?}, expected {want:?}",
                remedy.rule
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{BUILT_IN_PACKS, Plan, SourceFile, load_sources};

    pub(crate) fn plan(files: &[(&str, &str)]) -> Plan {
        let sources: Vec<SourceFile> = files
            .iter()
            .map(|(path, text)| SourceFile::new(*path, *text))
            .collect();
        match load_sources(std::path::Path::new("/srv/cfg"), &sources) {
            Ok(plan) => plan,
            Err(errors) => panic!("{errors}"),
        }
    }

    #[test]
    fn built_in_files_are_the_built_in_packs() {
        let names: Vec<&str> = crate::config::BUILT_IN_PACK_SOURCES
            .iter()
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(names, BUILT_IN_PACKS);
    }

    #[test]
    fn every_built_in_pack_proves_itself() {
        let plan = plan(&[]);
        for name in BUILT_IN_PACKS {
            let pack = &plan.fixup_packs[*name];
            let failures = test_pack(pack);
            assert!(failures.is_empty(), "{name}: {failures:#?}");
            assert!(pack.source.is_some(), "{name} cites no tool version");
            // Every rule is shown firing on a real message, and every pack
            // shows a line it must leave alone.
            for rule in &pack.rules {
                let short = rule.name.trim_start_matches(&format!("{name}/"));
                let covered = pack.tests.iter().any(
                    |case| matches!(&case.expect, PackExpect::Fires { rule, .. } if rule == short),
                );
                assert!(covered, "{} has no test case", rule.name);
            }
            assert!(
                pack.tests
                    .iter()
                    .any(|case| case.expect == PackExpect::Nothing),
                "{name} has no case that must not fire"
            );
        }
    }

    const BROKEN: &str = r#"name = "vm"
description = "A pack whose cases are wrong."

[[rule]]
name = "down"
when = 'host (?P<host>\S+) is down'
stream = "stderr"
run = "virsh start {host}"

[[rule]]
name = "gone"
when = 'host (?P<host>\S+) is gone'
exit = 255
run = "virsh start {host}"

[[test]]
line = "host nico is down"
rule = "down"
run = "virsh start nicolas"

[[test]]
line = "host nico is down"
stream = "stdout"
rule = "down"
run = "virsh start nico"

[[test]]
line = "host nico is gone"
exit = 1
rule = "gone"
captures = { host = "nico" }

[[test]]
line = "host nico is down"
match = false

[[test]]
line = "host nico is down"
rule = "down"
captures = { host = "nicolas" }

[[test]]
line = "host nico is down and host n2 is gone"
exit = 255
rule = "gone"
captures = { host = "n2" }

[[test]]
line = "host nico is down"
rule = "down"
run = "virsh start nico"
"#;

    #[test]
    fn failing_cases_say_what_and_where() {
        let plan = plan(&[("jobs/fixups/vm.toml", BROKEN)]);
        let failures = test_pack(&plan.fixup_packs["vm"]);
        let seen: Vec<(usize, usize, &str)> = failures
            .iter()
            .map(|f| (f.case, f.at.line, f.problem.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    1,
                    17,
                    "vm/down produces a different remedy\n  got:      virsh start nico\n  expected: virsh start nicolas"
                ),
                (
                    2,
                    22,
                    "vm/down matches the line but does not listen to stdout (stream = stderr)"
                ),
                (
                    3,
                    28,
                    "vm/gone matches the line but fires only when the job exits with 255; the case gives exit = 1"
                ),
                (
                    4,
                    34,
                    "expected no rule to fire, but vm/down did: virsh start nico"
                ),
                (
                    5,
                    38,
                    "vm/down captures host = \"nico\", expected \"nicolas\""
                ),
                (
                    6,
                    43,
                    "expected vm/gone to fire, but vm/down claims the line first"
                ),
            ]
        );
        let first = &failures[0].at;
        assert_eq!(first.file, std::path::Path::new("jobs/fixups/vm.toml"));
        assert_eq!((first.column, first.key_path.as_str()), (8, "test[0].line"));
        assert!(
            first.to_string().starts_with(
                "error: fixup pack \"vm\": test case 1 fails: vm/down produces a different remedy\n"
            ),
            "{first}"
        );
        assert!(
            first.to_string().contains("--> jobs/fixups/vm.toml:17:8"),
            "{first}"
        );
    }
}
