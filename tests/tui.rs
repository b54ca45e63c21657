//! The terminal UI end to end: the real binary in a real terminal (tmux),
//! driven with `send-keys` and read with `capture-pane`, on the local host.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Fixture, processes_with};

const WAIT: Duration = Duration::from_secs(30);

/// A tmux server of the test's own (`-L`), killed when the test ends.
struct Tmux {
    socket: String,
    session: String,
}

impl Tmux {
    fn new(name: &str) -> Tmux {
        Tmux {
            socket: format!("zap-test-{}-{name}", std::process::id()),
            session: name.to_string(),
        }
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command
            .arg("-L")
            .arg(&self.socket)
            .arg("-f")
            .arg("/dev/null");
        command
    }

    fn run(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().expect("run tmux");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn start(&self, shell_command: &str) {
        self.run(&[
            "new-session",
            "-d",
            "-x",
            "120",
            "-y",
            "40",
            "-s",
            &self.session,
            shell_command,
        ]);
    }

    fn keys(&self, keys: &[&str]) {
        for key in keys {
            self.run(&["send-keys", "-t", &self.session, key]);
            // One key at a time, as a person types.
            std::thread::sleep(Duration::from_millis(150));
        }
    }

    /// The screen as text; with `colours`, with its SGR sequences.
    fn screen(&self, colours: bool) -> String {
        let mut args = vec!["capture-pane", "-p", "-t", &self.session];
        if colours {
            args.push("-e");
        }
        self.run(&args)
    }

    /// Waits until the screen holds every one of `texts`.
    fn wait_for(&self, texts: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.screen(false);
            if texts.iter().all(|text| screen.contains(text)) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("the screen never showed {texts:?}:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.command().arg("kill-server").output();
    }
}

fn tmux_missing() -> bool {
    Command::new("tmux").arg("-V").output().is_err()
}

fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{} was never written", path.display());
}

/// zap up in a tmux pane, from `dir`, with the default keys; after it
/// exits, the pane's shell writes zap's exit code and `stty -a` to files
/// and waits, so the terminal zap left behind can be looked at.
struct ZapInPane {
    tmux: Tmux,
    exit_file: std::path::PathBuf,
    stty_file: std::path::PathBuf,
    pid_file: std::path::PathBuf,
}

impl ZapInPane {
    fn start(name: &str, dir: &Path, env: &str) -> ZapInPane {
        // Keys come from the defaults, whatever the machine's user rebound.
        std::fs::create_dir_all(dir.join("config")).expect("config folder");
        let pane = ZapInPane {
            tmux: Tmux::new(name),
            exit_file: dir.join("exit-code"),
            stty_file: dir.join("stty"),
            pid_file: dir.join("zap-pid"),
        };
        let zap = env!("CARGO_BIN_EXE_zap");
        // `sh -c 'echo $$ …; exec zap'`: zap's own pid, for kill -TERM.
        let shell_command = format!(
            "cd '{dir}' && XDG_CONFIG_HOME='{dir}/config' {env} sh -c 'echo $$ > \"$0\"; exec \"$@\"' \
             '{pid}' '{zap}' --config '{dir}' up; echo $? > '{exit}'; stty -a > '{stty}'; sleep 60",
            dir = dir.display(),
            pid = pane.pid_file.display(),
            exit = pane.exit_file.display(),
            stty = pane.stty_file.display(),
        );
        pane.tmux.start(&shell_command);
        pane
    }

    fn format(&self, format: &str) -> String {
        let session = &self.tmux.session;
        self.tmux
            .run(&["display", "-p", "-t", session, format])
            .trim()
            .to_string()
    }

    /// zap's exit code, once it has exited.
    fn exit_code(&self) -> String {
        wait_for_file(&self.exit_file).trim().to_string()
    }

    /// After zap exited: the shell's terminal is as it was before zap took
    /// it: the main screen, a visible cursor, cooked mode with echo.
    fn assert_terminal_given_back(&self) {
        assert_eq!(
            self.format("#{alternate_on}"),
            "0",
            "the alternate screen is left"
        );
        assert_eq!(self.format("#{cursor_flag}"), "1", "the cursor is visible");
        let stty = wait_for_file(&self.stty_file);
        let flags: Vec<&str> = stty.split_whitespace().collect();
        for flag in ["icanon", "echo", "isig", "icrnl", "opost"] {
            assert!(flags.contains(&flag), "{flag} is on again: {stty}");
        }
        // Typed text shows, as a terminal in cooked mode echoes it.
        self.tmux.keys(&["typed-after-zap"]);
        self.tmux.wait_for(&["typed-after-zap"]);
    }
}

/// These tests drive the real binary in tmux: without it they would prove
/// nothing, so they fail, saying what to install.
fn need_tmux() {
    assert!(
        !tmux_missing(),
        "tmux is missing: install it (scripts/test-all does)"
    );
}

/// A command line found nowhere else: `sleep` of a number of seconds
/// unique to this test process and `salt`.
fn marker(salt: u32) -> String {
    format!(
        "sleep {}",
        700_000 + salt * 100_000 + std::process::id() % 90_000
    )
}

/// What the wheel sends in a terminal with SGR mouse reports (which zap
/// asks for): one notch up over column 10, row 10.
const WHEEL_UP: &str = "\x1b[<64;10;10M";

#[test]
fn the_tui_shows_jobs_failures_and_colours_restarts_and_quits_cleanly() {
    need_tmux();
    let fixture = Fixture::new();
    let marker = marker(0);
    fixture.write(
        "jobs/app.toml",
        &format!(
            "[jobs.ok]\nhost = \"local\"\n\
             steps = [\"seq 1 100; printf '\\\\033[32mgreen %s\\\\n' hello; printf 'still green\\\\033[0m\\\\n'\", \"exec {marker}\"]\n\
             [jobs.bad]\nhost = \"local\"\n\
             steps = [\"echo setting up\", \"echo boom >&2; exit 7\", \"echo never\"]\n"
        ),
    );
    let pane = ZapInPane::start("tui", fixture.path(), "");
    let tmux = &pane.tmux;

    // The jobs appear; the failing one with its step and code.
    let screen = tmux.wait_for(&["ok@local", "bad@local", "failed", "2/3 echo boom", "exit 7"]);
    assert!(screen.contains("2 jobs: 1 running, 1 failed"), "{screen}");
    assert_eq!(pane.format("#{alternate_on}"), "1");

    // Ctrl+C asks to quit and reaches no job: it runs on, unrestarted.
    tmux.keys(&["C-c"]);
    tmux.wait_for(&["stop 1 job and quit?"]);
    tmux.keys(&["Escape"]);
    let screen = tmux.wait_for(&["ok@local"]);
    assert!(!screen.contains("and quit?"), "{screen}");
    assert_eq!(processes_with(&marker).len(), 1, "the job runs on");
    // Nor could it: the job has no terminal and a process group of its own.
    let job = processes_with(&marker)[0]
        .split(':')
        .next()
        .expect("a pid")
        .to_string();
    let zap = wait_for_file(&pane.pid_file);
    let (job, zap) = (stat_of(&job), stat_of(zap.trim()));
    assert_ne!(job.pgrp, zap.pgrp, "{job:?} {zap:?}");
    assert_ne!(job.session, zap.session, "{job:?} {zap:?}");
    assert_eq!(job.tty, 0, "the job has no controlling terminal: {job:?}");

    // A narrower terminal: the fleet view is drawn again to its width.
    tmux.run(&["resize-window", "-t", "tui", "-x", "60", "-y", "20"]);
    let deadline = Instant::now() + WAIT;
    loop {
        let screen = tmux.screen(false);
        let lines: Vec<&str> = screen.lines().collect();
        let fits = lines.len() == 20
            && lines.iter().all(|line| line.chars().count() <= 60)
            && lines[0].contains("2 jobs")
            && lines[19].contains("Enter open");
        if fits {
            break;
        }
        assert!(Instant::now() < deadline, "not redrawn at 60×20:\n{screen}");
        std::thread::sleep(Duration::from_millis(100));
    }
    tmux.run(&["resize-window", "-t", "tui", "-x", "120", "-y", "40"]);

    // Enter on the first job shows its output, in colour: a colour left
    // on at the end of a line carries to the next, as on a terminal.
    tmux.keys(&["Down", "Enter"]);
    tmux.wait_for(&["app.ok@local", "green hello", "still green", "step 2/2"]);
    let coloured = tmux.screen(true);
    for text in ["green hello", "still green"] {
        // The output's line, not the step's separator quoting the command.
        let line = coloured
            .lines()
            .find(|line| line.contains(text) && !line.contains("printf"))
            .expect("the line");
        let before = &line[..line.find(text).expect("text")];
        assert!(
            before.ends_with("\x1b[32m") || before.ends_with("\x1b[38;5;2m"),
            "{text} is green: {line:?}"
        );
    }

    // The wheel scrolls the output, which stops following it.
    tmux.run(&["send-keys", "-t", "tui", "-l", WHEEL_UP]);
    tmux.wait_for(&["paused"]);
    tmux.keys(&["f"]);
    tmux.wait_for(&["follow"]);

    // R restarts it: a new shell, counted in the title.
    tmux.keys(&["R"]);
    tmux.wait_for(&["restarts 1"]);
    let deadline = Instant::now() + WAIT;
    while processes_with(&marker).len() != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        processes_with(&marker).len(),
        1,
        "{:?}",
        processes_with(&marker)
    );

    // q asks, y quits: exit 0, no job left, the terminal given back.
    tmux.keys(&["Escape", "q"]);
    tmux.wait_for(&["stop 1 job and quit?"]);
    tmux.keys(&["y"]);
    assert_eq!(pane.exit_code(), "0");
    assert_eq!(processes_with(&marker), Vec::<String>::new());
    let screen = tmux.wait_for(&["zap: quit from the terminal UI"]);
    assert!(!screen.contains("NAME"), "the UI is gone:\n{screen}");
    pane.assert_terminal_given_back();
}

/// What /proc/PID/stat says of a process's group, session and terminal.
#[derive(Debug)]
struct Stat {
    pgrp: u64,
    session: u64,
    tty: u64,
}

fn stat_of(pid: &str) -> Stat {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the process");
    // After the name: state, ppid, pgrp, session, tty_nr.
    let (_, rest) = stat.rsplit_once(") ").expect("stat");
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(1)
        .take(4)
        .map(|field| field.parse().expect("a number"))
        .collect();
    Stat {
        pgrp: fields[1],
        session: fields[2],
        tty: fields[3],
    }
}

/// One job that runs until stopped, named by `marker`.
fn one_running_job(fixture: &Fixture, marker: &str) {
    fixture.write(
        "jobs/app.toml",
        &format!("[jobs.long]\nhost = \"local\"\nsteps = [\"exec {marker}\"]\n"),
    );
}

fn wait_until_gone(marker: &str) {
    let deadline = Instant::now() + WAIT;
    while !processes_with(marker).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        processes_with(marker),
        Vec::<String>::new(),
        "no job is left"
    );
}

#[test]
fn sigterm_stops_the_jobs_and_gives_the_terminal_back() {
    need_tmux();
    let fixture = Fixture::new();
    let marker = marker(1);
    one_running_job(&fixture, &marker);
    let pane = ZapInPane::start("term", fixture.path(), "");
    pane.tmux.wait_for(&["long@local", "1 job: 1 running"]);
    assert_eq!(processes_with(&marker).len(), 1);

    let pid = wait_for_file(&pane.pid_file);
    let killed = Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .expect("run kill");
    assert!(killed.success());

    // Stopped on request, not failed: exit 0.
    assert_eq!(pane.exit_code(), "0");
    wait_until_gone(&marker);
    pane.tmux.wait_for(&["SIGTERM"]);
    pane.assert_terminal_given_back();
}

/// The panic on demand exists in debug builds only: a release build has no
/// such test.
#[cfg(debug_assertions)]
#[test]
fn a_panic_in_the_ui_gives_the_terminal_back_and_stops_the_jobs() {
    need_tmux();
    let fixture = Fixture::new();
    let marker = marker(2);
    one_running_job(&fixture, &marker);
    let pane = ZapInPane::start(
        "panic",
        fixture.path(),
        "RUST_BACKTRACE=0 ZAP_TEST_UI_PANIC_KEY=P",
    );
    pane.tmux.wait_for(&["long@local", "1 job: 1 running"]);
    assert_eq!(processes_with(&marker).len(), 1);

    pane.tmux.keys(&["P"]);
    // zap failed, not the job: EX_SOFTWARE, none of the codes that speak of jobs.
    assert_eq!(pane.exit_code(), "70");
    wait_until_gone(&marker);
    // The message is readable on the shell's screen, not lost with the UI's
    // (no backtrace: it would push the message off the pane).
    pane.tmux.wait_for(&["panicked", "a panic on demand"]);
    pane.assert_terminal_given_back();
}
