//! Plans from good folders: defaults, paths, hosts, and the example of the README.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::model::{HostName, JobName, Signal};

#[test]
fn defaults_fold_into_every_ssh_host_and_host_keys_win() {
    let hosts = r#"
[defaults]
user = "deploy"
host_key_check = "accept-new"
connect_timeout = "3s"
keepalive = "1m"
stats_every = "5s"

[hosts.n1]
address = "10.0.0.5"

[hosts.n2]
address = "10.0.0.6"
user = "root"
keepalive = "20s"
host_key_check = "strict"
stats_every = "1s"
"#;
    let plan = plan(&[("hosts.toml", hosts)]);
    let n1 = ssh(&plan, "n1");
    assert_eq!(n1.address, "10.0.0.5");
    assert_eq!(n1.port, None);
    assert_eq!(n1.user.as_deref(), Some("deploy"));
    assert_eq!(n1.host_key_check, HostKeyCheck::AcceptNew);
    assert_eq!(n1.connect_timeout, Duration::from_secs(3));
    assert_eq!(n1.keepalive, Duration::from_secs(60));
    assert_eq!(n1.identity, None);
    assert_eq!(n1.known_hosts, Path::new(HOME).join(".ssh/known_hosts"));
    assert_eq!(n1.jump, None);
    let n2 = ssh(&plan, "n2");
    assert_eq!(n2.user.as_deref(), Some("root"));
    assert_eq!(n2.keepalive, Duration::from_secs(20));
    assert_eq!(n2.host_key_check, HostKeyCheck::Strict);
    assert_eq!(n2.connect_timeout, Duration::from_secs(3));
    let stats = |name: &str| plan.hosts[&HostName(name.to_string())].stats_every;
    assert_eq!(stats("n1"), Duration::from_secs(5));
    assert_eq!(stats("n2"), Duration::from_secs(1));
    // The one default that reaches local hosts too.
    assert_eq!(stats("local"), Duration::from_secs(5));
}

#[test]
fn built_in_defaults_without_a_defaults_table() {
    let plan = plan(&[("hosts.toml", "[hosts.n1]\naddress = \"n1\"\n")]);
    let n1 = ssh(&plan, "n1");
    assert_eq!(n1.user, None);
    assert_eq!(n1.host_key_check, HostKeyCheck::Strict);
    assert_eq!(n1.connect_timeout, Duration::from_secs(10));
    assert_eq!(n1.keepalive, Duration::from_secs(15));
    assert_eq!(n1.known_hosts, PathBuf::from(HOME).join(".ssh/known_hosts"));
    assert_eq!(
        plan.hosts[&HostName("n1".into())].stats_every,
        Duration::from_secs(2)
    );
}

#[test]
fn tilde_and_relative_paths_are_expanded() {
    let hosts = r#"
[defaults]
identity = "keys/deploy"

[hosts.n1]
address = "n1"
identity = "~/.ssh/id_n1"
known_hosts = "../known"

[hosts.n2]
address = "n2"
known_hosts = "/etc/ssh/known"
"#;
    let plan = plan(&[("hosts.toml", hosts)]);
    let n1 = ssh(&plan, "n1");
    assert_eq!(
        n1.identity.as_deref(),
        Some(Path::new("/home/ada/.ssh/id_n1"))
    );
    assert_eq!(n1.known_hosts, Path::new("/srv/cfg/../known"));
    let n2 = ssh(&plan, "n2");
    assert_eq!(
        n2.identity.as_deref(),
        Some(Path::new("/srv/cfg/keys/deploy"))
    );
    assert_eq!(n2.known_hosts, Path::new("/etc/ssh/known"));
}

#[test]
fn tilde_without_home_is_an_error() {
    let sources = [SourceFile::new(
        "hosts.toml",
        "[hosts.n1]\naddress = \"n1\"\nidentity = \"~/k\"\nknown_hosts = \"kh\"\n",
    )];
    let errors = match load_with_home(Path::new(DIR), &sources, None) {
        Ok(_) => panic!("loaded without HOME"),
        Err(errors) => errors,
    };
    let d = &errors.diagnostics()[0];
    assert_diag(
        d,
        ("hosts.toml", 3, 12),
        "hosts.n1.identity",
        Some("\"~/k\""),
        "cannot expand \"~\": HOME is not set",
    );
}

#[test]
fn the_local_host_is_built_in() {
    let plan = plan(&[("jobs/web.toml", ONE_JOB)]);
    assert_eq!(plan.hosts.len(), 1);
    let local = &plan.hosts[&HostName("local".into())];
    assert!(matches!(local.kind, HostKind::Local));
    assert_eq!(local.stats_every, Duration::from_secs(2));
    assert_eq!(host_names(job(&plan, "web", "build")), ["local"]);
    assert_eq!(plan.dir, Path::new(DIR));

    let plan = self::plan(&[]);
    assert_eq!(plan.hosts.len(), 1);
    assert!(plan.systems.is_empty() && plan.jobs.is_empty());
    let packs: Vec<&str> = plan.fixup_packs.keys().map(String::as_str).collect();
    assert_eq!(
        packs,
        ["podman", "port", "ssh", "sshfs"],
        "only the built-in packs"
    );
}

#[test]
fn hosts_toml_may_redefine_local() {
    let plan = plan(&[("hosts.toml", "[hosts.local]\naddress = \"127.0.0.1\"\n")]);
    assert_eq!(ssh(&plan, "local").address, "127.0.0.1");
    let plan = self::plan(&[(
        "hosts.toml",
        "[hosts.laptop]\nlocal = true\nstats_every = \"1s\"\n",
    )]);
    let laptop = &plan.hosts[&HostName("laptop".into())];
    assert!(matches!(laptop.kind, HostKind::Local));
    assert_eq!(laptop.stats_every, Duration::from_secs(1));
    assert!(plan.hosts.contains_key(&HostName("local".into())));
}

#[test]
fn hosts_list_makes_one_instance_per_host_in_order() {
    let hosts = "[hosts.n2]\naddress = \"n2\"\n[hosts.n1]\naddress = \"n1\"\n";
    let web = "[jobs.sync]\nhosts = [\"n2\", \"local\", \"n1\"]\nsteps = [\"x\"]\n";
    let plan = plan(&[("hosts.toml", hosts), ("jobs/web.toml", web)]);
    assert_eq!(host_names(job(&plan, "web", "sync")), ["n2", "local", "n1"]);
}

#[test]
fn systems_in_file_name_order_and_jobs_in_file_order() {
    let web = "[jobs.zeta]\nhost = \"local\"\nsteps = [\"x\"]\n[jobs.alpha]\nhost = \"local\"\nsteps = [\"x\"]\nafter = [\"zeta\", \"db.main\"]\n";
    let db = "[system]\nautostart = false\n[jobs.main]\nhost = \"local\"\nsteps = [\"x\"]\n";
    let plan = plan(&[("jobs/web.toml", web), ("jobs/db.toml", db)]);
    let systems: Vec<(&str, bool)> = plan
        .systems
        .iter()
        .map(|s| (s.name.as_str(), s.autostart))
        .collect();
    assert_eq!(systems, [("db", false), ("web", true)]);
    let jobs: Vec<String> = plan.jobs.iter().map(|job| job.name.to_string()).collect();
    assert_eq!(jobs, ["db.main", "web.zeta", "web.alpha"]);
    let after: Vec<String> = job(&plan, "web", "alpha")
        .after
        .iter()
        .map(JobName::to_string)
        .collect();
    assert_eq!(after, ["web.zeta", "db.main"]);
}

#[test]
fn job_defaults() {
    let plan = plan(&[("jobs/web.toml", ONE_JOB)]);
    let build = job(&plan, "web", "build");
    assert_eq!(build.steps, ["make"]);
    assert!(build.env.is_empty() && !build.pty && build.after.is_empty());
    assert!(matches!(build.ready, Ready::Exit(0)));
    assert_eq!(build.restart, RestartPolicy::Never);
    assert_eq!(build.restart_on.as_str(), "%restart");
    assert_eq!(build.restart_every, None);
    assert_eq!(
        build.backoff,
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60)
        }
    );
    assert_eq!(build.max_restarts, None);
    assert_eq!(
        build.stop,
        StopSpec {
            signal: Signal::Term,
            timeout: Duration::from_secs(10),
            scope: StopScope::Tree,
        }
    );
    assert!(build.fixup_packs.is_empty() && build.fixup_rules.is_empty());
    let system = &plan.systems[0];
    assert_eq!(
        (
            system.name.as_str(),
            system.description.as_deref(),
            system.autostart
        ),
        ("web", None, true)
    );
}

#[test]
fn fixup_rule_defaults_and_names() {
    let text = format!(
        "{ONE_JOB}\n[[jobs.build.fixup]]\nwhen = \"a\"\nrun = \"x\"\n\n[[jobs.build.fixup]]\nwhen = \"b\"\nrun = \"y\"\nexit = 2\non = \"local\"\nok_exit = 1\ncooldown = \"5s\"\ntimeout = \"1m\"\nmax = 1\n"
    );
    let plan = plan(&[("jobs/web.toml", &text)]);
    let rules = &job(&plan, "web", "build").fixup_rules;
    let first = &rules[0];
    assert_eq!(first.name, "job/1");
    assert_eq!(
        (first.stream, first.on),
        (StreamFilter::Any, RemedyPlace::Host)
    );
    assert!(first.exit.is_empty());
    assert_eq!(first.ok_exit, [0]);
    assert_eq!(
        (first.max, first.cooldown, first.timeout),
        (3, Duration::ZERO, Duration::from_secs(60))
    );
    let second = &rules[1];
    assert_eq!(second.name, "job/2");
    assert_eq!(
        (second.exit.as_slice(), second.ok_exit.as_slice()),
        (&[2][..], &[1][..])
    );
    assert_eq!(second.on, RemedyPlace::Local);
    assert_eq!(
        (second.max, second.cooldown, second.timeout),
        (1, Duration::from_secs(5), Duration::from_secs(60))
    );
}

#[test]
fn the_spec_example_parses_into_the_expected_plan() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/spec");
    assert!(has_config(&dir));
    let plan = match load(&dir) {
        Ok(plan) => plan,
        Err(errors) => panic!("{errors}"),
    };
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();

    let names: Vec<&str> = plan.hosts.keys().map(|name| name.0.as_str()).collect();
    assert_eq!(names, ["bastion", "laptop", "local", "n1"]);
    let n1 = ssh(&plan, "n1");
    assert_eq!(n1.address, "10.0.0.5");
    assert_eq!(n1.port, Some(22));
    assert_eq!(n1.user.as_deref(), Some("root"));
    assert_eq!(n1.identity, Some(home.join(".ssh/id_ed25519")));
    assert_eq!(n1.known_hosts, home.join(".ssh/known_hosts"));
    assert_eq!(n1.host_key_check, HostKeyCheck::Strict);
    assert_eq!(
        (n1.connect_timeout, n1.keepalive),
        (Duration::from_secs(10), Duration::from_secs(15))
    );
    assert_eq!(n1.jump, Some(HostName("bastion".into())));
    let bastion = ssh(&plan, "bastion");
    assert_eq!(bastion.user.as_deref(), Some("deploy"));
    assert_eq!(bastion.host_key_check, HostKeyCheck::AcceptNew);
    assert!(matches!(
        plan.hosts[&HostName("laptop".into())].kind,
        HostKind::Local
    ));

    assert_eq!(plan.systems.len(), 1);
    let letz = &plan.systems[0];
    assert_eq!(
        (
            letz.name.as_str(),
            letz.description.as_deref(),
            letz.autostart
        ),
        ("letz", Some("letz dev environment"), true)
    );

    let jobs: Vec<String> = plan.jobs.iter().map(|job| job.name.to_string()).collect();
    assert_eq!(jobs, ["letz.sync", "letz.mount"]);
    let sync = job(&plan, "letz", "sync");
    assert_eq!(host_names(sync), ["n1"]);
    assert_eq!(sync.steps, ["cd /srv/letz", "lsyncd -nodaemon lsyncd.conf"]);
    assert_eq!(sync.env.get("RUST_LOG").map(String::as_str), Some("info"));
    assert!(!sync.pty);
    assert_eq!(
        sync.after,
        [JobName {
            system: "letz".into(),
            job: "mount".into()
        }]
    );
    assert!(matches!(&sync.ready, Ready::Log(regex) if regex.as_str() == "Ready"));
    assert_eq!(sync.restart, RestartPolicy::OnFailure);
    assert!(sync.restart_on.is_match("%restart"));
    assert_eq!(sync.restart_every, Some(Duration::from_secs(12 * 3600)));
    assert_eq!(
        sync.backoff,
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60)
        }
    );
    assert_eq!(sync.max_restarts, Some(20));
    assert_eq!(
        sync.stop,
        StopSpec {
            signal: Signal::Term,
            timeout: Duration::from_secs(10),
            scope: StopScope::Tree,
        }
    );
    assert_eq!(sync.fixup_packs, ["podman", "sshfs"]);
    let [rule] = sync.fixup_rules.as_slice() else {
        panic!("expected one rule: {:?}", sync.fixup_rules);
    };
    assert_eq!(rule.name, "job/1");
    let caught = rule
        .when
        .captures("the container name \"web1\" is already in use");
    assert_eq!(
        caught.and_then(|c| c.name("name")).map(|m| m.as_str()),
        Some("web1")
    );
    assert_eq!(rule.stream, StreamFilter::Stderr);
    assert_eq!(rule.run, "podman rm -f {name}");
    assert_eq!(rule.on, RemedyPlace::Host);
    assert_eq!(rule.ok_exit, [0, 1]);
    assert_eq!(rule.max, 3);

    let mount = job(&plan, "letz", "mount");
    assert_eq!(host_names(mount), ["laptop", "n1"]);
    assert!(matches!(&mount.ready, Ready::Probe { command, every }
        if command == "mountpoint -q /mnt/letz" && *every == Duration::from_millis(500)));
    assert!(
        plan.fixup_packs
            .values()
            .all(|pack| pack.origin == PackOrigin::BuiltIn)
    );
}

#[test]
fn has_config_wants_hosts_toml_or_jobs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    assert!(!has_config(&dir));
    assert!(has_config(&dir.join("broken")));
}

#[test]
fn an_empty_folder_has_only_the_local_host() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let plan = match load(&dir) {
        Ok(plan) => plan,
        Err(errors) => panic!("{errors}"),
    };
    assert_eq!(plan.hosts.len(), 1);
    assert!(plan.jobs.is_empty());
}

#[test]
fn a_file_in_the_wrong_place() {
    let d = only_error(&[("web.toml", ONE_JOB)]);
    assert_diag(
        &d,
        ("web.toml", 0, 0),
        "",
        None,
        "not a config file: expected hosts.toml, jobs/NAME.toml or jobs/fixups/NAME.toml",
    );
}

#[test]
fn ipv6_and_port_carrying_addresses_are_read_as_ssh_reads_them() {
    let cases = [
        ("\"[::1]:22026\"", "::1", Some(22026)),
        ("\"[::1]\"", "::1", None),
        ("\"::1\"", "::1", None),
        ("\"fe80::1%eth0\"", "fe80::1%eth0", None),
        ("\"n1.internal:2222\"", "n1.internal", Some(2222)),
        ("\"10.0.0.5\"", "10.0.0.5", None),
    ];
    for (written, address, port) in cases {
        let text = format!("[hosts.n1]\naddress = {written}\n");
        let plan = plan(&[("hosts.toml", &text)]);
        let n1 = ssh(&plan, "n1");
        assert_eq!((n1.address.as_str(), n1.port), (address, port), "{written}");
    }
    // The same port twice is fine; two ports are not.
    let plan = plan(&[(
        "hosts.toml",
        "[hosts.n1]\naddress = \"[::1]:22\"\nport = 22\n",
    )]);
    assert_eq!(ssh(&plan, "n1").port, Some(22));
}
