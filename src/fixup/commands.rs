//! `zap fixups list`, `zap fixups test [PACK]`, and the pack check `zap check`
//! runs. Each takes the plan and writers and returns the exit code, so the
//! CLI only wires them.

use std::io::{self, Write};

use crate::config::{BUILT_IN_PACKS, Diagnostic, FixupPack, PackOrigin, Plan, StreamFilter};

use super::packs::{run_case, test_pack};

/// Exit codes, as `cli` defines them.
const OK: u8 = 0;
const FAILED: u8 = 1;
const USAGE: u8 = 2;

/// Columns of the overview a line of output is cut to.
const SHOWN: usize = 70;

/// Every pack's failing test cases, as diagnostics with file and line, for
/// `zap check` to print (and exit 2 on) along with the config's own.
pub fn check_packs(plan: &Plan) -> Vec<Diagnostic> {
    packs_in_order(plan)
        .into_iter()
        .flat_map(test_pack)
        .map(|failure| failure.at)
        .collect()
}

/// `zap fixups list`: every pack (built in first, then the user's), where it
/// comes from, what it is for, which jobs use it, and its rules.
pub fn list_command(plan: &Plan, out: &mut dyn Write) -> u8 {
    list(plan, out).map_or(FAILED, |()| OK)
}

fn list(plan: &Plan, out: &mut dyn Write) -> io::Result<()> {
    for (position, pack) in packs_in_order(plan).into_iter().enumerate() {
        if position > 0 {
            writeln!(out)?;
        }
        let users: Vec<String> = plan
            .jobs
            .iter()
            .filter(|job| job.fixup_packs.contains(&pack.name))
            .map(|job| job.name.to_string())
            .collect();
        let used = if users.is_empty() {
            "used by no job".to_string()
        } else {
            format!("used by {}", users.join(", "))
        };
        writeln!(
            out,
            "{} ({}): {}, {}, {used}",
            pack.name,
            origin(pack),
            count(pack.rules.len(), "rule"),
            count(pack.tests.len(), "test case")
        )?;
        for line in pack.description.trim().lines() {
            writeln!(out, "  {}", line.trim_end())?;
        }
        if let Some(source) = &pack.source {
            writeln!(out, "  messages from: {source}")?;
        }
        let width = pack
            .rules
            .iter()
            .map(|rule| rule.name.len())
            .max()
            .unwrap_or(0);
        for rule in &pack.rules {
            writeln!(
                out,
                "  {:width$}  {}  {}",
                rule.name,
                filters(rule),
                first_line(&rule.run)
            )?;
        }
    }
    Ok(())
}

/// `zap fixups test [PACK]`: runs every test case of PACK (or of every pack),
/// one line per case; 0 when all pass, 1 when any fails, 2 for an unknown
/// pack.
pub fn test_command(
    plan: &Plan,
    pack: Option<&str>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let packs = match pack {
        None => packs_in_order(plan),
        Some(name) => match plan.fixup_packs.get(name) {
            Some(pack) => vec![pack],
            None => {
                let known: Vec<&str> = packs_in_order(plan)
                    .iter()
                    .map(|pack| pack.name.as_str())
                    .collect();
                let _ = writeln!(
                    err,
                    "zap: unknown fixup pack \"{name}\" (known: {})",
                    known.join(", ")
                );
                return USAGE;
            }
        },
    };
    match test(&packs, out) {
        Ok(0) => OK,
        Ok(_) | Err(_) => FAILED,
    }
}

/// Prints every case; returns how many failed.
fn test(packs: &[&FixupPack], out: &mut dyn Write) -> io::Result<usize> {
    let (mut passed, mut failed) = (0, 0);
    for pack in packs {
        writeln!(out, "{} ({})", pack.name, origin(pack))?;
        if pack.tests.is_empty() {
            writeln!(out, "  no test cases: add [[test]] lines of real output")?;
        }
        for (index, case) in pack.tests.iter().enumerate() {
            let number = index + 1;
            match run_case(pack, case) {
                Ok(fired) => {
                    passed += 1;
                    let outcome = fired
                        .map_or_else(|| "nothing fires".to_string(), |remedy| remedy.rule.clone());
                    writeln!(out, "  ok   {number:>2}  {outcome}: {}", cut(&case.line))?;
                }
                Err(problem) => {
                    failed += 1;
                    writeln!(out, "  FAIL {number:>2}  {}", cut(&case.line))?;
                    writeln!(
                        out,
                        "          --> {}:{}",
                        case.at.file.display(),
                        case.at.line
                    )?;
                    for line in problem.lines() {
                        writeln!(out, "          {line}")?;
                    }
                }
            }
        }
    }
    writeln!(out, "{passed} passed, {failed} failed")?;
    Ok(failed)
}

/// Built-in packs in their usual order, then the user's by name.
fn packs_in_order(plan: &Plan) -> Vec<&FixupPack> {
    let mut packs: Vec<&FixupPack> = BUILT_IN_PACKS
        .iter()
        .filter_map(|name| plan.fixup_packs.get(*name))
        .collect();
    packs.extend(
        plan.fixup_packs
            .values()
            .filter(|pack| !BUILT_IN_PACKS.contains(&pack.name.as_str())),
    );
    packs
}

fn origin(pack: &FixupPack) -> String {
    match &pack.origin {
        PackOrigin::BuiltIn => "built in".to_string(),
        PackOrigin::File(path) if BUILT_IN_PACKS.contains(&pack.name.as_str()) => {
            format!("{}, replacing the built-in pack", path.display())
        }
        PackOrigin::File(path) => path.display().to_string(),
    }
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `stderr, exit 125, local`: what narrows a rule and where it runs.
fn filters(rule: &crate::config::FixupRule) -> String {
    let mut parts = vec![
        match rule.stream {
            StreamFilter::Any => "any stream",
            StreamFilter::Stdout => "stdout",
            StreamFilter::Stderr => "stderr",
        }
        .to_string(),
    ];
    if !rule.exit.is_empty() {
        let codes: Vec<String> = rule.exit.iter().map(i32::to_string).collect();
        parts.push(format!("exit {}", codes.join("|")));
    }
    if rule.on == crate::config::RemedyPlace::Local {
        parts.push("runs here".to_string());
    }
    format!("[{}]", parts.join(", "))
}

/// A remedy's first line of code (comments and blank lines skipped), with
/// `…` when there is more.
fn first_line(run: &str) -> String {
    let mut lines = run
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'));
    let first = lines.next().unwrap_or("");
    if lines.next().is_some() {
        format!("{first} …")
    } else {
        first.to_string()
    }
}

fn cut(line: &str) -> String {
    if line.chars().count() <= SHOWN {
        return line.to_string();
    }
    let mut short: String = line.chars().take(SHOWN - 1).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixup::packs::tests::plan;

    const VM: &str = r#"name = "vm"
description = "Start the VM."

[[rule]]
name = "down"
when = 'host (?P<host>\S+) is down'
on = "local"
run = "virsh start {host}"

[[test]]
line = "host nico is down"
rule = "down"
run = "virsh start nico"

[[test]]
line = "host nico is down"
rule = "down"
run = "virsh start nicolas"
"#;

    fn listed(plan: &Plan) -> String {
        let mut out = Vec::new();
        assert_eq!(list_command(plan, &mut out), 0);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn tested(plan: &Plan, pack: Option<&str>) -> (u8, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = test_command(plan, pack, &mut out, &mut err);
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn list_shows_packs_rules_and_users() {
        let plan = plan(&[
            ("jobs/fixups/vm.toml", VM),
            (
                "jobs/web.toml",
                "[jobs.db]\nhost = \"local\"\nsteps = [\"x\"]\nfixups = [\"podman\", \"vm\"]\n",
            ),
        ]);
        let text = listed(&plan);
        let headers: Vec<&str> = text
            .lines()
            .filter(|line| !line.starts_with(' ') && !line.is_empty())
            .collect();
        assert_eq!(
            headers,
            [
                "podman (built in): 3 rules, 9 test cases, used by web.db",
                "sshfs (built in): 5 rules, 14 test cases, used by no job",
                "port (built in): 4 rules, 15 test cases, used by no job",
                "ssh (built in): 1 rule, 5 test cases, used by no job",
                "vm (jobs/fixups/vm.toml): 1 rule, 2 test cases, used by web.db",
            ]
        );
        assert!(
            text.contains(
                "  podman/name-in-use          [stderr, exit 125]  podman rm -f {name}\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("  vm/down  [any stream, runs here]  virsh start {host}\n"),
            "{text}"
        );
        assert!(
            text.contains("  port/bind      [any stream]  port={port} …\n"),
            "{text}"
        );
        assert!(
            text.contains("  messages from: podman 4.9 and 5.x"),
            "{text}"
        );
    }

    #[test]
    fn test_passes_the_built_in_packs() {
        let plan = plan(&[]);
        let (code, out, err) = tested(&plan, None);
        assert_eq!((code, err.as_str()), (0, ""), "{out}");
        assert!(out.ends_with(" passed, 0 failed\n"), "{out}");
        assert!(
            out.contains("  ok    1  podman/name-in-use: Error: creating container storage: the container name \"web1\" is alrea…\n"),
            "{out}"
        );
        assert!(
            out.contains(
                "  ok    7  nothing fires: the container name \"web1\" is already in use\n"
            ),
            "{out}"
        );
        let (code, out, _) = tested(&plan, Some("ssh"));
        assert_eq!(code, 0);
        assert!(
            out.starts_with("ssh (built in)\n") && out.ends_with("5 passed, 0 failed\n"),
            "{out}"
        );
    }

    #[test]
    fn test_reports_a_failing_case_with_its_place() {
        let plan = plan(&[("jobs/fixups/vm.toml", VM)]);
        let (code, out, _) = tested(&plan, Some("vm"));
        assert_eq!(code, 1);
        assert_eq!(
            out,
            "vm (jobs/fixups/vm.toml)\n  ok    1  vm/down: host nico is down\n  FAIL  2  host nico is down\n          --> jobs/fixups/vm.toml:16\n          vm/down produces a different remedy\n            got:      virsh start nico\n            expected: virsh start nicolas\n1 passed, 1 failed\n"
        );
        let (code, _, _) = tested(&plan, None);
        assert_eq!(code, 1, "one bad pack fails the whole run");

        let diagnostics = check_packs(&plan);
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(
            (
                diagnostics[0].file.to_string_lossy().as_ref(),
                diagnostics[0].line,
                diagnostics[0].column
            ),
            ("jobs/fixups/vm.toml", 16, 8)
        );
        assert!(check_packs(&self::plan(&[])).is_empty());
    }

    #[test]
    fn test_names_the_known_packs_for_an_unknown_one() {
        let plan = plan(&[]);
        let (code, out, err) = tested(&plan, Some("docker"));
        assert_eq!((code, out.as_str()), (2, ""));
        assert_eq!(
            err,
            "zap: unknown fixup pack \"docker\" (known: podman, sshfs, port, ssh)\n"
        );
    }
}
