//! `zap up` on the local host: supervision, the control commands, Ctrl+C and
//! the clean-up after a zap that was killed.

mod common;

use std::time::Duration;

use common::{Fixture, Running, processes_with, run};

const SECONDS_30: Duration = Duration::from_secs(30);

fn wait_until_gone(marker: &str) -> Vec<String> {
    for _ in 0..40 {
        let left = processes_with(marker);
        if left.is_empty() {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    processes_with(marker)
}

/// `sleep N` with an N unique to one test: its processes are found by it.
fn marker(fixture: &Fixture) -> String {
    let name = fixture.path().display().to_string();
    let seconds = name.bytes().fold(7u64, |hash, byte| {
        hash.wrapping_mul(31).wrapping_add(u64::from(byte))
    });
    format!("sleep {}", 100_000 + seconds % 800_000)
}

#[test]
fn ctrl_c_stops_every_job_and_exits_0() {
    let fixture = Fixture::new();
    let mark = marker(&fixture);
    fixture.write(
        "jobs/app.toml",
        &format!(
            "[jobs.db]\nhost = \"local\"\nsteps = [\"echo ready; exec {mark}\"]\nready = {{ log = \"ready\" }}\n\
             [jobs.web]\nhost = \"local\"\nafter = [\"db\"]\n\
             steps = [\"sh -c '{mark}' & sh -c 'trap \\\"\\\" TERM; {mark}' & wait\"]\n\
             stop = {{ timeout = \"1s\" }}\n"
        ),
    );
    let zap = Running::start(&fixture, &["up", "--headless"]);
    zap.wait_for("app.web[1]", SECONDS_30);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        processes_with(&mark).len() >= 3,
        "{:?}",
        processes_with(&mark)
    );
    zap.signal(libc::SIGINT);
    let (code, output) = zap.wait(SECONDS_30);
    assert_eq!(code, 0, "{output}");
    assert!(
        output.contains("app.web  ~ stopped (stopped by Ctrl+C)")
            || output.contains("stopped (stopped by Ctrl+C)"),
        "{output}"
    );
    assert_eq!(
        wait_until_gone(&mark),
        Vec::<String>::new(),
        "a process ignoring TERM is killed too"
    );
    assert!(
        !fixture.path().join(".zap/state").exists(),
        "nothing left to remember"
    );
}

#[test]
fn the_control_commands_drive_a_running_zap() {
    let fixture = Fixture::new();
    fixture.write(
        "jobs/app.toml",
        "[jobs.ticker]\nhost = \"local\"\nsteps = [\"echo first\", \"i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done\"]\n\
         [jobs.flaky]\nhost = \"local\"\nrestart = \"on-failure\"\nbackoff = { initial = \"30s\", max = \"60s\" }\nsteps = [\"echo oops >&2; exit 3\"]\n",
    );
    let zap = Running::start(&fixture, &["up", "--headless"]);
    zap.wait_for("tick 2", SECONDS_30);
    zap.wait_for("restarting in", SECONDS_30);

    let status = run(fixture.zap(&["status", "--json"]));
    assert_eq!(status.code, 0, "{}", status.stderr);
    let json: serde_json::Value = serde_json::from_str(&status.stdout).expect("json");
    let ticker = &json[0];
    assert_eq!(ticker["job"], "ticker");
    assert_eq!(ticker["state"], "running");
    assert_eq!(ticker["step"], 2);
    assert!(ticker["pid"].as_u64().is_some());
    assert!(ticker["uptime_s"].as_f64().is_some_and(|up| up > 0.0));
    let flaky = &json[1];
    assert_eq!(flaky["state"], "backoff");
    assert_eq!(flaky["last_exit"]["code"], 3);
    assert!(
        flaky["reason"]
            .as_str()
            .is_some_and(|reason| reason.starts_with("failed at step 1: exit 3; restarting in")),
        "{}",
        flaky["reason"]
    );

    let table = run(fixture.zap(&["status"]));
    assert!(table.stdout.contains("app.ticker"), "{}", table.stdout);

    let logs = run(fixture.zap(&["logs", "app.ticker", "--step", "2"]));
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert!(logs.stdout.contains("| tick 1"), "{}", logs.stdout);
    assert!(
        !logs.stdout.contains("| first"),
        "only step 2: {}",
        logs.stdout
    );

    let old_pid = ticker["pid"].as_u64().expect("pid");
    let restart = run(fixture.zap(&["restart", "app.ticker"]));
    assert_eq!(restart.code, 0, "{}", restart.stderr);
    zap.wait_for("(restart 1)", SECONDS_30);
    let json: serde_json::Value =
        serde_json::from_str(&run(fixture.zap(&["status", "--json"])).stdout).expect("json");
    assert_eq!(json[0]["restarts"], 1);
    assert_ne!(json[0]["pid"].as_u64(), Some(old_pid));

    let stop = run(fixture.zap(&["stop", "app.ticker"]));
    assert_eq!(stop.code, 0);
    zap.wait_for("stopped (zap stop)", SECONDS_30);
    let again = run(fixture.zap(&["stop", "app.ticker"]));
    assert_eq!(again.code, 1, "a stop of a stopped job does nothing");
    assert!(
        again
            .stderr
            .contains("app.ticker@local: nothing to do, it is stopped"),
        "{}",
        again.stderr
    );
    let start = run(fixture.zap(&["start", "app.ticker"]));
    assert_eq!(start.code, 0);
    zap.wait_for("(restart 2)", SECONDS_30);
    let twice = run(fixture.zap(&["start", "app.ticker", "app.flaky"]));
    assert_eq!(twice.code, 1, "{}", twice.stderr);
    assert!(
        twice
            .stderr
            .contains("starting app.flaky@local; app.ticker@local: nothing to do, it is running"),
        "the one that runs is named, the other starts: {}",
        twice.stderr
    );

    let unknown = run(fixture.zap(&["restart", "app.nope"]));
    assert_eq!(unknown.code, 1, "{}{}", unknown.stdout, unknown.stderr);

    let second = run(fixture.zap(&["up", "--headless"]));
    assert_eq!(second.code, 2, "a second zap up refuses");
    assert!(
        second.stderr.contains("already running"),
        "{}",
        second.stderr
    );

    let down = run(fixture.zap(&["down"]));
    assert_eq!(down.code, 0, "{}", down.stderr);
    let (code, output) = zap.wait(SECONDS_30);
    assert_eq!(code, 0, "{output}");
    let stored = run(fixture.zap(&["logs", "app.ticker"]));
    assert_eq!(
        stored.code, 0,
        "logs are read from .zap/logs once zap is gone"
    );
    assert!(stored.stdout.contains("| tick 1"), "{}", stored.stdout);
    let none = run(fixture.zap(&["status"]));
    assert_eq!(none.code, 2);
    assert!(none.stderr.contains("no zap is running"), "{}", none.stderr);
}

#[test]
fn a_killed_zap_leaves_a_record_and_the_next_up_stops_its_leftovers() {
    let fixture = Fixture::new();
    let mark = marker(&fixture);
    fixture.write(
        "jobs/app.toml",
        &format!("[jobs.sleeper]\nhost = \"local\"\nsteps = [\"{mark}\"]\n"),
    );
    let first = Running::start(&fixture, &["up", "--headless"]);
    first.wait_for("step 1/1", SECONDS_30);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(processes_with(&mark).len(), 1);
    first.signal(libc::SIGKILL);
    let _ = first.wait(SECONDS_30);
    assert_eq!(
        processes_with(&mark).len(),
        1,
        "kill -9 leaves the job running"
    );
    assert!(fixture.path().join(".zap/state").exists());

    let second = Running::start(&fixture, &["up", "--headless"]);
    second.wait_for("left running by an earlier zap", SECONDS_30);
    second.wait_for("step 1/1", SECONDS_30);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(processes_with(&mark).len(), 1, "exactly one copy runs");
    second.signal(libc::SIGTERM);
    let (code, output) = second.wait(SECONDS_30);
    assert_eq!(code, 0, "{output}");
    assert_eq!(wait_until_gone(&mark), Vec::<String>::new());
}

#[test]
fn a_flooding_job_does_not_hold_back_a_quiet_one() {
    // An endless flood: a bounded one may be all read before the quiet job
    // is done, and then nothing is flooding any more.
    let fixture = Fixture::new();
    fixture.write(
        "jobs/app.toml",
        "[jobs.flood]\nhost = \"local\"\nsteps = [\"tr '\\\\0' 'x' </dev/zero | fold -w 100\"]\n\
         [jobs.quiet]\nhost = \"local\"\nsteps = [\"for i in 1 2 3 4 5; do echo quiet $i; sleep 0.5; done\"]\n",
    );
    let zap = Running::start(&fixture, &["up", "--headless"]);
    let started = std::time::Instant::now();
    zap.wait_for("quiet 5", SECONDS_30);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "quiet output was held back: {:?}",
        started.elapsed()
    );
    // Stopping a job in full flood is prompt too.
    zap.signal(libc::SIGINT);
    let (code, output) = zap.wait(SECONDS_30);
    assert_eq!(code, 0);
    assert!(
        output.contains("stopped (stopped by Ctrl+C)"),
        "the flood was stopped"
    );
}

#[test]
fn a_backoff_is_announced_once_however_often_stats_are_polled() {
    let fixture = Fixture::new();
    fixture.write("hosts.toml", "[defaults]\nstats_every = \"200ms\"\n");
    fixture.write(
        "jobs/app.toml",
        "[jobs.flaky]\nhost = \"local\"\nrestart = \"on-failure\"\n\
         backoff = { initial = \"3s\", max = \"3s\" }\nsteps = [\"exit 3\"]\n",
    );
    let zap = Running::start(&fixture, &["up", "--headless"]);
    // Two full backoffs, each watched by some fifteen stats polls.
    zap.wait_for("(restart 2)", SECONDS_30);
    zap.signal(libc::SIGTERM);
    let (code, output) = zap.wait(SECONDS_30);
    assert_eq!(code, 0, "{output}");
    let announced: Vec<&str> = output
        .lines()
        .filter(|line| line.contains("restarting in"))
        .collect();
    assert!(
        announced.len() == 2 || announced.len() == 3,
        "one line per failure (the third may come before SIGTERM): {announced:#?}"
    );
    assert!(
        announced
            .iter()
            .all(|line| line.ends_with("failed at step 1: exit 3; restarting in 3.00s")),
        "each says the whole delay, as it was set: {announced:#?}"
    );
}

#[test]
fn a_stdout_nobody_reads_freezes_neither_the_control_socket_nor_sigterm() {
    common::stdout_nobody_reads(&Fixture::new(), "local");
}

#[test]
fn a_stuck_zap_gets_a_clear_message_instead_of_a_hanging_client() {
    let fixture = Fixture::new();
    fixture.write(
        "jobs/app.toml",
        "[jobs.idle]\nhost = \"local\"\nsteps = [\"exec sleep 600\"]\n",
    );
    let zap = Running::start(&fixture, &["up", "--headless"]);
    zap.wait_for("step 1/1", SECONDS_30);
    // Frozen: the socket still takes connections, nothing answers.
    zap.signal(libc::SIGSTOP);
    let asked = std::time::Instant::now();
    let status = run(fixture.zap(&["status", "--timeout", "1s"]));
    let took = asked.elapsed();
    zap.signal(libc::SIGCONT);
    assert_eq!(status.code, 1, "{}", status.stderr);
    assert!(
        status
            .stderr
            .contains("the running zap did not answer within 1s: it may be stuck"),
        "{}",
        status.stderr
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    zap.signal(libc::SIGTERM);
    let (code, output) = zap.wait(SECONDS_30);
    assert_eq!(code, 0, "{output}");
}

#[test]
fn a_job_flooding_its_restart_pattern_restarts_only_as_its_backoff_allows() {
    let fixture = Fixture::new();
    fixture.write(
        "jobs/app.toml",
        "[jobs.asks]\nhost = \"local\"\nbackoff = { initial = \"1s\", max = \"4s\" }\n\
         steps = [\"while :; do echo please %restart; sleep 0.01; done\"]\n",
    );
    let started = std::time::Instant::now();
    let zap = Running::start(&fixture, &["up", "--headless"]);
    // Backoffs of 1 s and 2 s come before the second restart.
    zap.wait_for("(restart 2)", SECONDS_30);
    let took = started.elapsed();
    zap.signal(libc::SIGTERM);
    let (code, output) = zap.wait(SECONDS_30);
    assert_eq!(code, 0, "{output}");
    assert!(
        took >= Duration::from_millis(2900),
        "two restarts in {took:?}:\n{output}"
    );
    assert!(
        !output.contains("(restart 3)") || took >= Duration::from_secs(7),
        "{output}"
    );
}

#[test]
fn a_start_right_after_a_stop_ends_running() {
    let fixture = Fixture::new();
    let mark = marker(&fixture);
    fixture.write(
        "jobs/app.toml",
        &format!("[jobs.worker]\nhost = \"local\"\nsteps = [\"echo working; exec {mark}\"]\n"),
    );
    let zap = Running::start(&fixture, &["up", "--headless"]);
    zap.wait_for("| working", SECONDS_30);
    let stop = run(fixture.zap(&["stop", "app.worker"]));
    let start = run(fixture.zap(&["start", "app.worker"]));
    assert_eq!(
        (stop.code, start.code),
        (0, 0),
        "{}{}",
        stop.stderr,
        start.stderr
    );
    zap.wait_for("(restart 1)", SECONDS_30);
    zap.wait_for_count("| working", 2, SECONDS_30);
    let json: serde_json::Value =
        serde_json::from_str(&run(fixture.zap(&["status", "--json"])).stdout).expect("json");
    assert_eq!(json[0]["state"], "running", "{json}");
    assert_eq!(processes_with(&mark).len(), 1, "one copy");
    zap.signal(libc::SIGTERM);
    let (code, output) = zap.wait(SECONDS_30);
    assert_eq!(code, 0, "{output}");
}
