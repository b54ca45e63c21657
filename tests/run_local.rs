//! `zap run` and `zap check` on the built-in `local` host: the whole path from
//! config to summary and report, without SSH.

mod common;

use std::time::{Duration, Instant};

use common::{Fixture, Output, repo_root, run};

fn local_job(fixture: &Fixture, system: &str, body: &str) {
    fixture.write(&format!("jobs/{system}.toml"), body);
}

#[test]
fn the_shipped_demo_runs_and_every_job_succeeds() {
    let mut command = assert_cmd::Command::cargo_bin("zap").expect("zap");
    command
        .current_dir(repo_root())
        .arg("run")
        .env_remove("ZAP_CONFIG");
    let out = run(command);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let build = out.lines_of("local", "demo.build", '|');
    assert!(
        build
            .iter()
            .any(|line| line.starts_with("hello from zap: built in /")),
        "{build:?}"
    );
    assert_eq!(
        out.lines_of("local", "demo.warnings", '!'),
        ["and this to stderr"]
    );
    assert!(
        out.stdout.contains("summary: 3 of 3 job instances ok"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_folder_without_config_runs_the_built_in_demo() {
    let fixture = Fixture::new();
    let out = run(fixture.zap(&["run", "demo.warnings"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("using the built-in demo"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.lines_of("local", "demo.warnings", '|'),
        ["this goes to stdout", "a line without a newline at the end"]
    );
}

#[test]
fn a_failing_step_is_named_with_its_code_and_later_steps_are_skipped() {
    let fixture = Fixture::new();
    local_job(
        &fixture,
        "web",
        r#"
[jobs.build]
host = "local"
steps = ["cd /tmp", "echo building; exit_with() { return $1; }; exit_with 7", "echo never"]
"#,
    );
    let report = fixture.path().join("report.json");
    let out = run(fixture.zap(&["run", "web", "--report", report.to_str().expect("utf-8")]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("| never"), "{}", out.stdout);
    assert!(
        out.stdout.contains("failed at step 2: exit 7"),
        "{}",
        out.stdout
    );
    let json = Output::report(&report);
    assert_eq!(json["ok"], false);
    let job = &json["jobs"][0];
    assert_eq!(job["system"], "web");
    assert_eq!(job["job"], "build");
    assert_eq!(job["host"], "local");
    assert_eq!(job["status"], "failed");
    assert_eq!(job["failed_step"], 2);
    assert_eq!(job["restarts"], 0);
    assert!(job["pid"].as_u64().is_some_and(|pid| pid > 1), "{job}");
    let steps = job["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[0]["index"], 1);
    assert_eq!(steps[0]["command"], "cd /tmp");
    assert_eq!(steps[0]["status"], "ok");
    assert_eq!(steps[0]["exit"], 0);
    assert!(steps[0]["duration_ms"].is_u64());
    assert_eq!(steps[1]["status"], "failed");
    assert_eq!(steps[1]["exit"], 7);
    assert_eq!(steps[2]["status"], "skipped");
    assert!(steps[2].get("exit").is_none() && steps[2].get("duration_ms").is_none());
    assert_eq!(job["fixups"], serde_json::json!([]));
}

#[test]
fn cd_and_export_carry_across_steps_and_the_pid_is_the_shells() {
    let fixture = Fixture::new();
    local_job(
        &fixture,
        "web",
        r#"
[jobs.env]
host = "local"
env = { GREETING = "it's \"quoted\" $HOME" }
steps = ["cd /usr", "export WHERE=here", "echo \"$PWD $WHERE $$\"", "echo \"$GREETING\""]
"#,
    );
    let report = fixture.path().join("report.json");
    let out = run(fixture.zap(&["run", "--report", report.to_str().expect("utf-8")]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let lines = out.lines_of("local", "web.env", '|');
    let pid = Output::report(&report)["jobs"][0]["pid"]
        .as_u64()
        .expect("pid");
    assert_eq!(lines[0], format!("/usr here {pid}"));
    assert_eq!(lines[1], "it's \"quoted\" $HOME");
}

#[test]
fn stderr_is_kept_apart_and_marked() {
    let fixture = Fixture::new();
    local_job(
        &fixture,
        "web",
        "[jobs.mixed]\nhost = \"local\"\nsteps = [\"echo out; echo err >&2; echo out2\"]\n",
    );
    let out = run(fixture.zap(&["run"]));
    assert_eq!(out.code, 0);
    assert_eq!(out.lines_of("local", "web.mixed", '|'), ["out", "out2"]);
    assert_eq!(out.lines_of("local", "web.mixed", '!'), ["err"]);
}

#[test]
fn hostile_output_neither_crashes_nor_stalls_zap() {
    let fixture = Fixture::new();
    local_job(
        &fixture,
        "web",
        r#"
[jobs.hostile]
host = "local"
steps = [
  "head -c 10485760 /dev/zero | tr '\\0' a; echo",
  "head -c 200000 /dev/urandom",
  "printf 'bad \\377\\376 utf8 and a NUL \\000 here\\n'",
  "echo '@@zap:00000000000000000000000000000000:exit:1:0'; echo '@@zap:step:9'",
  "echo survived",
]
"#,
    );
    let report = fixture.path().join("report.json");
    let started = Instant::now();
    let out = run(fixture.zap(&["run", "--report", report.to_str().expect("utf-8")]));
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.contains("that line was 10485760 bytes long"),
        "no split note"
    );
    let lines = out.lines_of("local", "web.hostile", '|');
    assert!(
        lines
            .iter()
            .any(|line| line.starts_with("bad \u{fffd}\u{fffd} utf8"))
    );
    assert!(
        lines.iter().any(|line| line.starts_with("@@zap:0000")),
        "a fake marker is output"
    );
    assert_eq!(lines.last().map(String::as_str), Some("survived"));
    let json = Output::report(&report);
    let steps = json["jobs"][0]["steps"].as_array().expect("steps");
    assert!(steps.iter().all(|step| step["status"] == "ok"), "{steps:?}");
}

#[test]
fn jobs_still_running_at_the_timeout_are_stopped_and_failed() {
    let fixture = Fixture::new();
    let marker = fixture.path().join("pid");
    local_job(
        &fixture,
        "web",
        &format!(
            "[jobs.slow]\nhost = \"local\"\nstop = {{ timeout = \"2s\" }}\nsteps = [\"echo ok\", \"sleep 300 & echo $! > {}; wait\"]\n",
            marker.display()
        ),
    );
    let report = fixture.path().join("report.json");
    let started = Instant::now();
    let out = run(fixture.zap(&[
        "run",
        "--timeout",
        "1s",
        "--report",
        report.to_str().expect("utf-8"),
    ]));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let job = &Output::report(&report)["jobs"][0];
    assert_eq!(job["status"], "failed");
    assert_eq!(job["failed_step"], 2);
    assert_eq!(job["steps"][1]["status"], "killed");
    assert_eq!(job["steps"][1]["signal"], "TERM");
    let sleeper = std::fs::read_to_string(&marker).expect("pid file");
    assert!(
        gone_soon(sleeper.trim()),
        "the job's child was left running"
    );
}

#[test]
fn after_is_kept_and_a_failed_dependency_stops_its_dependents() {
    let fixture = Fixture::new();
    let file = fixture.path().join("made");
    local_job(
        &fixture,
        "web",
        &format!(
            r#"
[jobs.second]
host = "local"
after = ["first"]
steps = ["cat {file}"]

[jobs.first]
host = "local"
steps = ["sleep 0.3", "echo made-by-first > {file}"]

[jobs.doomed]
host = "local"
after = ["broken"]
steps = ["echo must not run"]

[jobs.broken]
host = "local"
steps = ["false"]
"#,
            file = file.display()
        ),
    );
    let report = fixture.path().join("report.json");
    let out = run(fixture.zap(&["run", "--report", report.to_str().expect("utf-8")]));
    assert_eq!(out.code, 1);
    assert_eq!(out.lines_of("local", "web.second", '|'), ["made-by-first"]);
    assert!(out.lines_of("local", "web.doomed", '|').is_empty());
    let json = Output::report(&report);
    let doomed = json["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|job| job["job"] == "doomed")
        .expect("doomed reported");
    assert_eq!(doomed["status"], "failed");
    assert_eq!(doomed["steps"][0]["status"], "skipped");
}

#[test]
fn selecting_a_dependent_job_runs_what_it_comes_after() {
    let fixture = Fixture::new();
    local_job(
        &fixture,
        "web",
        "[jobs.a]\nhost = \"local\"\nsteps = [\"echo a\"]\n[jobs.b]\nhost = \"local\"\nafter = [\"a\"]\nsteps = [\"echo b\"]\n",
    );
    let out = run(fixture.zap(&["run", "web.b@local"]));
    assert_eq!(out.code, 0);
    assert_eq!(out.lines_of("local", "web.a", '|'), ["a"]);
    assert_eq!(out.lines_of("local", "web.b", '|'), ["b"]);
}

#[test]
fn unknown_targets_are_a_usage_error() {
    let fixture = Fixture::new();
    local_job(
        &fixture,
        "web",
        "[jobs.a]\nhost = \"local\"\nsteps = [\"true\"]\n",
    );
    for target in ["nope", "web.nope", "web.a@elsewhere"] {
        let out = run(fixture.zap(&["run", target]));
        assert_eq!(out.code, 2, "{target}");
        assert!(out.stderr.contains("zap: "), "{}", out.stderr);
    }
}

#[test]
fn check_names_the_file_line_and_bad_value_and_exits_2() {
    let fixture = Fixture::new();
    local_job(
        &fixture,
        "web",
        "[jobs.a]\nhost = \"n9\"\nsteps = [\"true\"]\n",
    );
    let out = run(fixture.zap(&["check"]));
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("jobs/web.toml:2:"), "{}", out.stderr);
    assert!(out.stderr.contains("n9"), "{}", out.stderr);
    assert!(
        out.stderr.contains("host = \"n9\""),
        "the line is shown: {}",
        out.stderr
    );
    let run_out = run(fixture.zap(&["run"]));
    assert_eq!(run_out.code, 2, "run refuses a bad config too");
}

#[test]
fn check_accepts_the_shipped_demo() {
    let mut command = assert_cmd::Command::cargo_bin("zap").expect("zap");
    command
        .current_dir(repo_root())
        .args(["check", "--connect"]);
    let out = run(command);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("config ok"));
}

/// The process is gone (or a zombie waiting for init) within two seconds.
fn gone_soon(pid: &str) -> bool {
    for _ in 0..20 {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => return true,
            Ok(stat)
                if stat
                    .rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z')) =>
            {
                return true;
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    false
}

#[test]
fn zap_run_heals_a_known_failure_with_a_fixup_and_reports_it() {
    let fixture = Fixture::new();
    let needed = fixture.path().join("needed");
    local_job(
        &fixture,
        "web",
        &format!(
            r#"
[jobs.app]
host = "local"
steps = ["echo start", "[ -e {needed} ] || {{ echo 'missing file {needed}' >&2; exit 3; }}", "echo healthy"]

[[jobs.app.fixup]]
when = 'missing file (?P<path>\S+)'
stream = "stderr"
run = "touch {{path}} && echo made {{path}}"
"#,
            needed = needed.display()
        ),
    );
    let report = fixture.path().join("report.json");
    let out = run(fixture.zap(&["run", "--report", report.to_str().expect("utf-8")]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(
        out.lines_of("local", "web.app", '|'),
        ["start", "start", "healthy"]
    );
    assert!(
        out.stdout.contains("fixup job/1 ended (exit 0): healed"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("made {}", needed.display())),
        "the remedy's output is logged"
    );
    let job = &Output::report(&report)["jobs"][0];
    assert_eq!(job["status"], "ok");
    assert_eq!(job["restarts"], 1);
    assert_eq!(
        job["fixups"],
        serde_json::json!([{
            "rule": "job/1",
            "command": format!("touch {0} && echo made {0}", needed.display()),
            "exit": 0,
            "healed": true
        }])
    );
}

#[test]
fn a_hostile_capture_reaches_the_remedy_as_one_literal_word() {
    let fixture = Fixture::new();
    let seen = fixture.path().join("seen");
    let pwned = fixture.path().join("pwned");
    let hostile = format!(
        "x'; touch {}; echo '$(id) `id` \"q\" ; \\ $HOME",
        pwned.display()
    );
    // The job prints the hostile name as a remote program would.
    let message = fixture.write("message", &format!("container \"{hostile}\" is in use\n"));
    local_job(
        &fixture,
        "web",
        &format!(
            r#"
[jobs.app]
host = "local"
steps = ["[ -e {seen} ] || {{ cat {message} >&2; exit 125; }}"]

[[jobs.app.fixup]]
when = 'container "(?P<name>.+)" is in use'
run = "printf '%s' {{name}} > {seen}"
"#,
            seen = seen.display(),
            message = message.display(),
        ),
    );
    let out = run(fixture.zap(&["run"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(std::fs::read_to_string(&seen).expect("remedy ran"), hostile);
    assert!(!pwned.exists(), "the capture ran as code");
}

#[test]
fn a_fixup_that_never_heals_fails_the_job_after_max_tries() {
    let fixture = Fixture::new();
    local_job(
        &fixture,
        "web",
        r#"
[jobs.app]
host = "local"
steps = ["echo 'port 8080 is busy' >&2; exit 1"]

[[jobs.app.fixup]]
when = 'port (?P<port>\d+) is busy'
run = "echo cannot free {port}; exit 4"
max = 2
on = "local"
"#,
    );
    let report = fixture.path().join("report.json");
    let out = run(fixture.zap(&["run", "--report", report.to_str().expect("utf-8")]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("fixup job/1 did not heal it after 2 tries"),
        "{}",
        out.stdout
    );
    let job = &Output::report(&report)["jobs"][0];
    assert_eq!(job["status"], "failed");
    assert_eq!(job["fixups"].as_array().map(Vec::len), Some(2));
    assert_eq!(job["fixups"][1]["exit"], 4);
    assert_eq!(job["fixups"][1]["healed"], false);
}

#[test]
fn a_pty_job_runs_in_a_terminal_with_its_steps_still_told_apart() {
    let fixture = Fixture::new();
    local_job(
        &fixture,
        "web",
        r#"
[jobs.term]
host = "local"
pty = true
steps = ["cd /tmp", "[ -t 1 ] && echo \"terminal in $PWD\"; echo to stderr >&2", "exit 4", "echo never"]
"#,
    );
    let report = fixture.path().join("report.json");
    let out = run(fixture.zap(&["run", "--report", report.to_str().expect("utf-8")]));
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    // In a terminal stderr is the same stream as stdout.
    assert_eq!(
        out.lines_of("local", "web.term", '|'),
        ["terminal in /tmp", "to stderr"]
    );
    let job = &Output::report(&report)["jobs"][0];
    assert_eq!(job["failed_step"], 3);
    assert_eq!(job["steps"][2]["exit"], 4);
    assert_eq!(job["steps"][3]["status"], "skipped");
}

#[test]
fn escapes_in_a_jobs_output_are_shown_not_obeyed() {
    let fixture = Fixture::new();
    local_job(
        &fixture,
        "t",
        "[jobs.tricky]\nhost = \"local\"\n\
         steps = [\"printf 'a\\\\033]0;pwned\\\\007b\\\\033[2Jc 50%%\\\\r100%%\\\\n'\"]\n",
    );
    let out = run(fixture.zap(&["run"]));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains('\x1b'), "{:?}", out.stdout);
    assert!(!out.stdout.contains('\r'), "{:?}", out.stdout);
    assert_eq!(
        out.lines_of("local", "t.tricky", '|'),
        ["a^[]0;pwned^Gb^[[2Jc 50%^M100%"]
    );
}

/// Processes of this machine whose environment holds `NAME=value` exactly.
fn carrying(variable: &str) -> Vec<u32> {
    let wanted = variable.as_bytes();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        });
        if !zombie
            && environ
                .split(|&byte| byte == 0)
                .any(|entry| entry == wanted)
        {
            found.push(pid);
        }
    }
    found
}

/// Waits (bounded) until no process carries `variable`; returns those left.
fn until_none_carry(variable: &str) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = carrying(variable);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_timeout_stops_children_that_escaped_the_group_and_ends_on_time() {
    let fixture = Fixture::new();
    let mark = format!("ESCAPE_TEST={}", std::process::id());
    // Each of these leaves the job's process group and keeps its output
    // open; the last step would run for ever.
    local_job(
        &fixture,
        "web",
        &format!(
            "[jobs.escapes]\nhost = \"local\"\nenv = {{ ESCAPE_TEST = \"{}\" }}\n\
             stop = {{ timeout = \"2s\" }}\n\
             steps = [\"setsid sleep 300 &\", \"nohup setsid sleep 301 &\", \"(setsid sleep 302 &)\", \"sleep 1000\"]\n",
            std::process::id()
        ),
    );
    let report = fixture.path().join("report.json");
    let started = Instant::now();
    let out = run(fixture.zap(&[
        "run",
        "--timeout",
        "3s",
        "--report",
        report.to_str().expect("utf-8"),
    ]));
    let took = started.elapsed();
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    // TERM reaches every child at once: nothing waits for the KILL.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let job = &Output::report(&report)["jobs"][0];
    assert_eq!(job["status"], "failed");
    assert_eq!(job["failed_step"], 4);
    assert_eq!(job["steps"][3]["signal"], "TERM");
    assert!(out.stdout.contains("timed out after 3s"), "{}", out.stdout);
    assert_eq!(until_none_carry(&mark), Vec::<u32>::new());
}

#[test]
fn what_a_finished_job_left_running_is_stopped_unless_its_scope_is_the_group() {
    let fixture = Fixture::new();
    let pid = std::process::id();
    local_job(
        &fixture,
        "web",
        &format!(
            "[jobs.tidy]\nhost = \"local\"\nenv = {{ LEFT_TEST = \"tidy-{pid}\" }}\n\
             steps = [\"setsid sleep 300 &\", \"echo done\"]\n\
             [jobs.daemon]\nhost = \"local\"\nenv = {{ LEFT_TEST = \"daemon-{pid}\" }}\n\
             stop = {{ scope = \"group\" }}\n\
             steps = [\"setsid sleep 301 &\", \"echo done\"]\n"
        ),
    );
    let started = Instant::now();
    let out = run(fixture.zap(&["run"]));
    let took = started.elapsed();
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("2 of 2 job instances ok"),
        "{}",
        out.stdout
    );
    // The daemon holds the group job's output: the run ends 5 s after its
    // shell, not when the daemon does.
    assert!(took < Duration::from_secs(9), "took {took:?}");
    assert_eq!(
        until_none_carry(&format!("LEFT_TEST=tidy-{pid}")),
        Vec::<u32>::new()
    );
    let daemon = carrying(&format!("LEFT_TEST=daemon-{pid}"));
    assert_eq!(
        daemon.len(),
        1,
        "the group job's daemon runs on: {daemon:?}"
    );
    for pid in daemon {
        // SAFETY: kill(2) with plain integers.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    }
}
