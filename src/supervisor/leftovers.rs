//! Processes a run of zap left behind (a host that went away under its jobs,
//! a zap that was killed): how to find them and stop them without touching
//! anything zap did not start. Every job shell carries `ZAP_RUN=<run id>` in
//! its environment; a process group is only killed when its leader still
//! carries the id of the run that started it, so a reused PID is left alone.

use crate::transport::escape::quote;

/// The environment variable that marks a job's processes with their run.
pub const RUN_ID_VARIABLE: &str = "ZAP_RUN";

/// A shell command that kills process group `pgid` (TERM, then KILL after a
/// second) if its leader belongs to run `run_id`, and prints what it did:
/// `killed`, `gone` or `not-ours`.
pub fn kill_if_ours(pgid: u32, run_id: &str) -> String {
    let wanted = quote(&format!("{RUN_ID_VARIABLE}={run_id}"));
    format!(
        "p={pgid}; \
         if [ ! -r /proc/$p/environ ]; then echo gone; \
         elif tr '\\0' '\\n' < /proc/$p/environ | grep -qxF -- {wanted}; then \
           kill -s TERM -- -$p 2>/dev/null; sleep 1; kill -s KILL -- -$p 2>/dev/null; echo killed; \
         else echo not-ours; fi"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::Duration;

    fn run(command: &str) -> String {
        let output = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .output()
            .expect("sh");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    fn spawn_group(run_id: &str) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        Command::new("/bin/sh")
            .arg("-c")
            .arg("sleep 60 & wait")
            .env(RUN_ID_VARIABLE, run_id)
            .process_group(0)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn")
    }

    #[test]
    fn a_group_of_this_run_is_killed_and_one_of_another_run_is_left_alone() {
        let mut ours = spawn_group("run-a");
        let mut theirs = spawn_group("run-b");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(run(&kill_if_ours(theirs.id(), "run-a")), "not-ours");
        assert_eq!(run(&kill_if_ours(ours.id(), "run-a")), "killed");
        assert!(ours.wait().is_ok_and(|status| !status.success()));
        assert_eq!(
            theirs.try_wait().ok().flatten(),
            None,
            "the other run's job still runs"
        );
        let _ = theirs.kill();
        let _ = theirs.wait();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(run(&kill_if_ours(ours.id(), "run-a")), "gone");
    }
}
