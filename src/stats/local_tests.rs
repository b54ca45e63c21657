//! This machine read the way every host is: `poll.awk` through the local
//! transport, the same parser and the same rates.

use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::poller::spawn_host_poller;
use super::{HostStats, ProcessStats};
use crate::model::HostName;
use crate::transport::host::Transport;

/// Polls this machine every 300 ms until `found` picks a figure out of a
/// snapshot, or 20 snapshots have gone by. This test process stands for a
/// job's shell: what settled outside every job is no longer read.
async fn poll_here_until<T>(mut found: impl FnMut(&HostStats) -> Option<T>) -> Option<T> {
    let (tx, mut rx) = mpsc::channel(4);
    let poller = spawn_host_poller(
        HostName("local".into()),
        Transport::local(),
        Duration::from_millis(300),
        tx,
        watch::channel(vec![std::process::id()]).1,
    );
    let mut seen = None;
    for _ in 0..20 {
        let stats = tokio::time::timeout(Duration::from_secs(30), rx.recv())
            .await
            .expect("a snapshot in time")
            .expect("the poller runs");
        assert_eq!(stats.unavailable, None);
        if let Some(figure) = found(&stats) {
            seen = Some(figure);
            break;
        }
    }
    drop(rx);
    let _ = tokio::time::timeout(Duration::from_secs(30), poller).await;
    seen
}

fn row(stats: &HostStats, pid: u32) -> Option<ProcessStats> {
    stats.processes.iter().find(|p| p.pid == pid).cloned()
}

#[tokio::test]
async fn this_machine_reads_with_pids_groups_sessions_and_memory() {
    let own = std::process::id();
    let (me, host) = poll_here_until(|stats| {
        let me = row(stats, own)?;
        stats.cpu_percent?;
        Some((me, stats.clone()))
    })
    .await
    .expect("this test process, with a host CPU figure");
    // SAFETY: getpgid(0) and getsid(0) ask about the caller; plain integers.
    let (group, session) = unsafe { (libc::getpgid(0), libc::getsid(0)) };
    assert_eq!(i64::from(me.pgid), i64::from(group), "{me:?}");
    // Under a pid namespace whose session leader lives outside it (a
    // container, a CI runner) the kernel says 0: compare, never assume.
    assert_eq!(i64::from(me.sid), i64::from(session), "{me:?}");
    assert!(me.rss_bytes > 1024 * 1024, "{me:?}");
    assert!(host.mem_total.is_some() && host.load.is_some() && host.cores.is_some());
    // Threads of this test binary are not rows of their own.
    let rows = host.processes.iter().filter(|p| p.pid == own).count();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn a_local_busy_loop_reads_as_a_core() {
    let mut spin = std::process::Command::new("/bin/sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .expect("spawn a busy loop");
    let pid = spin.id();
    let rate = poll_here_until(|stats| row(stats, pid)?.cpu_percent).await;
    let _ = spin.kill();
    let _ = spin.wait();
    let rate = rate.expect("a rate for the busy loop");
    // 2 cores shared with builds and other tests: well above idle will do.
    assert!(rate > 10.0 && rate < 130.0, "{rate}");
}
