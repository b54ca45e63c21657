//! How zap finds the processes a job started, and what a run of zap left
//! behind (a host that went away under its jobs, a zap that was killed),
//! and stops them without touching anything zap did not start.
//!
//! Every job shell carries `ZAP_RUN=<run id>` and `ZAP_INSTANCE=<marker of
//! this run of this instance>` in its own environment, which every process
//! it starts inherits (through `setsid`, `nohup` and double forks alike):
//! `/proc/PID/environ` tells whose a process is. A process group is only
//! killed when its leader still carries the id of the run that started it,
//! so a reused PID is left alone.

use std::hash::{Hash, Hasher};

use crate::model::{InstanceId, Signal};
use crate::transport::escape::quote;

/// The environment variable that marks a job's processes with their run.
pub const RUN_ID_VARIABLE: &str = "ZAP_RUN";

/// The environment variable that marks every process one run of one job
/// instance started.
pub const INSTANCE_VARIABLE: &str = "ZAP_INSTANCE";

/// The marker of run `generation` of `id` in zap run `run_id`: plain
/// letters, digits and dashes, unique per start.
pub fn instance_marker(run_id: &str, id: &InstanceId, generation: u64) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    id.to_string().hash(&mut hasher);
    format!("{run_id}-{:016x}-{generation}", hasher.finish())
}

/// Shell text that runs `body` with `$q` set to each process carrying
/// `marker` in its environment (one `grep` over `/proc/*/environ`; none
/// without `/proc`).
fn each_marked(marker: &str, body: &str) -> String {
    let wanted = quote(&format!("{INSTANCE_VARIABLE}={marker}"));
    format!(
        "for f in $(grep -lzxF -- {wanted} /proc/[0-9]*/environ 2>/dev/null); do \
           q=${{f#/proc/}}; q=${{q%/environ}}; {body}; \
         done; "
    )
}

/// A shell command that sends `signal` to every process carrying `marker`
/// in its environment but `spare` (the job's shell, when it is ending by
/// itself), and prints how many it signalled. The process group is
/// signalled apart ([`Effect::Signal`](super::state::Effect)).
pub fn signal_marked(signal: Signal, marker: &str, spare: Option<u32>) -> String {
    let name = signal.name();
    let spare = spare.unwrap_or(0);
    let each = each_marked(
        marker,
        &format!(
            "if [ \"$q\" != {spare} ] && kill -s {name} \"$q\" 2>/dev/null; then n=$((n+1)); fi"
        ),
    );
    format!("n=0; {each}echo \"$n\"")
}

/// A shell command that stops what a job left on its host: process group
/// `pgid` if its leader belongs to run `run_id`, and every process carrying
/// `marker` (when the job's stop scope is the tree), TERM then KILL a
/// second later. Prints what it found of the group (`killed`, `gone` or
/// `not-ours`) and how many marked processes it signalled.
pub fn stop_leftover_command(pgid: u32, run_id: &str, marker: Option<&str>) -> String {
    let wanted = quote(&format!("{RUN_ID_VARIABLE}={run_id}"));
    let marked = marker.map_or(String::new(), |marker| {
        each_marked(
            marker,
            "if kill -s TERM \"$q\" 2>/dev/null; then n=$((n+1)); pids=\"$pids $q\"; fi",
        )
    });
    format!(
        "p={pgid}; r=gone; n=0; pids=; \
         if [ -r /proc/$p/environ ]; then \
           if tr '\\0' '\\n' < /proc/$p/environ | grep -qxF -- {wanted}; then \
             r=killed; kill -s TERM -- -$p 2>/dev/null; \
           else r=not-ours; fi; \
         fi; \
         {marked}\
         if [ $r = killed ] || [ $n -gt 0 ]; then sleep 1; fi; \
         if [ $r = killed ]; then kill -s KILL -- -$p 2>/dev/null; fi; \
         for q in $pids; do kill -s KILL \"$q\" 2>/dev/null; done; \
         echo \"$r $n\""
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
        assert_eq!(
            run(&stop_leftover_command(theirs.id(), "run-a", None)),
            "not-ours 0"
        );
        assert_eq!(
            run(&stop_leftover_command(ours.id(), "run-a", None)),
            "killed 0"
        );
        assert!(ours.wait().is_ok_and(|status| !status.success()));
        assert_eq!(
            theirs.try_wait().ok().flatten(),
            None,
            "the other run's job still runs"
        );
        let _ = theirs.kill();
        let _ = theirs.wait();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            run(&stop_leftover_command(ours.id(), "run-a", None)),
            "gone 0"
        );
    }

    #[test]
    fn marked_processes_that_left_the_group_are_stopped_and_unmarked_ones_spared() {
        use std::os::unix::process::CommandExt;
        let marker = format!("test-{}", std::process::id());
        let spawn = |mark: &str| {
            Command::new("sleep")
                .arg("60")
                .env(INSTANCE_VARIABLE, mark)
                .process_group(0)
                .spawn()
                .expect("spawn")
        };
        // Two escaped children of a job whose group is already gone, and a
        // process of another instance.
        let mut first = spawn(&marker);
        let mut second = spawn(&marker);
        let mut other = spawn("someone-else");
        let out = run(&stop_leftover_command(999_999, "run-a", Some(&marker)));
        assert_eq!(out, "gone 2");
        assert!(first.wait().is_ok_and(|status| !status.success()));
        assert!(second.wait().is_ok_and(|status| !status.success()));
        assert_eq!(
            other.try_wait().ok().flatten(),
            None,
            "unmarked: left alone"
        );
        let _ = other.kill();
        let _ = other.wait();
        // The live-stop form: the spared pid is not signalled.
        let mut spared = spawn(&marker);
        let out = run(&signal_marked(Signal::Term, &marker, Some(spared.id())));
        assert_eq!(out, "0");
        assert_eq!(spared.try_wait().ok().flatten(), None);
        assert_eq!(run(&signal_marked(Signal::Term, &marker, None)), "1");
        assert!(spared.wait().is_ok_and(|status| !status.success()));
    }
}
