//! A full disk under `.zap/logs` (a small tmpfs mounted there): zap says so
//! at once, in its output and in `zap status`, goes on supervising, and
//! writes again once there is room.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use common::{Fixture, Running, run};

const SECONDS_30: Duration = Duration::from_secs(30);

/// A tmpfs of `size` mounted at a path, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("mount point");
        let status = Process::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs(at.to_path_buf())
    }

    fn grow(&self, size: &str) {
        let status = Process::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("run mount");
        assert!(status.success(), "remount");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Process::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root: mounts a tmpfs"]
fn a_full_logs_disk_is_said_at_once_and_writing_resumes_when_there_is_room() {
    let fixture = Fixture::new();
    let disk = Tmpfs::mount(&fixture.path().join(".zap/logs"), "128k");
    fixture.write(
        "jobs/app.toml",
        "[jobs.flood]\nhost = \"local\"\nsteps = [\"yes 'a line that fills the disk up' | head -c 600000\", \"sleep 1000\"]\n\
         [jobs.ticker]\nhost = \"local\"\nsteps = [\"i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.2; done\"]\n",
    );
    let started = Instant::now();
    let zap = Running::start(&fixture, &["up", "--headless"]);
    zap.wait_for("job output is not being written to disk", SECONDS_30);
    let told = started.elapsed();
    assert!(told < Duration::from_secs(5), "said after {told:?}");
    assert!(
        zap.output().contains("No space left on device"),
        "{}",
        zap.output()
    );

    let status = run(fixture.zap(&["status"]));
    assert_eq!(status.code, 0, "{}", status.stderr);
    assert!(
        status
            .stderr
            .contains("job output is not being written to disk"),
        "{}",
        status.stderr
    );
    assert!(status.stdout.contains("app.ticker"), "{}", status.stdout);

    // Supervising goes on: the ticker keeps ticking.
    let ticks = zap.count("| tick");
    zap.wait_for_count("| tick", ticks + 5, SECONDS_30);

    disk.grow("16m");
    zap.wait_for("job output is written to disk again", SECONDS_30);
    let status = run(fixture.zap(&["status"]));
    assert!(
        !status.stderr.contains("not being written"),
        "{}",
        status.stderr
    );
    let down = run(fixture.zap(&["down"]));
    assert_eq!(down.code, 0, "{}", down.stderr);
    let (code, output) = zap.wait(SECONDS_30);
    assert_eq!(code, 0, "{output}");
    // The flood's file lost lines for certain (the ticker's may not have:
    // a tmpfs still takes small appends into a page it already gave).
    let log = std::fs::read_to_string(fixture.path().join(".zap/logs/app.flood@local.log"))
        .expect("the flood's log");
    assert!(
        log.contains("lines of output are missing here"),
        "the file says what it missed"
    );
}
