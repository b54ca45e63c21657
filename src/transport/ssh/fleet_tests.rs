//! The SSH transport against real sshd: the container fleet of
//! `scripts/fleet up` (n1..n3 on 127.0.0.1:2201..2203; n4 is left to the
//! tests that stop hosts), plus a few local sockets that need no fleet.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::SshHostPool;
use crate::config::{HostKeyCheck, SshHost};
use crate::model::{ExitInfo, HostName};
use crate::transport::{CHUNK_QUEUE, Chunk, TransportError};

const FLEET: &str = "needs the container fleet (scripts/fleet up)";

fn state(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fleet/.state")
        .join(file)
}

fn spec(port: u16) -> SshHost {
    SshHost {
        address: "127.0.0.1".into(),
        port: Some(port),
        user: Some("root".into()),
        identity: Some(state("id_ed25519")),
        known_hosts: state("known_hosts"),
        host_key_check: HostKeyCheck::Strict,
        connect_timeout: Duration::from_secs(5),
        keepalive: Duration::from_secs(5),
        jump: None,
    }
}

fn pool(name: &str, spec: SshHost) -> Arc<SshHostPool> {
    Arc::new(SshHostPool::new(HostName(name.into()), spec, None))
}

/// Everything a started command sent, checking that `Exit` came last.
struct Ran {
    stdout: String,
    stderr: String,
    exit: ExitInfo,
    /// The connection died under the command (`Chunk::Lost`).
    lost: Option<String>,
}

async fn run(pool: &SshHostPool, command: &str, stdin: &[u8]) -> Result<Ran, TransportError> {
    let (tx, mut rx) = mpsc::channel(CHUNK_QUEUE);
    pool.start(command, stdin.to_vec(), tx).await?;
    let (mut stdout, mut stderr, mut exit, mut lost) = (Vec::new(), Vec::new(), None, None);
    while let Some(chunk) = rx.recv().await {
        assert!(exit.is_none(), "a chunk came after Exit: {chunk:?}");
        match chunk {
            Chunk::Stdout(data) => stdout.extend(data),
            Chunk::Stderr(data) => stderr.extend(data),
            Chunk::Exit(info) => exit = Some(info),
            Chunk::Lost(reason) => {
                exit = Some(ExitInfo::Unknown);
                lost = Some(reason);
            }
        }
    }
    Ok(Ran {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        exit: exit.expect("the pump always ends with Exit or Lost"),
        lost,
    })
}

/// A known_hosts file holding `lines`.
fn known_hosts(lines: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(lines.as_bytes()).expect("write known_hosts");
    file
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn output_streams_and_exit_code() {
    let n1 = pool("n1", spec(2201));
    let ran = run(&n1, "echo hi; echo err >&2; exit 3", b"")
        .await
        .expect(FLEET);
    assert_eq!(ran.stdout, "hi\n");
    assert_eq!(ran.stderr, "err\n");
    assert_eq!(ran.exit, ExitInfo::Code(3));
    // stdin reaches the command, then EOF.
    let ran = run(&n1, "cat; echo done", b"fed\n").await.expect(FLEET);
    assert_eq!(ran.stdout, "fed\ndone\n");
    assert_eq!(ran.exit, ExitInfo::Code(0));
    n1.close().await;
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn a_killed_shell_reports_its_signal() {
    let n2 = pool("n2", spec(2202));
    let ran = run(&n2, "kill -9 $$", b"").await.expect(FLEET);
    assert_eq!(ran.exit, ExitInfo::Signal("KILL".into()));
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn output_after_the_exit_status_is_kept() {
    let n3 = pool("n3", spec(2203));
    let ran = run(&n3, "(sleep 0.2; echo late) & exit 0", b"")
        .await
        .expect(FLEET);
    assert_eq!(ran.stdout, "late\n");
    assert_eq!(ran.exit, ExitInfo::Code(0));
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn run_capture_collects_a_short_command() {
    let n1 = pool("n1", spec(2201));
    let (exit, stdout, stderr) = n1
        .run_capture("echo out; echo oops >&2; exit 5")
        .await
        .expect(FLEET);
    assert_eq!(exit, ExitInfo::Code(5));
    assert_eq!(stdout, b"out\n");
    assert_eq!(stderr, b"oops\n");
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn sixteen_jobs_share_connections_beyond_max_sessions() {
    let n3 = pool("n3", spec(2203));
    let mut jobs = Vec::new();
    for index in 0..16 {
        let n3 = Arc::clone(&n3);
        jobs.push(tokio::spawn(async move {
            run(&n3, &format!("sleep 1; echo {index}"), b"").await
        }));
    }
    for (index, job) in jobs.into_iter().enumerate() {
        let ran = job.await.expect("task").expect(FLEET);
        assert_eq!(ran.stdout, format!("{index}\n"));
        assert_eq!(ran.exit, ExitInfo::Code(0));
    }
    // sshd's MaxSessions is 10: 16 channels need a second connection, and
    // no more than that once the limit is learned.
    let made = n3.connections_made();
    assert!((2..=3).contains(&made), "{made} connections");
    assert_eq!(n3.connection_count(), made);
    n3.close().await;
    assert_eq!(n3.connection_count(), 0);
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn a_flood_reaches_a_slow_reader_whole_while_other_jobs_run() {
    let n1 = pool("n1", spec(2201));
    let (tx, mut rx) = mpsc::channel(CHUNK_QUEUE);
    n1.start("head -c 20000000 /dev/zero; echo end >&2", Vec::new(), tx)
        .await
        .expect(FLEET);
    let flood = tokio::spawn(async move {
        let (mut bytes, mut chunks, mut exit) = (0, 0, None);
        while let Some(chunk) = rx.recv().await {
            match chunk {
                Chunk::Stdout(data) => bytes += data.len(),
                Chunk::Stderr(data) => assert_eq!(data, b"end\n"),
                Chunk::Exit(info) => exit = Some(info),
                Chunk::Lost(reason) => panic!("connection lost: {reason}"),
            }
            chunks += 1;
            if chunks % 8 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        (bytes, exit)
    });
    let ran = run(&n1, "for i in 1 2 3; do echo $i; sleep 0.1; done", b"")
        .await
        .expect(FLEET);
    assert_eq!(ran.stdout, "1\n2\n3\n");
    let (bytes, exit) = flood.await.expect("reader");
    assert_eq!(bytes, 20_000_000);
    assert_eq!(exit, Some(ExitInfo::Code(0)));
    assert_eq!(n1.connections_made(), 1);
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn a_dead_connection_is_replaced() {
    let n2 = pool("n2", spec(2202));
    n2.ensure_connected().await.expect(FLEET);
    assert_eq!(n2.connection_count(), 1);
    // $PPID is the sshd process serving this connection.
    let ran = run(&n2, "kill -9 $PPID", b"").await.expect(FLEET);
    assert_eq!(ran.exit, ExitInfo::Unknown);
    assert!(ran.lost.is_some(), "a dead connection is reported as lost");
    let ran = run(&n2, "echo again", b"").await.expect("reconnects");
    assert_eq!(ran.stdout, "again\n");
    assert_eq!(n2.connections_made(), 2);
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn a_changed_host_key_is_refused() {
    let file = known_hosts(
        "# another key for n1\n[127.0.0.1]:2201 ssh-ed25519 \
         AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n",
    );
    let mut spec = spec(2201);
    spec.known_hosts = file.path().to_path_buf();
    spec.host_key_check = HostKeyCheck::AcceptNew;
    let error = pool("n1", spec)
        .ensure_connected()
        .await
        .expect_err("refused");
    let TransportError::HostKey(message) = &error else {
        panic!("not a host key error: {error}");
    };
    assert!(
        message.contains("HOST KEY CHANGED for [127.0.0.1]:2201"),
        "{message}"
    );
    assert!(message.contains("line 2"), "{message}");
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn an_unknown_host_key_is_refused_when_strict() {
    let file = known_hosts("");
    let mut spec = spec(2202);
    spec.known_hosts = file.path().to_path_buf();
    let n2 = pool("n2", spec);
    let error = n2.ensure_connected().await.expect_err("refused");
    let TransportError::HostKey(message) = &error else {
        panic!("not a host key error: {error}");
    };
    assert!(message.contains("is not in known_hosts"), "{message}");
    assert!(
        message.contains("ssh-keyscan -p 2202 127.0.0.1 >>"),
        "{message}"
    );
    // Nothing runs, and the failure is remembered briefly.
    let again = run(&n2, "echo no", b"").await.err().expect("refused again");
    assert!(matches!(again, TransportError::HostKey(_)), "{again}");
    assert_eq!(n2.connections_made(), 0);
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn accept_new_learns_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("known_hosts");
    let mut spec = spec(2203);
    spec.known_hosts = path.clone();
    spec.host_key_check = HostKeyCheck::AcceptNew;
    pool("n3", spec.clone())
        .ensure_connected()
        .await
        .expect(FLEET);
    let learned = std::fs::read_to_string(&path).expect("learned");
    assert!(learned.starts_with("[127.0.0.1]:2203 "), "{learned}");
    spec.host_key_check = HostKeyCheck::Strict;
    let ran = run(&pool("n3", spec), "echo known", b"")
        .await
        .expect("the learned key is known");
    assert_eq!(ran.stdout, "known\n");
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn hashed_known_hosts_work() {
    let mut spec = spec(2201);
    spec.known_hosts = state("known_hosts_hashed");
    let ran = run(&pool("n1", spec), "echo hashed", b"")
        .await
        .expect(FLEET);
    assert_eq!(ran.stdout, "hashed\n");
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn an_encrypted_key_is_named_in_the_auth_error() {
    let mut spec = spec(2202);
    spec.identity = Some(state("id_ed25519_encrypted"));
    let error = pool("n2", spec)
        .ensure_connected()
        .await
        .expect_err("no passphrase");
    let TransportError::Auth { reason, .. } = &error else {
        panic!("not an auth error: {error}");
    };
    assert!(
        reason.contains("id_ed25519_encrypted is encrypted"),
        "{reason}"
    );
    assert!(reason.contains("ssh-add"), "{reason}");
}

#[tokio::test]
#[ignore = "needs the container fleet (scripts/fleet up)"]
async fn a_jump_host_tunnels_to_a_host_behind_it() {
    let n1 = pool("n1", spec(2201));
    let mut behind = spec(22);
    behind.address = "n2".into();
    let n2j = SshHostPool::new(HostName("n2j".into()), behind, Some(Arc::clone(&n1)));
    let ran = run(&n2j, "hostname", b"").await.expect(FLEET);
    assert_eq!(ran.stdout, "n2\n");
    // The jump host's one connection carries the tunnel, and its own jobs.
    let ran = run(&n1, "hostname", b"").await.expect(FLEET);
    assert_eq!(ran.stdout, "n1\n");
    assert_eq!(n1.connections_made(), 1);
    n2j.close().await;
    n1.close().await;
}

/// Without the fleet: a closed port fails at once.
#[tokio::test]
async fn a_closed_port_fails_fast() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    drop(listener);
    let started = Instant::now();
    let error = pool("gone", spec(port))
        .ensure_connected()
        .await
        .expect_err("closed");
    assert!(matches!(error, TransportError::Connect { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// Without the fleet: a host that accepts TCP but never speaks (a paused
/// container behind a port proxy) times out, and sixteen jobs share the one
/// attempt instead of waiting it out in turn.
#[tokio::test]
async fn a_silent_host_times_out_once_for_all_waiters() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let accepted = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut spec = spec(port);
    spec.connect_timeout = Duration::from_millis(500);
    let silent = pool("silent", spec);
    let started = Instant::now();
    let mut jobs = Vec::new();
    for _ in 0..16 {
        let silent = Arc::clone(&silent);
        jobs.push(tokio::spawn(async move {
            let (tx, _rx) = mpsc::channel(CHUNK_QUEUE);
            silent.start("true", Vec::new(), tx).await
        }));
    }
    for job in jobs {
        let error = job.await.expect("task").expect_err("times out");
        assert!(
            matches!(error, TransportError::ConnectTimeout { seconds: 1, .. }),
            "{error}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    accepted.abort();
}
