//! `zap up` against the container fleet (`scripts/fleet up`): nothing is
//! left running on any host, a killed zap's leftovers are cleaned up, a host
//! that freezes is noticed and recovered, and a flood holds nobody back.

mod common;

use std::process::Command as Process;
use std::time::{Duration, Instant};

use common::{Fixture, Running, docker, fleet_marker as marker, gone_everywhere, remote_processes};

const MINUTE: Duration = Duration::from_secs(60);

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn ctrl_c_leaves_no_process_on_any_host() {
    let fixture = Fixture::fleet();
    let mark = marker();
    fixture.write(
        "jobs/app.toml",
        &format!(
            "[jobs.db]\nhosts = [\"n1\", \"n2\"]\nsteps = [\"cd /tmp\", \"echo ready; {mark}\"]\nready = {{ log = \"ready\" }}\n\
             [jobs.web]\nhosts = [\"n3\"]\nafter = [\"db\"]\nstop = {{ timeout = \"2s\" }}\n\
             steps = [\"sh -c '{mark}' & sh -c 'trap \\\"\\\" TERM; {mark}' & wait\"]\n"
        ),
    );
    let zap = Running::start(&fixture, &["up", "--headless"]);
    zap.wait_for("n3 app.web[1]", MINUTE);
    std::thread::sleep(Duration::from_millis(500));
    for host in ["n1", "n2", "n3"] {
        assert!(
            !remote_processes(host, &mark).is_empty(),
            "{host} runs its job"
        );
    }
    zap.signal(libc::SIGINT);
    let (code, output) = zap.wait(MINUTE);
    println!("{output}");
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        gone_everywhere(&["n1", "n2", "n3"], &mark),
        Vec::<String>::new()
    );
    let web_stop = line_with(&output, &["app.web", "~ stopped"]).expect("web stopped");
    let db_stop = line_with(&output, &["app.db", "~ stopped"]).expect("db stopped");
    assert!(web_stop < db_stop, "the dependent stops first:\n{output}");
}

/// The index of the first line that holds every one of `parts`.
fn line_with(output: &str, parts: &[&str]) -> Option<usize> {
    output
        .lines()
        .position(|line| parts.iter().all(|part| line.contains(part)))
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn after_kill_9_the_next_up_stops_the_leftovers_and_runs_one_copy() {
    let fixture = Fixture::fleet();
    let mark = marker();
    fixture.write(
        "jobs/app.toml",
        &format!("[jobs.worker]\nhosts = [\"n1\", \"n2\"]\nsteps = [\"{mark}\"]\n"),
    );
    let first = Running::start(&fixture, &["up", "--headless"]);
    first.wait_for("n2 app.worker[1]", MINUTE);
    first.wait_for("n1 app.worker[1]", MINUTE);
    first.signal(libc::SIGKILL);
    let _ = first.wait(MINUTE);
    std::thread::sleep(Duration::from_millis(500));
    for host in ["n1", "n2"] {
        assert_eq!(
            remote_processes(host, &mark).len(),
            1,
            "kill -9 leaves {host}'s job"
        );
    }
    let second = Running::start(&fixture, &["up", "--headless"]);
    second.wait_for("left running by an earlier zap", MINUTE);
    second.wait_for("n1 app.worker[1]", MINUTE);
    second.wait_for("n2 app.worker[1]", MINUTE);
    std::thread::sleep(Duration::from_millis(500));
    for host in ["n1", "n2"] {
        assert_eq!(
            remote_processes(host, &mark).len(),
            1,
            "exactly one copy on {host}"
        );
    }
    assert_eq!(
        second.count("left running by an earlier zap"),
        2,
        "{}",
        second.output()
    );
    second.signal(libc::SIGTERM);
    let (code, output) = second.wait(MINUTE);
    assert_eq!(code, 0, "{output}");
    assert_eq!(gone_everywhere(&["n1", "n2"], &mark), Vec::<String>::new());
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn a_frozen_host_is_lost_then_recovered_and_the_others_never_notice() {
    let fixture = Fixture::fleet();
    // Keepalives every second: "lost" within about three of them.
    let hosts = common::fleet_hosts_toml().replace("keepalive = \"5s\"", "keepalive = \"1s\"");
    fixture.write("hosts.toml", &hosts);
    let mark = marker();
    fixture.write(
        "jobs/app.toml",
        &format!(
            "[jobs.far]\nhost = \"n4\"\nrestart = \"on-failure\"\nsteps = [\"echo up on $(hostname)\", \"{mark}\"]\n\
             [jobs.near]\nhost = \"n1\"\nsteps = [\"i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.5; done\"]\n"
        ),
    );
    let zap = Running::start(&fixture, &["up", "--headless"]);
    zap.wait_for("up on n4", MINUTE);
    zap.wait_for("tick 2", MINUTE);
    docker(&["pause", "zaptest-n4"]);
    let paused = Instant::now();
    zap.wait_for("~ lost:", MINUTE);
    let detected = paused.elapsed();
    let ticks_while_down = zap.count("| tick");
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        zap.count("| tick") > ticks_while_down + 3,
        "n1's job went on"
    );
    docker(&["unpause", "zaptest-n4"]);
    assert!(
        detected < Duration::from_secs(20),
        "took {detected:?} to notice"
    );
    zap.wait_for("the host answers again", MINUTE);
    zap.wait_for("(restart 1)", MINUTE);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        remote_processes("n4", &mark).len(),
        1,
        "the old copy was stopped, one runs"
    );
    zap.signal(libc::SIGINT);
    let (code, output) = zap.wait(MINUTE);
    println!("{output}");
    assert_eq!(code, 0, "{output}");
    assert_eq!(gone_everywhere(&["n1", "n4"], &mark), Vec::<String>::new());
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn a_flood_on_one_host_does_not_hold_back_a_quiet_job() {
    let fixture = Fixture::fleet();
    fixture.write(
        "jobs/app.toml",
        "[jobs.flood]\nhost = \"n1\"\nsteps = [\"head -c 100000000 /dev/zero | tr '\\\\0' x | fold -w 100\"]\n\
         [jobs.quiet]\nhost = \"n2\"\nsteps = [\"for i in 1 2 3 4 5 6; do echo quiet $i; sleep 0.5; done\"]\n\
         [jobs.neighbour]\nhost = \"n1\"\nsteps = [\"for i in 1 2 3 4 5 6; do echo beside $i; sleep 0.5; done\"]\n",
    );
    let zap = Running::start(&fixture, &["up", "--headless"]);
    let started = Instant::now();
    zap.wait_for("quiet 6", MINUTE);
    zap.wait_for("beside 6", MINUTE);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "quiet output was held back: {:?}",
        started.elapsed()
    );
    zap.signal(libc::SIGINT);
    let (code, _) = zap.wait(MINUTE);
    assert_eq!(code, 0);
}

/// `zap status --json`, parsed.
fn status_json(fixture: &Fixture) -> serde_json::Value {
    let out = common::run(fixture.zap(&["status", "--json"]));
    serde_json::from_str(&out.stdout).unwrap_or(serde_json::Value::Null)
}

fn job_of<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status
        .as_array()
        .and_then(|jobs| jobs.iter().find(|job| job["job"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn status_shows_each_jobs_recent_cpu_and_memory() {
    let fixture = Fixture::fleet();
    fixture.write(
        "jobs/load.toml",
        "[jobs.spin]\nhost = \"n3\"\nsteps = [\"sleep 5; while :; do :; done\"]\n\
         [jobs.idle]\nhost = \"n3\"\nsteps = [\"sleep 300\"]\n\
         [jobs.memory]\nhost = \"n3\"\nsteps = [\"{ head -c 200m /dev/zero; sleep 300; } | tail\"]\n",
    );
    let zap = Running::start(&fixture, &["up", "--headless"]);
    zap.wait_for("n3 load.memory[1]", MINUTE);
    std::thread::sleep(Duration::from_secs(4));
    let before = status_json(&fixture);
    let spin = job_of(&before, "spin");
    assert!(
        spin["cpu_percent"].as_f64().is_some_and(|cpu| cpu < 5.0),
        "still asleep: {spin}"
    );
    let pid = spin["pid"].as_u64().expect("pid");
    // The spin starts 5 s after the job; two polls (2 s each) later it shows.
    std::thread::sleep(Duration::from_secs(6));
    // The host's own view of the same process over the same kind of window,
    // as top would measure it: the machine may be busy, so zap's figure is
    // held to this, not to a fixed 100%.
    let reference = cpu_share_on("n3", pid, Duration::from_secs(2));
    let status = status_json(&fixture);
    let spin = job_of(&status, "spin");
    let cpu = spin["cpu_percent"].as_f64().expect("spin has a CPU figure");
    assert!(
        (cpu - reference).abs() <= 25.0 && cpu > 5.0,
        "zap says {cpu:.0}%, the host {reference:.0}%: {spin}"
    );
    assert!(
        spin["stats_age_s"].as_f64().is_some_and(|age| age < 5.0),
        "{spin}"
    );
    let idle = job_of(&status, "idle");
    assert!(
        idle["cpu_percent"].as_f64().is_some_and(|cpu| cpu < 5.0),
        "{idle}"
    );
    let memory = job_of(&status, "memory");
    let rss = memory["rss_bytes"].as_u64().expect("rss") as f64;
    let expected = 200.0 * 1024.0 * 1024.0;
    assert!(
        (rss / expected - 1.0).abs() < 0.25,
        "rss {rss} vs 200 MiB: {memory}"
    );
    assert!(
        memory["procs"].as_u64().is_some_and(|procs| procs >= 3),
        "{memory}"
    );
    zap.signal(libc::SIGINT);
    let (code, output) = zap.wait(MINUTE);
    assert_eq!(code, 0, "{output}");
}

/// The CPU share (100 = one core) process `pid` on `host` used over `window`,
/// from its own /proc/PID/stat read twice.
fn cpu_share_on(host: &str, pid: u64, window: Duration) -> f64 {
    let ticks = || -> f64 {
        let output = Process::new("docker")
            .args([
                "exec",
                &format!("zaptest-{host}"),
                "cat",
                &format!("/proc/{pid}/stat"),
            ])
            .output()
            .expect("docker exec");
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let after = text
            .rsplit_once(") ")
            .map_or("", |(_, rest)| rest)
            .to_string();
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat: 12 and 13 after comm.
        let number = |index: usize| {
            fields
                .get(index)
                .and_then(|field| field.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        number(11) + number(12)
    };
    let started = Instant::now();
    let first = ticks();
    std::thread::sleep(window);
    let second = ticks();
    let seconds = started.elapsed().as_secs_f64();
    (second - first) / 100.0 / seconds * 100.0
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn children_that_escape_the_group_are_stopped_with_their_job_but_a_group_scope_keeps_its_daemon() {
    let fixture = Fixture::fleet();
    let mark = marker();
    let kept = marker().replace("sleep ", "sleep 1");
    // Every way out of a process group a job may take, each holding the
    // job's output open but the nohup one.
    fixture.write(
        "jobs/app.toml",
        &format!(
            "[jobs.web]\nhosts = [\"n1\", \"n2\"]\nstop = {{ timeout = \"2s\" }}\n\
             steps = [\"setsid {mark} &\", \"nohup {mark} > /dev/null 2>&1 &\", \"(setsid {mark} &)\", \
                      \"sh -c 'trap \\\"\\\" TERM; setsid {mark}' &\", \"echo ready; sleep 1000\"]\n\
             [jobs.keeper]\nhosts = [\"n1\"]\nstop = {{ scope = \"group\", timeout = \"2s\" }}\n\
             steps = [\"setsid {kept} > /dev/null 2>&1 < /dev/null &\", \"echo up; sleep 1000\"]\n"
        ),
    );
    let zap = Running::start(&fixture, &["up", "--headless"]);
    // Each step but the last only forks: by the last, all four run.
    zap.wait_for("n1 app.web[5]     ~ step 5/5", MINUTE);
    zap.wait_for("n2 app.web[5]     ~ step 5/5", MINUTE);
    zap.wait_for("n1 app.keeper[2]  ~ step 2/2", MINUTE);
    for host in ["n1", "n2"] {
        let running = remote_processes(host, &mark);
        assert!(running.len() >= 4, "{host}: {running:?}");
    }
    let asked = Instant::now();
    zap.signal(libc::SIGINT);
    let (code, output) = zap.wait(MINUTE);
    let took = asked.elapsed();
    assert_eq!(code, 0, "{output}");
    // stop.timeout + 5 s at most, whatever the children hold.
    assert!(took < Duration::from_secs(7), "took {took:?}:\n{output}");
    assert_eq!(gone_everywhere(&["n1", "n2"], &mark), Vec::<String>::new());
    let daemon = remote_processes("n1", &kept);
    let _ = Process::new("docker")
        .args(["exec", "zaptest-n1", "pkill", "-f", &kept])
        .status();
    assert_eq!(
        daemon.len(),
        1,
        "the group-scoped job's daemon stays: {daemon:?}"
    );
}

#[test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
fn a_stdout_nobody_reads_freezes_neither_the_connections_nor_sigterm() {
    common::stdout_nobody_reads(&Fixture::fleet(), "n1");
}
