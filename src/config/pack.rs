//! Fixup packs as files (built in, or `jobs/fixups/NAME.toml`): a name, a
//! description, the tools the messages come from, `[defaults]` for the
//! rules, `[[rule]]`s named `pack/rule`, and `[[test]]` cases that prove them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Name and text of every built-in pack, in `config::BUILT_IN_PACKS` order.
pub const BUILT_IN_PACK_SOURCES: &[(&str, &str)] = &[
    ("podman", include_str!("packs/podman.toml")),
    ("sshfs", include_str!("packs/sshfs.toml")),
    ("port", include_str!("packs/port.toml")),
    ("ssh", include_str!("packs/ssh.toml")),
];

use super::diagnostic::Diagnostic;
use super::fixup::{RULE_KEYS, RuleDefaults, read_rule};
use super::names::is_plain_name;
use super::plan::{FixupPack, FixupRule, PackExpect, PackOrigin, PackTest};
use super::reader::{Errors, Node, Spot, Table};
use crate::model::Stream;

const PACK_KEYS: &[&str] = &["name", "description", "source", "defaults", "rule", "test"];
const TEST_KEYS: &[&str] = &["line", "stream", "exit", "match", "rule", "run", "captures"];

/// A pack file (built in, or `jobs/fixups/STEM.toml`): its rules and the
/// test cases that prove them. `None` when it has mistakes.
pub fn read_pack(
    doc: &Table<'_, '_>,
    stem: &str,
    path: &Path,
    origin: PackOrigin,
    errors: &mut Errors<'_>,
) -> Option<FixupPack> {
    doc.deny_unknown(PACK_KEYS, errors);
    let name = doc.require("name", errors, |n, errors| {
        let name = n.non_blank_str("name", errors)?;
        if name != stem {
            errors.at(
                &n.spot(),
                format!("the pack is named \"{name}\" but its file is {stem}.toml: jobs list a pack by its file name, so the two must agree"),
            );
            return None;
        }
        Some(name.to_string())
    });
    let description = doc.require("description", errors, |n, errors| {
        n.non_blank_str("description", errors).map(str::to_string)
    });
    let source = doc.read("source", None, |n| {
        n.non_blank_str("source", errors)
            .map(|s| Some(s.to_string()))
    });
    let defaults = match doc.get("defaults") {
        None => RuleDefaults::none(),
        Some(node) => match node.table(errors) {
            Some(table) => RuleDefaults::read(&table, errors),
            None => RuleDefaults::unusable(),
        },
    };
    let rules = match doc.get("rule") {
        Some(node) => read_pack_rules(&node, stem, &defaults, errors),
        None => {
            errors.without_value(&doc.spot(), "a pack needs at least one [[rule]]");
            Vec::new()
        }
    };
    let tests = doc.read("test", Vec::new(), |n| read_tests(&n, path, &rules, errors));
    let rules: Option<Vec<FixupRule>> = rules.into_iter().map(|(_, rule)| rule).collect();
    Some(FixupPack {
        name: name?,
        description: description?,
        source: source?,
        origin,
        rules: rules.filter(|rules| !rules.is_empty())?,
        tests: tests?,
    })
}

/// `[[rule]]`s: each short name with the rule, `None` where it has mistakes.
fn read_pack_rules(
    node: &Node<'_, '_>,
    pack: &str,
    defaults: &RuleDefaults,
    errors: &mut Errors<'_>,
) -> Vec<(String, Option<FixupRule>)> {
    let Some(items) = node.array(errors) else {
        return vec![(String::new(), None)];
    };
    if items.is_empty() {
        errors.at(&node.spot(), "a pack needs at least one [[rule]]");
    }
    let mut rules: Vec<(String, Option<FixupRule>)> = Vec::new();
    for item in items {
        let Some(table) = item.table(errors) else {
            rules.push((String::new(), None));
            continue;
        };
        let mut allowed = vec!["name"];
        allowed.extend(RULE_KEYS);
        table.deny_unknown(&allowed, errors);
        let name = table.require("name", errors, |n, errors| {
            let name = n.str(errors)?;
            if !is_plain_name(name) {
                errors.at(
                    &n.spot(),
                    format!("bad rule name \"{name}\": use letters, digits, '-' and '_'"),
                );
                return None;
            }
            if rules.iter().any(|(other, _)| other == name) {
                errors.at(&n.spot(), format!("rule \"{name}\" is given twice"));
                return None;
            }
            Some(name.to_string())
        });
        let rule = read_rule(
            &table,
            format!("{pack}/{}", name.as_deref().unwrap_or("?")),
            defaults,
            errors,
        );
        let rule = rule.filter(|_| name.is_some());
        rules.push((name.unwrap_or_default(), rule));
    }
    rules
}

/// `[[test]]`s: each a line of output and what the pack must make of it.
fn read_tests(
    node: &Node<'_, '_>,
    path: &Path,
    rules: &[(String, Option<FixupRule>)],
    errors: &mut Errors<'_>,
) -> Option<Vec<PackTest>> {
    let items = node.array(errors)?;
    let tests: Vec<Option<PackTest>> = items
        .iter()
        .map(|item| {
            let table = item.table(errors)?;
            read_test(&table, path, rules, errors)
        })
        .collect();
    tests.into_iter().collect()
}

fn read_test(
    table: &Table<'_, '_>,
    path: &Path,
    rules: &[(String, Option<FixupRule>)],
    errors: &mut Errors<'_>,
) -> Option<PackTest> {
    table.deny_unknown(TEST_KEYS, errors);
    let line = table.require("line", errors, |n, errors| {
        let text = n.str(errors)?;
        let spot = n.spot();
        let at = Diagnostic::without_value(
            path,
            errors.text(spot.file),
            spot.span.clone(),
            &spot.key_path,
            "",
        );
        Some((text.to_string(), at))
    });
    let stream = table.read("stream", Stream::Stderr, |n| {
        n.choice(
            &[("stdout", Stream::Stdout), ("stderr", Stream::Stderr)],
            errors,
        )
    });
    let exit = table.read("exit", None, |n| n.exit_code(errors).map(Some));
    let matches = table.read("match", true, |n| n.bool(errors));
    let rule = table.read("rule", None, |n| {
        let name = n.str(errors)?;
        let known = rules.iter().find(|(known, _)| known == name);
        if known.is_none() {
            let names: Vec<&str> = rules.iter().map(|(name, _)| name.as_str()).collect();
            errors.at(
                &n.spot(),
                format!(
                    "unknown rule \"{name}\" (the pack has: {})",
                    names.join(", ")
                ),
            );
            return None;
        }
        Some(Some((
            name.to_string(),
            known.and_then(|(_, rule)| rule.as_ref()),
        )))
    });
    let run = table.read("run", None, |n| {
        n.str(errors).map(|run| Some(run.to_string()))
    });
    let captures = table.read("captures", None, |n| {
        let rule = rule.as_ref().and_then(Option::as_ref);
        read_captures(&n, rule.map(|(name, rule)| (name, *rule)), errors).map(Some)
    });

    let (line, at) = line?;
    let (matches, rule, run, captures) = (matches?, rule?, run?, captures?);
    let expect = if !matches {
        if rule.is_some() || run.is_some() || captures.is_some() {
            let key = ["rule", "run", "captures"]
                .into_iter()
                .find(|key| table.get(key).is_some())
                .unwrap_or("match");
            if let Some(node) = table.get(key) {
                errors.at(
                    &node.spot(),
                    format!("a case with match = false expects no rule to fire: drop \"{key}\""),
                );
            }
            return None;
        }
        PackExpect::Nothing
    } else {
        let Some((rule, _)) = rule else {
            errors.without_value(
                &table.spot(),
                "missing key \"rule\": name the rule that must fire (or say match = false)",
            );
            return None;
        };
        if run.is_none() && captures.is_none() {
            errors.without_value(
                &table.spot(),
                "give \"run\" (the remedy the rule must produce) or \"captures\" (what it must capture)",
            );
            return None;
        }
        PackExpect::Fires {
            rule,
            run,
            captures: captures.unwrap_or_default(),
        }
    };
    Some(PackTest {
        line,
        stream: stream?,
        exit: exit?,
        expect,
        at,
    })
}

/// `captures = { name = "value" }`: only groups the rule has.
fn read_captures(
    node: &Node<'_, '_>,
    rule: Option<(&String, Option<&FixupRule>)>,
    errors: &mut Errors<'_>,
) -> Option<BTreeMap<String, String>> {
    let table = node.table(errors)?;
    let groups: Option<BTreeSet<&str>> =
        rule.and_then(|(_, rule)| Some(rule?.when.capture_names().flatten().collect()));
    let mut all = Some(BTreeMap::new());
    for (key, value) in table.entries() {
        let name = key.get_ref();
        if let (Some(groups), Some((rule, _))) = (&groups, rule)
            && !groups.contains(name.as_ref())
        {
            let spot = Spot {
                span: key.span(),
                ..value.spot()
            };
            let names: Vec<&str> = groups.iter().copied().collect();
            errors.at(
                &spot,
                format!(
                    "rule \"{rule}\" has no capture group \"{name}\" (it has {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            );
            all = None;
        }
        match (value.str(errors), all.as_mut()) {
            (Some(text), Some(all)) => {
                all.insert(name.to_string(), text.to_string());
            }
            _ => all = None,
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::plan::RemedyPlace;
    use crate::config::{ConfigErrors, Plan, SourceFile, load_sources};

    fn load(files: &[(&str, &str)]) -> Result<Plan, ConfigErrors> {
        let sources: Vec<SourceFile> = files
            .iter()
            .map(|(path, text)| SourceFile::new(*path, *text))
            .collect();
        load_sources(Path::new("/srv/cfg"), &sources)
    }

    /// The one diagnostic of a pack file `jobs/fixups/vm.toml` holding
    /// `text`: its line, column and message.
    #[track_caller]
    fn pack_error(text: &str) -> (usize, usize, String) {
        let all = match load(&[("jobs/fixups/vm.toml", text)]) {
            Ok(_) => panic!("expected errors, got a plan"),
            Err(errors) => errors.diagnostics().to_vec(),
        };
        assert_eq!(
            all.len(),
            1,
            "expected one error, got:\n{}",
            ConfigErrors::new(all.clone())
        );
        let d = &all[0];
        assert_eq!(d.file, Path::new("jobs/fixups/vm.toml"), "{d}");
        (d.line, d.column, d.message.clone())
    }

    const HEAD: &str = "name = \"vm\"\ndescription = \"Start the VM.\"\n";
    const RULE: &str = "[[rule]]\nname = \"a\"\nwhen = \"x\"\nrun = \"true\"\n";

    #[test]
    fn a_user_pack_loads_with_its_defaults_and_tests() {
        let text = format!(
            r#"{HEAD}source = "OpenSSH 9.6"

[defaults]
run = "virsh start {{host}}"
on = "local"
max = 5

[[rule]]
name = "refused"
when = 'connect to host (?P<host>\S+) port \d+: Connection refused'
exit = 255

[[rule]]
name = "other"
when = 'host (?P<host>\S+) is down'
run = "wake {{host}}"
on = "host"

[[test]]
line = "ssh: connect to host nico port 22: Connection refused"
exit = 255
rule = "refused"
run = "virsh start nico"

[[test]]
line = "host n1 is down"
stream = "stdout"
rule = "other"
captures = {{ host = "n1" }}

[[test]]
line = "all good"
match = false
"#
        );
        let plan = match load(&[("jobs/fixups/vm.toml", &text)]) {
            Ok(plan) => plan,
            Err(errors) => panic!("{errors}"),
        };
        let pack = &plan.fixup_packs["vm"];
        assert_eq!(pack.description, "Start the VM.");
        assert_eq!(pack.source.as_deref(), Some("OpenSSH 9.6"));
        assert_eq!(pack.origin, PackOrigin::File("jobs/fixups/vm.toml".into()));
        let [refused, other] = pack.rules.as_slice() else {
            panic!("expected two rules: {:?}", pack.rules);
        };
        assert_eq!(refused.name, "vm/refused");
        assert_eq!(refused.run, "virsh start {host}");
        assert_eq!(
            (refused.on, refused.max, refused.exit.as_slice()),
            (RemedyPlace::Local, 5, &[255][..])
        );
        assert_eq!(
            refused.ok_exit,
            [0],
            "the default where [defaults] is silent"
        );
        assert_eq!(
            (other.name.as_str(), other.run.as_str()),
            ("vm/other", "wake {host}")
        );
        assert_eq!(
            (other.on, other.max),
            (RemedyPlace::Host, 5),
            "its own value wins, the rest is inherited"
        );

        let [first, second, third] = pack.tests.as_slice() else {
            panic!("expected three cases: {:?}", pack.tests);
        };
        assert_eq!((first.stream, first.exit), (Stream::Stderr, Some(255)));
        assert_eq!(
            first.expect,
            PackExpect::Fires {
                rule: "refused".into(),
                run: Some("virsh start nico".into()),
                captures: BTreeMap::new()
            }
        );
        assert_eq!(
            (first.at.file.as_path(), first.at.line, first.at.column),
            (Path::new("jobs/fixups/vm.toml"), 22, 8)
        );
        assert_eq!(first.at.key_path, "test[0].line");
        assert_eq!(second.stream, Stream::Stdout);
        assert!(
            matches!(&second.expect, PackExpect::Fires { captures, run: None, .. } if captures["host"] == "n1")
        );
        assert_eq!(third.expect, PackExpect::Nothing);
    }

    #[test]
    fn a_user_pack_replaces_the_built_in_of_its_name() {
        let text = format!("name = \"podman\"\ndescription = \"Mine.\"\n{RULE}");
        let plan = match load(&[("jobs/fixups/podman.toml", &text)]) {
            Ok(plan) => plan,
            Err(errors) => panic!("{errors}"),
        };
        assert_eq!(plan.fixup_packs["podman"].description, "Mine.");
        assert_eq!(plan.fixup_packs["sshfs"].origin, PackOrigin::BuiltIn);
    }

    #[test]
    fn pack_mistakes_are_located() {
        assert_eq!(
            pack_error(&format!("{HEAD}rules = 1\n{RULE}")),
            (
                3,
                1,
                "unknown key \"rules\" (expected one of: name, description, source, defaults, rule, test)"
                    .into()
            )
        );
        assert_eq!(
            pack_error(&format!("name = \"vms\"\ndescription = \"d\"\n{RULE}")),
            (
                1,
                8,
                "the pack is named \"vms\" but its file is vm.toml: jobs list a pack by its file name, so the two must agree"
                    .into()
            )
        );
        assert_eq!(
            pack_error(&format!("name = \"vm\"\n{RULE}")).2,
            "missing key \"description\""
        );
        assert_eq!(pack_error(HEAD).2, "a pack needs at least one [[rule]]");
        assert_eq!(
            pack_error(&format!(
                "{HEAD}[[rule]]\nname = \"a\"\nwhen = \"x(\"\nrun = \"true\"\n"
            )),
            (5, 8, "bad regex: unclosed group".into())
        );
        assert_eq!(
            pack_error(&format!(
                "{HEAD}[[rule]]\nwhen = \"x\"\nrun = \"true\"\nname = \"a\"\nretry = 2\n"
            )),
            (
                7,
                1,
                "unknown key \"retry\" (expected one of: name, when, stream, exit, run, on, ok_exit, max, cooldown, timeout)"
                    .into()
            )
        );
        assert_eq!(
            pack_error(&format!("{HEAD}[[rule]]\nwhen = \"x\"\nrun = \"true\"\n")).2,
            "missing key \"name\""
        );
        assert_eq!(
            pack_error(&format!("{HEAD}{RULE}{RULE}")),
            (8, 8, "rule \"a\" is given twice".into())
        );
        assert_eq!(
            pack_error(&format!(
                "{HEAD}[[rule]]\nname = \"a b\"\nwhen = \"x\"\nrun = \"true\"\n"
            )),
            (
                4,
                8,
                "bad rule name \"a b\": use letters, digits, '-' and '_'".into()
            )
        );
        let other = RULE.replace("\"a\"", "\"b\"");
        assert_eq!(
            pack_error(&format!("{HEAD}[defaults]\nmax = 0\n{RULE}{other}")),
            (4, 7, "0 is out of range (1 to 4294967295)".into()),
            "a bad default is reported once, not once per rule"
        );
    }

    #[test]
    fn an_inherited_run_needs_the_rules_captures() {
        let text = format!(
            "{HEAD}[defaults]\nrun = \"start {{vm}}\"\n[[rule]]\nname = \"ok\"\nwhen = '(?P<vm>\\w+) down'\n[[rule]]\nname = \"bad\"\nwhen = 'down'\n"
        );
        assert_eq!(
            pack_error(&text),
            (
                4,
                14,
                "unknown placeholder \"{vm}\": rule \"vm/bad\" takes run from [defaults], but its \"when\" has no capture group \"vm\" (it has none)"
                    .into()
            )
        );
    }

    #[test]
    fn test_case_mistakes_are_located() {
        let rule = "[[rule]]\nname = \"a\"\nwhen = '(?P<n>\\d+)'\nrun = \"kill {n}\"\n";
        let case = |body: &str| pack_error(&format!("{HEAD}{rule}[[test]]\nline = \"1\"\n{body}"));
        assert_eq!(
            case("rule = \"b\"\nrun = \"x\"\n"),
            (9, 8, "unknown rule \"b\" (the pack has: a)".into())
        );
        assert_eq!(
            case("match = false\nrun = \"x\"\n"),
            (
                10,
                7,
                "a case with match = false expects no rule to fire: drop \"run\"".into()
            )
        );
        assert_eq!(
            case("run = \"kill 1\"\n").2,
            "missing key \"rule\": name the rule that must fire (or say match = false)"
        );
        assert_eq!(
            case("rule = \"a\"\n").2,
            "give \"run\" (the remedy the rule must produce) or \"captures\" (what it must capture)"
        );
        assert_eq!(
            case("rule = \"a\"\ncaptures = { m = \"1\" }\n"),
            (
                10,
                14,
                "rule \"a\" has no capture group \"m\" (it has n)".into()
            )
        );
        assert_eq!(
            case("rule = \"a\"\nrun = \"kill 1\"\nexit = 300\n"),
            (11, 8, "300 is out of range (0 to 255)".into())
        );
        assert_eq!(
            case("rule = \"a\"\nrun = \"kill 1\"\nstream = \"any\"\n"),
            (
                11,
                10,
                "unknown value \"any\" (expected one of: \"stdout\", \"stderr\")".into()
            )
        );
        assert_eq!(
            case("rule = \"a\"\nrun = \"kill 1\"\nlines = 2\n").2,
            "unknown key \"lines\" (expected one of: line, stream, exit, match, rule, run, captures)"
        );
    }
}
