//! `zap run` against real OpenSSH servers: the container fleet n1..n4 that
//! `scripts/fleet up` starts (sshd on 127.0.0.1:2201..2204). Ignored by a plain
//! `cargo test`; `scripts/test-all` runs them.

mod common;

use std::process::Command as Process;
use std::time::{Duration, Instant};

use common::{Fixture, Output, docker, fleet_marker, fleet_state, gone_everywhere, run};

fn report_path(fixture: &Fixture) -> String {
    fixture.path().join("report.json").display().to_string()
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn steps_run_in_one_shell_on_every_host_and_a_failing_step_is_named() {
    let fixture = Fixture::fleet();
    fixture.write(
        "jobs/web.toml",
        r#"
[jobs.deploy]
hosts = ["n1", "n2", "n3"]
steps = [
  "cd /tmp && export WHO=$(hostname)",
  "echo \"$WHO in $PWD pid $$\"; [ \"$WHO\" != n2 ] || { echo 'n2 is broken' >&2; exit 4; }",
  "echo done on $WHO",
]
"#,
    );
    let report = report_path(&fixture);
    let out = run(fixture.zap(&["run", "web", "--report", &report]));
    print!("{}", out.stdout);
    assert_eq!(out.code, 1, "{}", out.stderr);
    let json = Output::report(std::path::Path::new(&report));
    for host in ["n1", "n2", "n3"] {
        let job = json["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .find(|job| job["host"] == host)
            .expect("every host reported");
        let pid = job["pid"].as_u64().expect("pid");
        let lines = out.lines_of(host, "web.deploy", '|');
        assert_eq!(
            lines[0],
            format!("{host} in /tmp pid {pid}"),
            "the PID is the shell's $$"
        );
        if host == "n2" {
            assert_eq!(job["status"], "failed");
            assert_eq!(job["failed_step"], 2);
            assert_eq!(job["steps"][1]["exit"], 4);
            assert_eq!(job["steps"][2]["status"], "skipped");
            assert_eq!(out.lines_of(host, "web.deploy", '!'), ["n2 is broken"]);
            assert_eq!(lines.len(), 1);
        } else {
            assert_eq!(job["status"], "ok");
            assert_eq!(lines[1], format!("done on {host}"));
        }
    }
    assert!(
        out.stdout.contains("web.deploy@n2"),
        "summary names the instance"
    );
    assert!(out.stdout.contains("failed at step 2: exit 4"));
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn the_reported_pid_is_the_job_shell_and_leads_its_process_group() {
    let fixture = Fixture::fleet();
    fixture.write(
        "jobs/web.toml",
        "[jobs.who]\nhost = \"n3\"\nsteps = [\"ps -o pid=,pgid=,comm= -p $$\"]\n",
    );
    let report = report_path(&fixture);
    let out = run(fixture.zap(&["run", "--report", &report]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let pid = Output::report(std::path::Path::new(&report))["jobs"][0]["pid"]
        .as_u64()
        .expect("pid");
    let fields: Vec<String> = out.lines_of("n3", "web.who", '|')[0]
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(fields, [pid.to_string(), pid.to_string(), "sh".to_string()]);
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn sixteen_jobs_on_one_host_all_run_despite_max_sessions() {
    let fixture = Fixture::fleet();
    let mut jobs = String::new();
    for n in 1..=16 {
        jobs.push_str(&format!(
            "[jobs.j{n:02}]\nhost = \"n1\"\nsteps = [\"sleep 2\", \"echo job {n}\"]\n"
        ));
    }
    fixture.write("jobs/many.toml", &jobs);
    let out = run(fixture.zap(&["run"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for n in 1..=16 {
        assert_eq!(
            out.lines_of("n1", &format!("many.j{n:02}"), '|'),
            [format!("job {n}")]
        );
    }
    assert!(out.stdout.contains("summary: 16 of 16 job instances ok"));
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn a_changed_host_key_is_refused_and_nothing_runs() {
    let fixture = Fixture::fleet();
    // known_hosts that holds another key for n1's address.
    let other_key = fixture.path().join("other");
    let status = Process::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other_key)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    let public = std::fs::read_to_string(other_key.with_extension("pub")).expect("pub");
    let known = fixture.write("known_hosts", &format!("[127.0.0.1]:2201 {public}"));
    let hosts = common::fleet_hosts_toml().replace(
        &format!("{}/known_hosts", fleet_state().display()),
        &known.display().to_string(),
    );
    fixture.write("hosts.toml", &hosts);
    let touched = "/tmp/zap-must-not-exist";
    fixture.write(
        "jobs/web.toml",
        &format!("[jobs.a]\nhost = \"n1\"\nsteps = [\"touch {touched}\"]\n"),
    );
    let out = run(fixture.zap(&["run"]));
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("CHANGED"), "{}", out.stdout);
    assert!(out.stdout.contains("unreachable"), "{}", out.stdout);
    let check = Process::new("docker")
        .args(["exec", "zaptest-n1", "test", "-e", touched])
        .status()
        .expect("docker exec");
    assert!(!check.success(), "the job ran despite the changed key");
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn an_unknown_host_key_is_refused_in_strict_mode() {
    let fixture = Fixture::fleet();
    let empty = fixture.write("known_hosts", "");
    let hosts = common::fleet_hosts_toml().replace(
        &format!("{}/known_hosts", fleet_state().display()),
        &empty.display().to_string(),
    );
    fixture.write("hosts.toml", &hosts);
    fixture.write(
        "jobs/web.toml",
        "[jobs.a]\nhost = \"n2\"\nsteps = [\"true\"]\n",
    );
    let out = run(fixture.zap(&["run"]));
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("not in known_hosts"), "{}", out.stdout);
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn a_stopped_or_frozen_host_is_unreachable_while_the_others_finish() {
    let fixture = Fixture::fleet();
    fixture.write(
        "jobs/web.toml",
        "[jobs.a]\nhosts = [\"n1\", \"n4\"]\nsteps = [\"sleep 1\", \"echo finished on $(hostname)\"]\n",
    );
    let report = report_path(&fixture);

    docker(&["stop", "-t", "1", "zaptest-n4"]);
    let out = run(fixture.zap(&["run", "--report", &report]));
    docker(&["start", "zaptest-n4"]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.lines_of("n1", "web.a", '|'), ["finished on n1"]);
    let json = Output::report(std::path::Path::new(&report));
    assert_eq!(json["jobs"][1]["host"], "n4");
    assert_eq!(json["jobs"][1]["status"], "unreachable");
    assert_eq!(json["jobs"][0]["status"], "ok");

    // A frozen host accepts TCP (docker's proxy) but never answers: the
    // connect timeout (5s in tests/fleet/hosts.toml) must end the wait.
    wait_for_ssh("2204");
    docker(&["pause", "zaptest-n4"]);
    let started = Instant::now();
    let out = run(fixture.zap(&["run", "--report", &report]));
    let took = started.elapsed();
    docker(&["unpause", "zaptest-n4"]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(out.lines_of("n1", "web.a", '|'), ["finished on n1"]);
    assert!(out.stdout.contains("timed out"), "{}", out.stdout);
}

fn wait_for_ssh(port: &str) {
    for _ in 0..50 {
        let banner = Process::new("ssh-keyscan")
            .args(["-p", port, "-T", "1", "127.0.0.1"])
            .output()
            .expect("ssh-keyscan");
        if !banner.stdout.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("sshd on port {port} did not come back");
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn a_jump_through_n1_reaches_n2() {
    let fixture = Fixture::fleet();
    fixture.write(
        "jobs/web.toml",
        "[jobs.a]\nhost = \"n2j\"\nsteps = [\"hostname\", \"cd /tmp\", \"pwd\"]\n",
    );
    let out = run(fixture.zap(&["run"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.lines_of("n2j", "web.a", '|'), ["n2", "/tmp"]);
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn hostile_output_over_ssh_neither_crashes_nor_stalls_zap() {
    let fixture = Fixture::fleet();
    fixture.write(
        "jobs/web.toml",
        r#"
[jobs.hostile]
host = "n3"
steps = [
  "head -c 10485760 /dev/zero | tr '\\0' a; echo",
  "head -c 300000 /dev/urandom",
  "printf 'bad \\377 utf8\\n'; printf 'no newline at the end'",
  "echo '@@zap:ffffffffffffffffffffffffffffffff:exit:1:0'",
  "echo survived",
]
"#,
    );
    let report = report_path(&fixture);
    let out = run(fixture.zap(&["run", "--report", &report]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(out.stdout.contains("that line was 10485760 bytes long"));
    let lines = out.lines_of("n3", "web.hostile", '|');
    assert!(lines.iter().any(|line| line == "bad \u{fffd} utf8"));
    assert!(lines.iter().any(|line| line == "no newline at the end"));
    assert!(lines.iter().any(|line| line.starts_with("@@zap:ffff")));
    assert_eq!(lines.last().map(String::as_str), Some("survived"));
    let json = Output::report(std::path::Path::new(&report));
    assert_eq!(json["jobs"][0]["steps"].as_array().expect("steps").len(), 5);
    assert_eq!(json["jobs"][0]["status"], "ok");
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn an_encrypted_key_gives_an_error_naming_it() {
    let fixture = Fixture::fleet();
    let hosts = common::fleet_hosts_toml().replace("id_ed25519\"", "id_ed25519_encrypted\"");
    fixture.write("hosts.toml", &hosts);
    fixture.write(
        "jobs/web.toml",
        "[jobs.a]\nhost = \"n1\"\nsteps = [\"true\"]\n",
    );
    let out = run(fixture.zap(&["run"]));
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("id_ed25519_encrypted"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("encrypted"), "{}", out.stdout);
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn check_connect_authenticates_to_every_host_in_use() {
    let fixture = Fixture::fleet();
    fixture.write(
        "jobs/web.toml",
        "[jobs.a]\nhosts = [\"n1\", \"n2\", \"n3\", \"n2j\"]\nsteps = [\"true\"]\n",
    );
    let out = run(fixture.zap(&["check", "--connect"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    for host in ["n1", "n2", "n3", "n2j"] {
        assert!(
            out.stdout
                .contains(&format!("{host}: connected and authenticated")),
            "{}",
            out.stdout
        );
    }
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn a_fixup_heals_a_job_on_its_host_and_a_local_remedy_runs_here() {
    let fixture = Fixture::fleet();
    let nonce = std::process::id();
    let remote = format!("/tmp/zap-fixup-{nonce}");
    let local = fixture.path().join("local-remedy-ran");
    fixture.write(
        "jobs/web.toml",
        &format!(
            r#"
[jobs.remote]
host = "n2"
steps = ["[ -e {remote} ] || {{ echo 'missing file {remote}' >&2; exit 3; }}", "echo healthy on $(hostname)"]

[[jobs.remote.fixup]]
when = 'missing file (?P<path>\S+)'
run = "touch {{path}}"

[jobs.vm]
host = "n3"
steps = ["[ -e /tmp/vm-{nonce} ] || {{ echo 'ssh: connect to host vm-{nonce} port 22: Connection refused' >&2; exit 255; }}"]

[[jobs.vm.fixup]]
when = 'connect to host (?P<vm>\S+) port'
on = "local"
run = "echo {{vm}} > {local} && ssh -F /dev/null -i {key} -o UserKnownHostsFile={known} -p 2203 root@127.0.0.1 touch /tmp/{{vm}}"
"#,
            local = local.display(),
            key = fleet_state().join("id_ed25519").display(),
            known = fleet_state().join("known_hosts").display(),
        ),
    );
    let report = report_path(&fixture);
    let out = run(fixture.zap(&["run", "--report", &report]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(out.lines_of("n2", "web.remote", '|'), ["healthy on n2"]);
    assert_eq!(
        std::fs::read_to_string(&local).expect("the local remedy ran here"),
        format!("vm-{nonce}\n")
    );
    let json = Output::report(std::path::Path::new(&report));
    for job in json["jobs"].as_array().expect("jobs") {
        assert_eq!(job["status"], "ok", "{job}");
        assert_eq!(job["fixups"][0]["healed"], true, "{job}");
    }
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn a_pty_job_over_ssh_gets_a_terminal_and_can_be_stopped() {
    let fixture = Fixture::fleet();
    fixture.write(
        "jobs/web.toml",
        "[jobs.term]\nhost = \"n3\"\npty = true\nsteps = [\"tty\", \"echo to stderr >&2\", \"sleep 300\"]\n",
    );
    let report = report_path(&fixture);
    let out = run(fixture.zap(&["run", "--timeout", "3s", "--report", &report]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let lines = out.lines_of("n3", "web.term", '|');
    assert!(lines[0].starts_with("/dev/pts/"), "{lines:?}");
    assert_eq!(lines[1], "to stderr");
    let job = &Output::report(std::path::Path::new(&report))["jobs"][0];
    assert_eq!(job["failed_step"], 3);
    assert_eq!(job["steps"][2]["status"], "killed");
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn the_report_carries_each_jobs_peak_cpu_and_memory() {
    let fixture = Fixture::fleet();
    fixture.write(
        "jobs/web.toml",
        "[jobs.busy]\nhost = \"n2\"\nsteps = [\"i=0; while [ $i -lt 4000000 ]; do i=$((i+1)); done\"]\n\
         [jobs.big]\nhost = \"n2\"\nsteps = [\"{ head -c 100m /dev/zero; sleep 6; } | tail\"]\n",
    );
    let report = report_path(&fixture);
    let out = run(fixture.zap(&["run", "--report", &report]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let json = Output::report(std::path::Path::new(&report));
    let busy = &json["jobs"][0];
    assert!(
        busy["cpu_percent_max"]
            .as_f64()
            .is_some_and(|cpu| cpu > 30.0),
        "{busy}"
    );
    let big = &json["jobs"][1];
    let rss = big["rss_bytes_max"].as_u64().expect("rss") as f64;
    assert!(
        (rss / (100.0 * 1024.0 * 1024.0) - 1.0).abs() < 0.25,
        "{big}"
    );
}

/// A stand-in for podman on a fleet host: `run --name X` fails with podman's
/// own message and exit 125 while a container X "exists" (a file), `rm -f X`
/// removes it. Installed under `dir` on `host`; returns nothing.
fn install_fake_podman(host: &str, dir: &str, existing: &[&str]) {
    let script = format!(
        r#"#!/bin/sh
state={dir}/containers
case "$1" in
  run)
    while [ $# -gt 0 ] && [ "$1" != --name ]; do shift; done
    name=$2
    if [ -e "$state/$name" ]; then
      printf 'Error: creating container storage: the container name "%s" is already in use by 1a2ad3c7f119. You have to remove that container to be able to reuse that name: that name is already in use, or use --replace to instruct Podman to do so.\n' "$name" >&2
      exit 125
    fi
    echo "container $name running on $(hostname)" ;;
  rm)
    [ "$2" = -f ] && shift
    echo "$2" >> {dir}/removed
    if [ -e "$state/$2" ]; then rm -f "$state/$2"; echo "$2"; else exit 1; fi ;;
esac
"#
    );
    let mut setup = format!(
        "mkdir -p {dir}/bin {dir}/containers && cat > {dir}/bin/podman && chmod +x {dir}/bin/podman"
    );
    for name in existing {
        setup.push_str(&format!(
            " && touch {}",
            common::shell_word(&format!("{dir}/containers/{name}"))
        ));
    }
    let mut child = Process::new("docker")
        .args(["exec", "-i", &format!("zaptest-{host}"), "sh", "-c", &setup])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("docker exec");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write script");
    assert!(child.wait().expect("wait").success());
}

fn read_on(host: &str, path: &str) -> String {
    let output = Process::new("docker")
        .args(["exec", &format!("zaptest-{host}"), "cat", path])
        .output()
        .expect("docker exec");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn the_podman_pack_heals_a_leftover_container_on_the_jobs_host() {
    let fixture = Fixture::fleet();
    let dir = format!("/tmp/zap-podman-{}", std::process::id());
    // A container name cannot hold '/': the injection aims at the home folder.
    let hostile = "x'; touch zap-pwned; '";
    install_fake_podman("n1", &dir, &["web1", hostile]);
    fixture.write(
        "jobs/web.toml",
        &format!(
            r#"
[jobs.web]
host = "n1"
env = {{ PATH = "{dir}/bin:/usr/local/bin:/usr/bin:/bin" }}
fixups = ["podman"]
steps = ["podman run --name web1 nginx"]

[jobs.odd]
host = "n1"
env = {{ PATH = "{dir}/bin:/usr/local/bin:/usr/bin:/bin" }}
fixups = ["podman"]
steps = ["podman run --name \"x'; touch zap-pwned; '\" nginx"]
"#
        ),
    );
    let report = report_path(&fixture);
    let out = run(fixture.zap(&["run", "--report", &report]));
    println!("{}", out.stdout);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.lines_of("n1", "web.web", '|'),
        ["container web1 running on n1"]
    );
    let json = Output::report(std::path::Path::new(&report));
    let web = &json["jobs"][0];
    assert_eq!(web["fixups"][0]["rule"], "podman/name-in-use");
    assert_eq!(web["fixups"][0]["command"], "podman rm -f web1");
    assert_eq!(web["fixups"][0]["healed"], true);
    assert_eq!(web["restarts"], 1);
    // The remedy ran on n1, where the job runs, and got the hostile name as
    // one literal argument.
    let mut removed: Vec<String> = read_on("n1", &format!("{dir}/removed"))
        .lines()
        .map(String::from)
        .collect();
    removed.sort();
    assert_eq!(removed, ["web1", hostile]);
    let check = Process::new("docker")
        .args([
            "exec",
            "zaptest-n1",
            "sh",
            "-c",
            "test -e /root/zap-pwned || test -e /tmp/zap-pwned",
        ])
        .status()
        .expect("docker exec");
    assert!(!check.success(), "the hostile capture ran as code");
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn a_remedy_outside_ok_exit_is_a_failed_attempt() {
    let fixture = Fixture::fleet();
    let dir = format!("/tmp/zap-podman-fail-{}", std::process::id());
    install_fake_podman("n2", &dir, &[]);
    fixture.write(
        "jobs/web.toml",
        &format!(
            r#"
[jobs.web]
host = "n2"
env = {{ PATH = "{dir}/bin:/usr/local/bin:/usr/bin:/bin" }}
steps = ["echo 'the container name \"ghost\" is already in use' >&2; exit 125"]

[[jobs.web.fixup]]
when = 'the container name "(?P<name>[^"]+)" is already in use'
run = "podman rm -f {{name}}"
max = 2
"#
        ),
    );
    let report = report_path(&fixture);
    let out = run(fixture.zap(&["run", "--report", &report]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let job = &Output::report(std::path::Path::new(&report))["jobs"][0];
    assert_eq!(job["fixups"].as_array().map(Vec::len), Some(2), "{job}");
    assert_eq!(
        job["fixups"][0]["exit"], 1,
        "podman rm of a missing container exits 1"
    );
    assert_eq!(job["fixups"][0]["healed"], false);
    assert!(
        out.stdout
            .contains("fixup job/1 did not heal it after 2 tries")
    );
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn a_run_timeout_ends_on_time_though_escaped_children_hold_the_output() {
    let fixture = Fixture::fleet();
    let mark = fleet_marker();
    fixture.write(
        "jobs/web.toml",
        &format!(
            "[jobs.a]\nhosts = [\"n1\", \"n2\"]\nstop = {{ timeout = \"2s\" }}\n\
             steps = [\"setsid {mark} &\", \"(setsid {mark} &)\", \"sleep 1000\"]\n"
        ),
    );
    let report = report_path(&fixture);
    let started = Instant::now();
    let out = run(fixture.zap(&["run", "--timeout", "5s", "--report", &report]));
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(8),
        "took {took:?}:\n{}",
        out.stdout
    );
    let json = Output::report(std::path::Path::new(&report));
    for job in json["jobs"].as_array().expect("jobs") {
        assert_eq!(job["status"], "failed", "{job}");
        assert_eq!(job["failed_step"], 3, "{job}");
    }
    assert!(out.stdout.contains("timed out after 5s"), "{}", out.stdout);
    assert_eq!(gone_everywhere(&["n1", "n2"], &mark), Vec::<String>::new());
}

/// n1's keys, as the fleet's known_hosts holds them: `(type, base64)`.
fn n1_keys() -> Vec<(String, String)> {
    let known = std::fs::read_to_string(fleet_state().join("known_hosts")).expect("known_hosts");
    known
        .lines()
        .filter(|line| line.starts_with("[127.0.0.1]:2201 "))
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            Some((fields.next()?.to_string(), fields.next()?.to_string()))
        })
        .collect()
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn known_hosts_verdicts_agree_with_openssh() {
    let keys = n1_keys();
    assert!(!keys.is_empty(), "the fleet's known_hosts knows n1");
    let lines = |host: &str| -> String {
        keys.iter()
            .map(|(kind, key)| format!("{host} {kind} {key}\n"))
            .collect()
    };
    let revoked: String = keys
        .iter()
        .map(|(kind, key)| format!("@revoked [127.0.0.1]:2201 {kind} {key}\n"))
        .collect();
    // (case, known_hosts text, what OpenSSH 9.2 does): OpenSSH decides, zap
    // must agree; the expectation guards against both failing for another
    // reason.
    let cases = [
        ("plain", lines("[127.0.0.1]:2201"), true),
        (
            "revoked beside a plain line",
            format!("{}{revoked}", lines("[127.0.0.1]:2201")),
            false,
        ),
        ("wildcard", lines("[127.0.0.*]:2201"), true),
        ("question mark", lines("[127.0.0.?]:2201"), true),
        (
            "negated",
            lines("[127.0.0.*]:2201,![127.0.0.1]:2201"),
            false,
        ),
        ("other port", lines("[127.0.0.1]:2202"), false),
        (
            "tabs and a comment",
            lines("# fleet\n[127.0.0.1]:2201").replace(' ', "\t"),
            true,
        ),
    ];
    for (case, text, connects) in cases {
        let fixture = Fixture::fleet();
        let known = fixture.write("known_hosts", &text);
        let ssh = Process::new("ssh")
            .arg("-F")
            .arg(fleet_state().join("ssh_config"))
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known.display()))
            .args([
                "-o",
                "BatchMode=yes",
                "-p",
                "2201",
                "root@127.0.0.1",
                "true",
            ])
            .output()
            .expect("ssh");
        let hosts = common::fleet_hosts_toml().replace(
            &format!("{}/known_hosts", fleet_state().display()),
            &known.display().to_string(),
        );
        fixture.write("hosts.toml", &hosts);
        fixture.write(
            "jobs/web.toml",
            "[jobs.a]\nhost = \"n1\"\nsteps = [\"true\"]\n",
        );
        let zap = run(fixture.zap(&["run"]));
        let ssh_says = String::from_utf8_lossy(&ssh.stderr).to_string();
        assert_eq!(
            ssh.status.success(),
            connects,
            "{case}: ssh says {ssh_says}"
        );
        assert_eq!(
            zap.code == 0,
            ssh.status.success(),
            "{case}: ssh {:?} ({ssh_says}), zap {}:\n{}",
            ssh.status.code(),
            zap.code,
            zap.stdout
        );
        if case.starts_with("revoked") {
            assert!(ssh_says.contains("revoked"), "{case}: {ssh_says}");
            assert_eq!(zap.code, 3, "{}", zap.stdout);
            assert!(
                zap.stdout.contains("REVOKED") && zap.stdout.contains("line "),
                "{}",
                zap.stdout
            );
        }
    }
}
