//! End to end in one process: a real socket in a temporary folder, a fake
//! supervisor answering requests, and the client commands printing into
//! buffers.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::commands::{self, code};
use super::*;
use crate::action::Action;
use crate::model::InstanceId;

const WAIT: Duration = Duration::from_secs(5);

fn instance(host: &str, state: &str) -> InstanceStatus {
    InstanceStatus {
        system: "web".into(),
        job: "build".into(),
        host: host.into(),
        state: state.into(),
        step: Some(2),
        step_command: Some("make".into()),
        last_exit: Some(LastExit::Code(1)),
        pid: Some(4242),
        restarts: 1,
        uptime_s: Some(12.0),
        reason: None,
        cpu_percent: Some(3.5),
        rss_bytes: Some(2048),
        procs: None,
        stats_age_s: None,
        stats_unavailable: None,
        fixups: Vec::new(),
    }
}

fn fleet() -> Vec<InstanceStatus> {
    let mut failed = instance("n2", "failed");
    failed.pid = None;
    failed.uptime_s = None;
    failed.reason = Some("failed at step 2 (exit 1)".into());
    vec![instance("n1", "running"), failed]
}

fn line(host: &str, seq: u64, origin: Origin, text: &str) -> Reply {
    Reply::Line(LogEntry {
        host: host.into(),
        system: "web".into(),
        job: "build".into(),
        line: LogLineWire {
            seq,
            at_ms: 1_700_000_000_000 + seq,
            origin,
            step: Some(1),
            text: text.into(),
            split: false,
        },
    })
}

/// What the fake supervisor tells the test.
#[derive(Debug)]
enum Seen {
    /// A follower's client went away.
    FollowerGone,
    /// A flood stopped after this many lines, because `send` said no.
    FloodStopped(usize),
}

/// Answers like the real supervisor would, never awaiting a client. Ends
/// (dropping the request receiver) after `down`.
async fn fake_supervisor(mut requests: mpsc::Receiver<Request>, seen: mpsc::Sender<Seen>) {
    while let Some(Request { action, reply }) = requests.recv().await {
        match action {
            Action::Status => {
                reply.send(Reply::Status { instances: fleet() });
            }
            Action::Restart { targets } | Action::Stop { targets } | Action::Start { targets } => {
                for target in targets {
                    if target.starts_with("web") {
                        reply.send(Reply::Done {
                            message: format!("restarting {target}"),
                        });
                    } else {
                        reply.send(Reply::Error {
                            message: format!("no system named {target:?}"),
                        });
                    }
                }
            }
            Action::Logs { target, .. } if target == "flood" => {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let mut sent = 0;
                    while reply.send(line("n1", sent as u64, Origin::Out, &"x".repeat(200))) {
                        sent += 1;
                        // Let the connection write, as a real job's pace would.
                        tokio::task::yield_now().await;
                    }
                    let _ = seen.send(Seen::FloodStopped(sent)).await;
                });
            }
            Action::Logs { target, follow, .. } => {
                if !target.starts_with("web") {
                    reply.send(Reply::Error {
                        message: format!("no system named {target:?}"),
                    });
                    continue;
                }
                reply.send_all(vec![
                    line("n1", 0, Origin::Out, "compiling"),
                    line("node2", 0, Origin::Err, "warning: unused"),
                    line("n1", 1, Origin::Zap, "step 1 done"),
                ]);
                if follow {
                    let seen = seen.clone();
                    tokio::spawn(async move {
                        // "live" lines, then either the client leaves or,
                        // for `web.once`, the instance is gone.
                        for seq in 2..5 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            reply.send(line("n1", seq, Origin::Out, &format!("live {seq}")));
                        }
                        if target == "web.once" {
                            return;
                        }
                        reply.closed().await;
                        let _ = seen.send(Seen::FollowerGone).await;
                    });
                }
            }
            Action::Down => {
                reply.send(Reply::Done {
                    message: "stopping every job".into(),
                });
                return;
            }
        }
    }
}

struct Zap {
    socket: PathBuf,
    server: JoinHandle<()>,
    seen: mpsc::Receiver<Seen>,
}

impl Zap {
    async fn start(dir: &Path) -> Zap {
        let server = Server::bind_for(dir).await.expect("bind");
        Zap::serve(server)
    }

    fn serve(server: Server) -> Zap {
        let socket = server.path().to_path_buf();
        let (tx, rx) = mpsc::channel(16);
        let (seen_tx, seen) = mpsc::channel(16);
        let server = tokio::spawn(server.run(tx));
        tokio::spawn(fake_supervisor(rx, seen_tx));
        Zap {
            socket,
            server,
            seen,
        }
    }

    async fn stop(self) {
        self.server.abort();
        let _ = self.server.await;
    }
}

/// Runs a command against buffers: (exit code, stdout, stderr).
macro_rules! run {
    (|$console:ident| $body:expr) => {{
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = {
            let mut $console = Console {
                out: &mut out,
                err: &mut err,
                colour: false,
                answer_within: std::time::Duration::from_secs(10),
            };
            $body.await
        };
        (
            code,
            String::from_utf8(out).expect("utf-8"),
            String::from_utf8(err).expect("utf-8"),
        )
    }};
}

mod answers;
mod socket;
