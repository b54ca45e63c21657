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

#[test]
fn the_tui_shows_jobs_failures_and_colours_restarts_and_quits_cleanly() {
    if tmux_missing() {
        assert!(
            std::env::var_os("CI").is_none(),
            "tmux is missing: scripts/test-all installs it"
        );
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let fixture = Fixture::new();
    let marker = format!("sleep {}", 700_000 + std::process::id() % 90_000);
    fixture.write(
        "jobs/app.toml",
        &format!(
            "[jobs.ok]\nhost = \"local\"\n\
             steps = [\"printf '\\\\033[32mgreen %s\\\\033[0m\\\\n' hello\", \"exec {marker}\"]\n\
             [jobs.bad]\nhost = \"local\"\n\
             steps = [\"echo setting up\", \"echo boom >&2; exit 7\", \"echo never\"]\n"
        ),
    );
    // Keys come from the defaults, whatever the machine's user rebound.
    std::fs::create_dir_all(fixture.path().join("config")).expect("config folder");
    let exit_file = fixture.path().join("exit-code");
    let zap = env!("CARGO_BIN_EXE_zap");
    let shell_command = format!(
        "cd '{dir}' && XDG_CONFIG_HOME='{dir}/config' '{zap}' --config '{dir}' up; echo $? > '{exit}'; sleep 60",
        dir = fixture.path().display(),
        exit = exit_file.display(),
    );
    let tmux = Tmux::new("tui");
    tmux.start(&shell_command);

    // The jobs appear; the failing one with its step and code.
    let screen = tmux.wait_for(&["ok@local", "bad@local", "failed", "2/3 echo boom", "exit 7"]);
    assert!(screen.contains("2 jobs: 1 running, 1 failed"), "{screen}");
    assert_eq!(
        tmux.run(&["display", "-p", "-t", "tui", "#{alternate_on}"])
            .trim(),
        "1"
    );

    // Enter on the first job shows its output, in colour.
    tmux.keys(&["Down", "Enter"]);
    tmux.wait_for(&["app.ok@local", "green hello", "step 2/2"]);
    let coloured = tmux.screen(true);
    let line = coloured
        .lines()
        .find(|line| line.contains("green hello"))
        .expect("the line");
    let before = &line[..line.find("green hello").expect("text")];
    assert!(
        before.ends_with("\x1b[32m") || before.ends_with("\x1b[38;5;2m"),
        "green is kept: {line:?}"
    );

    // R restarts it: a new shell, said in its output.
    tmux.keys(&["R"]);
    tmux.wait_for(&["(restart 1)"]);
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
    assert_eq!(wait_for_file(&exit_file).trim(), "0");
    assert_eq!(processes_with(&marker), Vec::<String>::new());
    let screen = tmux.wait_for(&["zap: quit from the terminal UI"]);
    assert!(!screen.contains("NAME"), "the UI is gone:\n{screen}");
    assert_eq!(
        tmux.run(&["display", "-p", "-t", "tui", "#{alternate_on}"])
            .trim(),
        "0"
    );
}
