//! One case per kind of mistake: where it is reported and what it says.

use std::path::Path;

use super::*;

#[test]
fn unknown_key_in_a_host() {
    let d = only_error(&[(
        "hosts.toml",
        "[hosts.n1]\naddress = \"a\"\ncolour = \"red\"\n",
    )]);
    assert_diag(
        &d,
        ("hosts.toml", 3, 1),
        "hosts.n1.colour",
        Some("colour"),
        "unknown key \"colour\" (expected one of: address, port, user, identity, known_hosts, host_key_check, connect_timeout, keepalive, jump, local, stats_every)",
    );
}

#[test]
fn unknown_key_in_defaults() {
    let d = only_error(&[("hosts.toml", "[defaults]\nuser = \"deploy\"\nport = 22\n")]);
    assert_diag(
        &d,
        ("hosts.toml", 3, 1),
        "defaults.port",
        Some("port"),
        "unknown key \"port\" (expected one of: user, identity, known_hosts, host_key_check, connect_timeout, keepalive, stats_every)",
    );
}

#[test]
fn unknown_key_at_the_top_of_a_file() {
    let d = only_error(&[("hosts.toml", "[host.n1]\naddress = \"a\"\n")]);
    assert_diag(
        &d,
        ("hosts.toml", 1, 2),
        "host",
        Some("host"),
        "unknown key \"host\" (expected one of: defaults, hosts)",
    );
}

#[test]
fn unknown_key_in_system() {
    let text = format!("[system]\ndescripton = \"x\"\n\n{ONE_JOB}");
    let d = only_error(&[("jobs/web.toml", &text)]);
    assert_diag(
        &d,
        ("jobs/web.toml", 2, 1),
        "system.descripton",
        Some("descripton"),
        "unknown key \"descripton\" (expected one of: description, autostart)",
    );
}

#[test]
fn unknown_key_in_a_job() {
    let text = format!("{ONE_JOB}restart_delay = \"1s\"\n");
    let d = only_error(&[("jobs/web.toml", &text)]);
    assert_diag(
        &d,
        ("jobs/web.toml", 4, 1),
        "jobs.build.restart_delay",
        Some("restart_delay"),
        "unknown key \"restart_delay\" (expected one of: host, hosts, steps, env, pty, after, ready, restart, restart_on, restart_every, backoff, max_restarts, log_lines, stop, fixups, fixup)",
    );
}

#[test]
fn unknown_key_in_a_fixup_rule() {
    let text =
        format!("{ONE_JOB}\n[[jobs.build.fixup]]\nwhen = \"busy\"\nrun = \"true\"\nretries = 2\n");
    let d = only_error(&[("jobs/web.toml", &text)]);
    assert_diag(
        &d,
        ("jobs/web.toml", 8, 1),
        "jobs.build.fixup[0].retries",
        Some("retries"),
        "unknown key \"retries\" (expected one of: when, stream, exit, run, on, ok_exit, max, cooldown, timeout)",
    );
}

#[test]
fn unknown_key_in_an_inline_table() {
    let text = format!("{ONE_JOB}stop = {{ signal = \"TERM\", grace = \"5s\" }}\n");
    let d = only_error(&[("jobs/web.toml", &text)]);
    assert_diag(
        &d,
        ("jobs/web.toml", 4, 27),
        "jobs.build.stop.grace",
        Some("grace"),
        "unknown key \"grace\" (expected one of: signal, timeout, scope)",
    );
}

#[test]
fn wrong_type() {
    let d = only_error(&[("hosts.toml", "[hosts.n1]\naddress = \"a\"\nport = \"22\"\n")]);
    assert_diag(
        &d,
        ("hosts.toml", 3, 8),
        "hosts.n1.port",
        Some("\"22\""),
        "expected an integer, found a string",
    );
}

#[test]
fn steps_as_a_single_string_is_a_type_error() {
    let d = only_error(&[(
        "jobs/web.toml",
        "[jobs.build]\nhost = \"local\"\nsteps = \"make\"\n",
    )]);
    assert_diag(
        &d,
        ("jobs/web.toml", 3, 9),
        "jobs.build.steps",
        Some("\"make\""),
        "expected an array, found a string",
    );
}

#[test]
fn unknown_host() {
    let d = only_error(&[(
        "jobs/web.toml",
        "[jobs.build]\nsteps = [\"make\"]\n\nhost = \"n9\"\n",
    )]);
    assert_diag(
        &d,
        ("jobs/web.toml", 4, 8),
        "jobs.build.host",
        Some("\"n9\""),
        "unknown host \"n9\"",
    );
    let rendered = d.to_string();
    assert!(rendered.contains("  --> jobs/web.toml:4:8\n"), "{rendered}");
    assert!(
        rendered.contains("4 | host = \"n9\"\n  |        ^^^^ jobs.build.host\n"),
        "{rendered}"
    );
}

#[test]
fn unknown_host_in_hosts_list() {
    let d = only_error(&[(
        "jobs/web.toml",
        "[jobs.build]\nhosts = [\"local\", \"n2\"]\nsteps = [\"make\"]\n",
    )]);
    assert_diag(
        &d,
        ("jobs/web.toml", 2, 19),
        "jobs.build.hosts[1]",
        Some("\"n2\""),
        "unknown host \"n2\"",
    );
}

#[test]
fn a_host_listed_twice() {
    let d = only_error(&[(
        "jobs/web.toml",
        "[jobs.build]\nhosts = [\"local\", \"local\"]\nsteps = [\"make\"]\n",
    )]);
    assert_diag(
        &d,
        ("jobs/web.toml", 2, 19),
        "jobs.build.hosts[1]",
        Some("\"local\""),
        "host \"local\" is listed twice",
    );
}

#[test]
fn a_job_needs_host_or_hosts() {
    let d = only_error(&[("jobs/web.toml", "[jobs.build]\nsteps = [\"make\"]\n")]);
    assert_diag(
        &d,
        ("jobs/web.toml", 1, 7),
        "jobs.build",
        None,
        "a job needs host or hosts",
    );
}

#[test]
fn host_and_hosts_together() {
    let d = only_error(&[(
        "jobs/web.toml",
        "[jobs.build]\nhost = \"local\"\nhosts = [\"local\"]\nsteps = [\"make\"]\n",
    )]);
    assert_diag(
        &d,
        ("jobs/web.toml", 3, 9),
        "jobs.build.hosts",
        Some("[\"local\"]"),
        "give host or hosts, not both",
    );
}

#[test]
fn unknown_after() {
    let text = format!("{ONE_JOB}after = [\"fetch\"]\n");
    let d = only_error(&[("jobs/web.toml", &text)]);
    assert_diag(
        &d,
        ("jobs/web.toml", 4, 10),
        "jobs.build.after[0]",
        Some("\"fetch\""),
        "unknown job \"web.fetch\" in after",
    );

    let text = format!("{ONE_JOB}after = [\"db.migrate\"]\n");
    let d = only_error(&[("jobs/web.toml", &text)]);
    assert_eq!(
        d.message,
        "unknown job \"db.migrate\" in after: there is no system \"db\""
    );
}

#[test]
fn dependency_cycle() {
    let web = "[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\nafter = [\"db.b\"]\n";
    let db = "[jobs.b]\nhost = \"local\"\nsteps = [\"x\"]\nafter = [\"c\"]\n\n[jobs.c]\nhost = \"local\"\nsteps = [\"x\"]\nafter = [\"web.a\"]\n";
    let d = only_error(&[("jobs/web.toml", web), ("jobs/db.toml", db)]);
    assert_diag(
        &d,
        ("jobs/web.toml", 4, 10),
        "jobs.a.after[0]",
        Some("\"db.b\""),
        "dependency cycle: db.b → db.c → web.a → db.b",
    );
}

#[test]
fn a_job_after_itself_is_a_cycle() {
    let text = format!("{ONE_JOB}after = [\"build\"]\n");
    let d = only_error(&[("jobs/web.toml", &text)]);
    assert_diag(
        &d,
        ("jobs/web.toml", 4, 10),
        "jobs.build.after[0]",
        Some("\"build\""),
        "dependency cycle: web.build → web.build",
    );
}

#[test]
fn jump_cycle() {
    let hosts = "[hosts.a]\naddress = \"a\"\njump = \"b\"\n\n[hosts.b]\naddress = \"b\"\njump = \"c\"\n\n[hosts.c]\naddress = \"c\"\njump = \"a\"\n";
    let d = only_error(&[("hosts.toml", hosts)]);
    assert_diag(
        &d,
        ("hosts.toml", 3, 8),
        "hosts.a.jump",
        Some("\"b\""),
        "jump cycle: a → b → c → a",
    );
}

#[test]
fn jump_to_an_unknown_or_local_host() {
    let hosts = "[hosts.a]\naddress = \"a\"\njump = \"nowhere\"\n\n[hosts.b]\naddress = \"b\"\njump = \"local\"\n";
    let all = errors(&[("hosts.toml", hosts)]);
    assert_eq!(all.len(), 2);
    assert_diag(
        &all[0],
        ("hosts.toml", 3, 8),
        "hosts.a.jump",
        Some("\"nowhere\""),
        "unknown jump host \"nowhere\"",
    );
    assert_diag(
        &all[1],
        ("hosts.toml", 7, 8),
        "hosts.b.jump",
        Some("\"local\""),
        "cannot jump through \"local\": it is a local host",
    );
}

#[test]
fn duplicate_job_key() {
    let text = format!("{ONE_JOB}\n[jobs.build]\nhost = \"local\"\nsteps = [\"make\"]\n");
    let d = only_error(&[("jobs/web.toml", &text)]);
    assert_diag(
        &d,
        ("jobs/web.toml", 5, 7),
        "",
        Some("build"),
        "TOML syntax: duplicate key",
    );
}

#[test]
fn empty_steps() {
    let d = only_error(&[(
        "jobs/web.toml",
        "[jobs.build]\nhost = \"local\"\nsteps = []\n",
    )]);
    assert_diag(
        &d,
        ("jobs/web.toml", 3, 9),
        "jobs.build.steps",
        Some("[]"),
        "a job needs at least one step",
    );
}

#[test]
fn an_empty_step() {
    let d = only_error(&[(
        "jobs/web.toml",
        "[jobs.build]\nhost = \"local\"\nsteps = [\"make\", \" \"]\n",
    )]);
    assert_diag(
        &d,
        ("jobs/web.toml", 3, 18),
        "jobs.build.steps[1]",
        Some("\" \""),
        "a step cannot be empty",
    );
}

#[test]
fn missing_steps() {
    let d = only_error(&[("jobs/web.toml", "[jobs.build]\nhost = \"local\"\n")]);
    assert_diag(
        &d,
        ("jobs/web.toml", 1, 7),
        "jobs.build",
        None,
        "missing key \"steps\"",
    );
}

#[test]
fn bad_regex_in_when_restart_on_and_ready_log() {
    let text = format!(
        "{ONE_JOB}restart_on = \"(oops\"\nready = {{ log = \"[z-a]\" }}\n\n[[jobs.build.fixup]]\nwhen = 'x(?P<n'\nrun = \"true\"\n"
    );
    let all = errors(&[("jobs/web.toml", &text)]);
    assert_eq!(all.len(), 3, "{}", ConfigErrors::new(all.clone()));
    assert_diag(
        &all[0],
        ("jobs/web.toml", 4, 14),
        "jobs.build.restart_on",
        Some("\"(oops\""),
        "bad regex: unclosed group",
    );
    assert_diag(
        &all[1],
        ("jobs/web.toml", 5, 17),
        "jobs.build.ready.log",
        Some("\"[z-a]\""),
        "bad regex: invalid character class range, the start must be <= the end",
    );
    assert_diag(
        &all[2],
        ("jobs/web.toml", 8, 8),
        "jobs.build.fixup[0].when",
        Some("'x(?P<n'"),
        "bad regex: unclosed capture group name",
    );
}

#[test]
fn bad_duration() {
    let text = format!("{ONE_JOB}restart_every = \"12 hours\"\n");
    let d = only_error(&[("jobs/web.toml", &text)]);
    assert_diag(
        &d,
        ("jobs/web.toml", 4, 17),
        "jobs.build.restart_every",
        Some("\"12 hours\""),
        "unknown duration unit \" hours\": write a whole number and a unit, like \"250ms\", \"10s\", \"5m\" or \"12h\"",
    );
}

#[test]
fn a_duration_given_as_a_number() {
    let d = only_error(&[("hosts.toml", "[defaults]\nkeepalive = 15\n")]);
    assert_diag(
        &d,
        ("hosts.toml", 2, 13),
        "defaults.keepalive",
        Some("15"),
        "expected a duration string like \"10s\", found an integer",
    );
}

#[test]
fn unknown_fixup_pack() {
    let text = format!("{ONE_JOB}fixups = [\"podman\", \"vm\", \"docker\"]\n");
    let d = only_error(&[("jobs/web.toml", &text), ("jobs/fixups/vm.toml", VM_PACK)]);
    assert_diag(
        &d,
        ("jobs/web.toml", 4, 27),
        "jobs.build.fixups[2]",
        Some("\"docker\""),
        "unknown fixup pack \"docker\" (known: podman, sshfs, port, ssh, vm)",
    );
}

#[test]
fn unknown_placeholder() {
    let text = format!(
        "{ONE_JOB}\n[[jobs.build.fixup]]\nwhen = 'name \"(?P<name>\\w+)\" in use'\nrun = \"podman rm -f {{nmae}}\"\n"
    );
    let d = only_error(&[("jobs/web.toml", &text)]);
    assert_diag(
        &d,
        ("jobs/web.toml", 7, 21),
        "jobs.build.fixup[0].run",
        Some("{nmae}"),
        "unknown placeholder \"{nmae}\": \"when\" has no capture group \"nmae\" (it has name)",
    );
}

#[test]
fn toml_syntax_error() {
    let text = "[jobs.build]\nhost = \"local\"\nsteps = [\"make\"\npty = false\n";
    let d = only_error(&[("jobs/web.toml", text)]);
    assert_eq!(
        (d.file.as_path(), d.line, d.column),
        (Path::new("jobs/web.toml"), 3, 16),
        "{d}"
    );
    assert_eq!(d.key_path, "");
    assert!(d.message.starts_with("TOML syntax: "), "{d}");
    assert_eq!(d.source_line, "steps = [\"make\"");
}

#[test]
fn a_job_named_with_a_dot() {
    let d = only_error(&[(
        "jobs/web.toml",
        "[jobs.\"a.b\"]\nhost = \"local\"\nsteps = [\"make\"]\n",
    )]);
    assert_diag(
        &d,
        ("jobs/web.toml", 1, 7),
        "jobs.\"a.b\"",
        Some("\"a.b\""),
        "bad job name \"a.b\": '.' separates system and job",
    );
}

#[test]
fn systems_that_differ_only_by_case() {
    let d = only_error(&[("jobs/web.toml", ONE_JOB), ("jobs/Web.toml", ONE_JOB)]);
    assert_diag(
        &d,
        ("jobs/web.toml", 0, 0),
        "",
        Some("web"),
        "system \"web\" differs from \"Web\" (jobs/Web.toml) only by case",
    );
}

#[test]
fn an_ssh_host_needs_an_address() {
    let d = only_error(&[("hosts.toml", "[hosts.n1]\nuser = \"root\"\n")]);
    assert_diag(
        &d,
        ("hosts.toml", 1, 8),
        "hosts.n1",
        None,
        "missing key \"address\"",
    );
}

#[test]
fn a_local_host_takes_no_ssh_keys() {
    let d = only_error(&[(
        "hosts.toml",
        "[hosts.laptop]\nlocal = true\naddress = \"x\"\n",
    )]);
    assert_diag(
        &d,
        ("hosts.toml", 3, 11),
        "hosts.laptop.address",
        Some("\"x\""),
        "a local host takes no \"address\"",
    );
}

#[test]
fn an_unknown_key_in_a_local_host_is_reported_once() {
    let d = only_error(&[(
        "hosts.toml",
        "[hosts.laptop]\nlocal = true\nadress = \"x\"\n",
    )]);
    assert_eq!(
        (d.line, d.column, d.key_path.as_str()),
        (3, 1, "hosts.laptop.adress")
    );
    assert!(d.message.starts_with("unknown key \"adress\""), "{d}");
}

#[test]
fn host_key_checking_cannot_be_turned_off() {
    let d = only_error(&[("hosts.toml", "[defaults]\nhost_key_check = \"off\"\n")]);
    assert_diag(
        &d,
        ("hosts.toml", 2, 18),
        "defaults.host_key_check",
        Some("\"off\""),
        "unknown value \"off\" (expected one of: \"strict\", \"accept-new\")",
    );
}

#[test]
fn ready_takes_one_kind() {
    let text = format!("{ONE_JOB}ready = {{ exit = 0, log = \"up\" }}\n");
    let d = only_error(&[("jobs/web.toml", &text)]);
    assert_diag(
        &d,
        ("jobs/web.toml", 4, 27),
        "jobs.build.ready.log",
        Some("\"up\""),
        "give only one of exit, log or probe",
    );
}

#[test]
fn bad_env_name() {
    let text = format!("{ONE_JOB}env = {{ \"MY-VAR\" = \"1\" }}\n");
    let d = only_error(&[("jobs/web.toml", &text)]);
    assert_diag(
        &d,
        ("jobs/web.toml", 4, 9),
        "jobs.build.env.MY-VAR",
        Some("\"MY-VAR\""),
        "bad variable name \"MY-VAR\": use letters, digits and '_', not starting with a digit",
    );
}

#[test]
fn several_errors_in_several_files_are_all_reported() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/broken");
    let errors = match load(&dir) {
        Ok(_) => panic!("the broken fixture loaded"),
        Err(errors) => errors,
    };
    let all = errors.diagnostics();
    assert_eq!(all.len(), 6, "{errors}");
    assert_diag(
        &all[0],
        ("hosts.toml", 3, 8),
        "hosts.n1.port",
        Some("\"22\""),
        "expected an integer, found a string",
    );
    assert_diag(
        &all[1],
        ("jobs/api.toml", 4, 10),
        "jobs.serve.after[0]",
        Some("\"web.nope\""),
        "unknown job \"web.nope\" in after",
    );
    assert_diag(
        &all[2],
        ("jobs/web.toml", 2, 8),
        "jobs.build.host",
        Some("\"n9\""),
        "unknown host \"n9\"",
    );
    assert_diag(
        &all[3],
        ("jobs/web.toml", 3, 9),
        "jobs.build.steps",
        Some("[]"),
        "a job needs at least one step",
    );
    assert_eq!(
        (all[4].line, all[4].column, all[4].key_path.as_str()),
        (4, 17, "jobs.build.restart_every")
    );
    assert_eq!(all[4].value.as_deref(), Some("\"soon\""));
    assert!(all[4].message.starts_with("bad duration"), "{}", all[4]);
    assert_diag(
        &all[5],
        ("jobs/web.toml", 5, 17),
        "jobs.build.fixups[1]",
        Some("\"nosuch\""),
        "unknown fixup pack \"nosuch\" (known: podman, sshfs, port, ssh, vm)",
    );
    assert!(
        errors.to_string().ends_with("\n6 errors in the config\n"),
        "{errors}"
    );
}

#[test]
fn a_syntax_error_in_one_file_leaves_the_others_checked() {
    let hosts = "[hosts.n1\naddress = \"a\"\n";
    let api = "[jobs.serve]\nhost = \"n1\"\nsteps = [\"x\"]\nafter = [\"web.build\"]\n";
    let web = "[jobs.build]\nhost = \"local\"\nsteps = \"x\"\n";
    let broken_web = "[jobs.build\n";
    // The unparsable hosts.toml does not make n1 unknown.
    let all = errors(&[
        ("hosts.toml", hosts),
        ("jobs/api.toml", api),
        ("jobs/web.toml", web),
    ]);
    assert_eq!(all.len(), 2, "{}", ConfigErrors::new(all.clone()));
    assert_eq!(all[0].file, Path::new("hosts.toml"));
    assert_eq!(all[1].key_path, "jobs.build.steps");
    // Nor does an unparsable web.toml make web.build unknown.
    let all = errors(&[
        (
            "jobs/api.toml",
            "[jobs.serve]\nhost = \"local\"\nsteps = [\"x\"]\nafter = [\"web.build\"]\n",
        ),
        ("jobs/web.toml", broken_web),
    ]);
    assert_eq!(all.len(), 1, "{}", ConfigErrors::new(all.clone()));
    assert_eq!(all[0].file, Path::new("jobs/web.toml"));
}

#[test]
fn a_host_with_mistakes_is_not_also_unknown() {
    let all = errors(&[
        ("hosts.toml", "[hosts.n1]\naddress = \"a\"\nport = 0\n"),
        (
            "jobs/web.toml",
            "[jobs.build]\nhost = \"n1\"\nsteps = [\"x\"]\n",
        ),
    ]);
    assert_eq!(all.len(), 1, "{}", ConfigErrors::new(all.clone()));
    assert_diag(
        &all[0],
        ("hosts.toml", 3, 8),
        "hosts.n1.port",
        Some("0"),
        "0 is out of range (1 to 65535)",
    );
}

#[test]
fn an_unknown_stop_scope_names_the_choices() {
    let text = format!("{ONE_JOB}stop = {{ scope = \"all\" }}\n");
    let d = only_error(&[("jobs/web.toml", &text)]);
    assert!(
        d.message
            .contains("unknown stop scope \"all\" (expected one of: \"tree\", \"group\")"),
        "{}",
        d.message
    );
}

#[test]
fn a_broken_bracketed_address_or_two_ports_are_named() {
    for (written, says) in [
        ("address = \"[::1\"", "needs its ]"),
        ("address = \"[::1]x\"", "after ]"),
        ("address = \"[::1]:port\"", "is not a port"),
        ("address = \"[]:22\"", "nothing between [ and ]"),
        ("address = \"[::1]:2201\"\nport = 2202", "keep one"),
    ] {
        let text = format!("[hosts.n1]\n{written}\n");
        let d = only_error(&[("hosts.toml", &text), ("jobs/web.toml", "")]);
        assert!(d.message.contains(says), "{written}: {}", d.message);
    }
}
