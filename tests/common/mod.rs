//! Shared by the integration tests: a throwaway config folder and the `zap`
//! binary pointed at it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use tempfile::TempDir;

pub struct Fixture {
    dir: TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A config folder whose hosts.toml describes the container fleet
    /// (`scripts/fleet up`), with its key and known_hosts paths made absolute.
    pub fn fleet() -> Self {
        let fixture = Fixture::new();
        fixture.write("hosts.toml", &fleet_hosts_toml());
        fixture
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, relative: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folder");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }

    /// `zap --config DIR ARGS…`, with no ssh-agent so only key files are used.
    pub fn zap(&self, args: &[&str]) -> Command {
        let mut command = Command::cargo_bin("zap").expect("zap binary");
        command
            .arg("--config")
            .arg(self.dir.path())
            .args(args)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("ZAP_CONFIG")
            .timeout(std::time::Duration::from_secs(120));
        command
    }
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fleet_state() -> PathBuf {
    repo_root().join("tests/fleet/.state")
}

/// tests/fleet/hosts.toml with `.state/` made absolute.
pub fn fleet_hosts_toml() -> String {
    let text = std::fs::read_to_string(repo_root().join("tests/fleet/hosts.toml"))
        .expect("tests/fleet/hosts.toml");
    text.replace("\".state/", &format!("\"{}/", fleet_state().display()))
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(mut command: Command) -> Output {
    let output = command.output().expect("run zap");
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

impl Output {
    /// Output lines of one instance on one stream: `|` stdout, `!` stderr.
    pub fn lines_of(&self, host: &str, job: &str, mark: char) -> Vec<String> {
        self.stdout
            .lines()
            .filter_map(|line| {
                let rest = line.trim_start().strip_prefix(host)?.trim_start();
                let rest = rest.strip_prefix(job)?;
                let rest = rest.strip_prefix('[').map_or(Some(rest), |after| {
                    after.split_once(']').map(|(_, tail)| tail)
                })?;
                let rest = rest.trim_start();
                let text = rest.strip_prefix(mark)?;
                Some(text.strip_prefix(' ').unwrap_or(text).to_string())
            })
            .collect()
    }

    pub fn report(path: &Path) -> serde_json::Value {
        let text = std::fs::read_to_string(path).expect("report written");
        serde_json::from_str(&text).expect("report is JSON")
    }
}

/// A `zap` process running in the background (`zap up`), its stdout and
/// stderr collected line by line as they come.
pub struct Running {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Running {
    pub fn start(fixture: &Fixture, args: &[&str]) -> Running {
        Running::start_with_stdout(fixture, args, None)
    }

    /// As [`Running::start`], with stdout going to `stdout` when given
    /// (then only stderr is collected).
    pub fn start_with_stdout(
        fixture: &Fixture,
        args: &[&str],
        stdout: Option<std::fs::File>,
    ) -> Running {
        use std::io::BufRead;
        use std::process::Stdio;
        let to_file = stdout.is_some();
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("zap"))
            .arg("--config")
            .arg(fixture.path())
            .args(args)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("ZAP_CONFIG")
            .stdin(Stdio::null())
            .stdout(stdout.map_or_else(Stdio::piped, Stdio::from))
            .stderr(Stdio::piped())
            .spawn()
            .expect("start zap");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut pipes: Vec<Box<dyn std::io::Read + Send>> =
            vec![Box::new(child.stderr.take().expect("stderr"))];
        if !to_file {
            pipes.push(Box::new(child.stdout.take().expect("stdout")));
        }
        for pipe in pipes {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().expect("lines").push(line);
                }
            });
        }
        Running { child, lines }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> String {
        self.lines.lock().expect("lines").join("\n")
    }

    /// Waits until a line contains `text`; panics with the output otherwise.
    pub fn wait_for(&self, text: &str, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if self
                .lines
                .lock()
                .expect("lines")
                .iter()
                .any(|line| line.contains(text))
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!(
            "no line with {text:?} within {within:?}:\n{}",
            self.output()
        );
    }

    /// Waits until `times` lines contain `text`; panics with the output
    /// otherwise.
    pub fn wait_for_count(&self, text: &str, times: usize, within: std::time::Duration) {
        let deadline = std::time::Instant::now() + within;
        while self.count(text) < times {
            if std::time::Instant::now() > deadline {
                panic!(
                    "fewer than {times} lines with {text:?} within {within:?}:\n{}",
                    self.output()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// How many lines contain `text`.
    pub fn count(&self, text: &str) -> usize {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|line| line.contains(text))
            .count()
    }

    pub fn signal(&self, signal: i32) {
        let pid = i32::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) with plain integers.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// Waits for zap to exit and returns its exit code.
    pub fn wait(mut self, within: std::time::Duration) -> (i32, String) {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                std::thread::sleep(std::time::Duration::from_millis(100));
                return (status.code().unwrap_or(-1), self.output());
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("zap did not exit within {within:?}:\n{}", self.output());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` as one POSIX shell word.
pub fn shell_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Processes whose command line holds `marker`, from this machine's
/// table (zombies aside).
pub fn processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        });
        if cmdline.contains(marker) && !zombie {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

// ---- the container fleet ----

/// Command lines on container `host` that contain `marker`.
pub fn remote_processes(host: &str, marker: &str) -> Vec<String> {
    let output = std::process::Command::new("docker")
        .args([
            "exec",
            &format!("zaptest-{host}"),
            "ps",
            "-eo",
            "stat=,args=",
        ])
        .output()
        .expect("docker exec ps");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(marker) && !line.trim_start().starts_with('Z'))
        .map(String::from)
        .collect()
}

pub fn gone_everywhere(hosts: &[&str], marker: &str) -> Vec<String> {
    let mut left = Vec::new();
    for _ in 0..30 {
        left = hosts
            .iter()
            .flat_map(|host| remote_processes(host, marker))
            .collect();
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    left
}

/// `sleep N` with an N unique to one test run.
pub fn fleet_marker() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    format!("sleep {}", 200_000 + nanos % 700_000)
}

pub fn docker(args: &[&str]) {
    let status = std::process::Command::new("docker")
        .args(args)
        .status()
        .expect("docker");
    assert!(status.success(), "docker {args:?}");
}

/// Bytes in the files under `dir`, recursively.
pub fn bytes_under(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => bytes_under(&entry.path()),
            Ok(meta) => meta.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `zap up --headless` of a flooding job on `host` whose stdout is a fifo
/// nobody reads: the job's output still reaches the disk, `zap status`
/// answers within a second, and SIGTERM stops zap within stop.timeout (1 s)
/// and 5 s.
pub fn stdout_nobody_reads(fixture: &Fixture, host: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    use std::time::Duration;
    fixture.write(
        "jobs/app.toml",
        &format!(
            "[jobs.flood]\nhost = \"{host}\"\nsteps = [\"yes 'a line of output that fills the pipe'\"]\n\
             stop = {{ timeout = \"1s\" }}\n"
        ),
    );
    let fifo = fixture.path().join("out.fifo");
    let path = std::ffi::CString::new(fifo.display().to_string()).expect("path");
    // SAFETY: mkfifo(3) with a valid C string.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    // A reader that never reads: its end stays open, so the pipe fills.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("reader");
    let writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("writer");
    let zap = Running::start_with_stdout(fixture, &["up", "--headless"], Some(writer));
    // Far more output than the pipe and zap's queue for stdout hold.
    let logs = fixture.path().join(".zap/logs");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while bytes_under(&logs) < 16 * 1024 * 1024 {
        assert!(
            std::time::Instant::now() < deadline,
            "the job's output stopped reaching the disk at {} bytes:\n{}",
            bytes_under(&logs),
            zap.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..5 {
        let asked = std::time::Instant::now();
        let status = run(fixture.zap(&["status", "--json"]));
        let took = asked.elapsed();
        assert_eq!(status.code, 0, "{}", status.stderr);
        assert!(status.stdout.contains("\"running\""), "{}", status.stdout);
        assert!(took < Duration::from_secs(1), "zap status took {took:?}");
    }
    let signalled = std::time::Instant::now();
    zap.signal(libc::SIGTERM);
    let (code, output) = zap.wait(Duration::from_secs(6));
    assert_eq!(code, 0, "{output}");
    assert!(
        signalled.elapsed() < Duration::from_secs(6),
        "stop.timeout is 1s"
    );
}
