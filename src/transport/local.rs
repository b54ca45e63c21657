//! The `local` host: the same wrapper script through `tokio::process`, in a
//! process group of its own so that stopping a job reaches all it started and
//! a Ctrl+C on zap's terminal reaches no job.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;

use super::consumer::{ChunkConsumer, ChunkSender};
use super::pty::LocalPty;
use super::{Chunk, TransportError};
use crate::model::{ExitInfo, Signal, Stream};

/// Bytes read from a pipe at a time; also the largest chunk sent on.
const READ_BUFFER: usize = 32 * 1024;

#[derive(Debug, Clone, Default)]
pub struct LocalHost;

impl LocalHost {
    /// Starts `/bin/sh -c COMMAND`, feeds it `stdin` then EOF, and forwards its
    /// output to `tx` until both pipes close, then its exit.
    pub async fn start(
        &self,
        command: &str,
        stdin: Vec<u8>,
        tx: mpsc::Sender<Chunk>,
    ) -> Result<(), TransportError> {
        self.start_into(command, stdin, None, ChunkSender::new(tx))
            .await
    }

    /// [`LocalHost::start`] whose stdin stays open after `stdin`: what
    /// `feed` brings is written as it comes, and EOF follows once all its
    /// senders are dropped.
    pub async fn start_fed(
        &self,
        command: &str,
        stdin: Vec<u8>,
        feed: mpsc::Receiver<Vec<u8>>,
        tx: mpsc::Sender<Chunk>,
    ) -> Result<(), TransportError> {
        self.start_into(command, stdin, Some(feed), ChunkSender::new(tx))
            .await
    }

    /// Starts `/bin/sh -c COMMAND` and hands its output to `out` where it
    /// is read: one task reads both pipes and then waits for the exit, so a
    /// job's output reaches its decoder with no other task or queue between.
    /// `feed`, when given, keeps stdin open after `stdin` (see
    /// [`LocalHost::start_fed`]).
    pub async fn start_into(
        &self,
        command: &str,
        stdin: Vec<u8>,
        feed: Option<mpsc::Receiver<Vec<u8>>>,
        out: Box<dyn ChunkConsumer>,
    ) -> Result<(), TransportError> {
        let mut shell = Command::new("/bin/sh");
        shell
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        // SAFETY: between fork and exec only an async-signal-safe call: a
        // new session, so the job has its own process group and no
        // controlling terminal: nothing in it (an `ssh` or `sudo` asking for
        // a password on /dev/tty) can read keys from, or write over, the
        // terminal zap's UI holds.
        unsafe {
            shell.pre_exec(|| {
                if libc::setsid() == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = shell
            .spawn()
            .map_err(|error| TransportError::Spawn(format!("/bin/sh: {error}")))?;
        let (Some(mut input), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(TransportError::Spawn("pipes were not created".into()));
        };
        tokio::spawn(async move {
            // A shell that exits before reading its script is reported by its
            // exit status; the broken pipe says nothing more.
            let mut open = input.write_all(&stdin).await.is_ok();
            if let Some(mut feed) = feed {
                while open && let Some(data) = feed.recv().await {
                    open = input.write_all(&data).await.is_ok();
                }
            }
            drop(input);
        });
        tokio::spawn(async move {
            let mut out = out;
            if read_both(stdout, stderr, out.as_mut()).await {
                let exit = match child.wait().await {
                    Ok(status) => exit_info(status),
                    Err(_) => ExitInfo::Unknown,
                };
                if out.ready().await {
                    out.take(Chunk::Exit(exit));
                }
            }
            out.finish().await;
        });
        Ok(())
    }

    /// [`LocalHost::start`], in a pseudo-terminal when `pty` (see
    /// [`crate::transport::pty`]): stdout and stderr merge.
    pub async fn start_with(
        &self,
        command: &str,
        stdin: Vec<u8>,
        pty: bool,
        tx: mpsc::Sender<Chunk>,
    ) -> Result<(), TransportError> {
        if !pty {
            return self.start(command, stdin, tx).await;
        }
        let spawn_error = |error: std::io::Error| TransportError::Spawn(format!("pty: {error}"));
        let LocalPty {
            controller,
            terminal,
        } = LocalPty::open().map_err(spawn_error)?;
        let mut shell = Command::new("/bin/sh");
        shell
            .arg("-c")
            .arg(command)
            .stdin(Stdio::from(terminal.try_clone().map_err(spawn_error)?))
            .stdout(Stdio::from(terminal.try_clone().map_err(spawn_error)?))
            .stderr(Stdio::from(terminal))
            .kill_on_drop(false);
        // SAFETY: between fork and exec only async-signal-safe calls: a new
        // session (so the job has its own process group, as without a pty)
        // whose controlling terminal is the pty on stdin.
        unsafe {
            shell.pre_exec(|| {
                if libc::setsid() == -1 || libc::ioctl(0, libc::TIOCSCTTY, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = shell.spawn().map_err(spawn_error)?;
        // The terminal side must be closed here, or reading never ends.
        drop(shell);
        let mut writer = std::fs::File::from(controller);
        let mut reader = writer.try_clone().map_err(spawn_error)?;
        tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let _ = writer.write_all(&stdin);
        });
        tokio::spawn(async move {
            let output = tx.clone();
            // A pty has no async reader in tokio; a blocking thread reads it
            // until every process holding the terminal is gone (EIO).
            let _ = tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let mut buffer = vec![0u8; READ_BUFFER];
                loop {
                    match reader.read(&mut buffer) {
                        Ok(0) | Err(_) => return,
                        Ok(read) => {
                            if output
                                .blocking_send(Chunk::Stdout(buffer[..read].to_vec()))
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                }
            })
            .await;
            let exit = match child.wait().await {
                Ok(status) => exit_info(status),
                Err(_) => ExitInfo::Unknown,
            };
            let _ = tx.send(Chunk::Exit(exit)).await;
        });
        Ok(())
    }

    /// Runs a short command (`/bin/sh -c`) to completion and returns its exit
    /// and output: for probes, stats and clean-ups, not for jobs.
    pub async fn run_capture(
        &self,
        command: &str,
    ) -> Result<(ExitInfo, Vec<u8>, Vec<u8>), TransportError> {
        let output = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|error| TransportError::Spawn(format!("/bin/sh: {error}")))?;
        Ok((exit_info(output.status), output.stdout, output.stderr))
    }

    /// Sends `signal` to the whole process group `pgid`.
    pub fn signal_group(&self, pgid: u32, signal: Signal) -> Result<(), TransportError> {
        let Ok(pgid) = i32::try_from(pgid) else {
            return Err(TransportError::Spawn(format!("bad process group {pgid}")));
        };
        if pgid <= 1 {
            return Err(TransportError::Spawn(format!(
                "refusing to signal group {pgid}"
            )));
        }
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        let result = unsafe { libc::kill(-pgid, signal.number()) };
        if result == 0 {
            Ok(())
        } else {
            Err(TransportError::Spawn(format!(
                "kill -{} -{pgid}: {}",
                signal.name(),
                std::io::Error::last_os_error()
            )))
        }
    }
}

/// Hands what `stdout` and `stderr` bring to `out`, in the order it is
/// read, until both close. Reading waits while `out` is not ready, so a
/// consumer that is behind slows the job down rather than growing a queue.
/// `false` when nobody listens any more.
async fn read_both(
    stdout: impl AsyncRead + Unpin,
    stderr: impl AsyncRead + Unpin,
    out: &mut dyn ChunkConsumer,
) -> bool {
    let (mut stdout, mut stderr) = (Some(Pipe::new(stdout)), Some(Pipe::new(stderr)));
    while stdout.is_some() || stderr.is_some() {
        if !out.ready().await {
            return false;
        }
        let (stream, read) = tokio::select! {
            read = Pipe::read_from(&mut stdout) => (Stream::Stdout, read),
            read = Pipe::read_from(&mut stderr) => (Stream::Stderr, read),
        };
        let closed = match (read, stream) {
            (Some(data), Stream::Stdout) => {
                out.take(Chunk::Stdout(data));
                continue;
            }
            (Some(data), Stream::Stderr) => {
                out.take(Chunk::Stderr(data));
                continue;
            }
            (None, stream) => stream,
        };
        match closed {
            Stream::Stdout => stdout = None,
            Stream::Stderr => stderr = None,
        }
    }
    true
}

/// One of a shell's output pipes, with its buffer.
struct Pipe<R> {
    reader: R,
    buffer: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Pipe<R> {
    fn new(reader: R) -> Pipe<R> {
        Pipe {
            reader,
            buffer: vec![0u8; READ_BUFFER],
        }
    }

    /// The next bytes of `pipe`, or `None` once it closed (or failed);
    /// never ready for a pipe already closed.
    async fn read_from(pipe: &mut Option<Pipe<R>>) -> Option<Vec<u8>> {
        let Some(pipe) = pipe.as_mut() else {
            return std::future::pending().await;
        };
        match pipe.reader.read(&mut pipe.buffer).await {
            Ok(0) | Err(_) => None,
            Ok(read) => Some(pipe.buffer[..read].to_vec()),
        }
    }
}

fn exit_info(status: std::process::ExitStatus) -> ExitInfo {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitInfo::Code(code),
        (None, Some(signal)) => ExitInfo::Signal(signal_name(signal)),
        (None, None) => ExitInfo::Unknown,
    }
}

/// The name `kill -l` gives a signal number, for the signals a job dies of.
pub fn signal_name(number: i32) -> String {
    let name = match number {
        libc::SIGHUP => "HUP",
        libc::SIGINT => "INT",
        libc::SIGQUIT => "QUIT",
        libc::SIGILL => "ILL",
        libc::SIGTRAP => "TRAP",
        libc::SIGABRT => "ABRT",
        libc::SIGBUS => "BUS",
        libc::SIGFPE => "FPE",
        libc::SIGKILL => "KILL",
        libc::SIGUSR1 => "USR1",
        libc::SIGSEGV => "SEGV",
        libc::SIGUSR2 => "USR2",
        libc::SIGPIPE => "PIPE",
        libc::SIGALRM => "ALRM",
        libc::SIGTERM => "TERM",
        libc::SIGXCPU => "XCPU",
        libc::SIGXFSZ => "XFSZ",
        _ => return number.to_string(),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(command: &str, stdin: &str) -> (Vec<u8>, Vec<u8>, ExitInfo) {
        let (tx, mut rx) = mpsc::channel(8);
        LocalHost
            .start(command, stdin.as_bytes().to_vec(), tx)
            .await
            .expect("start");
        let (mut out, mut err) = (Vec::new(), Vec::new());
        loop {
            match rx.recv().await.expect("an exit chunk ends every job") {
                Chunk::Stdout(bytes) => out.extend(bytes),
                Chunk::Stderr(bytes) => err.extend(bytes),
                Chunk::Exit(exit) => return (out, err, exit),
                Chunk::Lost(reason) => panic!("a local job cannot be lost: {reason}"),
            }
        }
    }

    #[tokio::test]
    async fn streams_stay_apart_and_the_exit_code_arrives_last() {
        let (out, err, exit) = run("cat; echo oops >&2; exit 3", "from stdin\n").await;
        assert_eq!(out, b"from stdin\n");
        assert_eq!(err, b"oops\n");
        assert_eq!(exit, ExitInfo::Code(3));
    }

    #[tokio::test]
    async fn a_signal_death_is_named() {
        let (_, _, exit) = run("kill -KILL $$", "").await;
        assert_eq!(exit, ExitInfo::Signal("KILL".into()));
    }

    #[tokio::test]
    async fn output_of_a_background_child_after_the_shell_exits_is_kept() {
        let (out, _, exit) = run("(sleep 0.2; echo late) & exit 0", "").await;
        assert_eq!(out, b"late\n");
        assert_eq!(exit, ExitInfo::Code(0));
    }

    #[tokio::test]
    async fn the_job_gets_its_own_process_group_and_signalling_it_stops_it() {
        let (tx, mut rx) = mpsc::channel(8);
        LocalHost
            .start("echo $$; ps -o pgid= -p $$; sleep 30", Vec::new(), tx)
            .await
            .expect("start");
        let Some(Chunk::Stdout(first)) = rx.recv().await else {
            panic!("expected the pid first")
        };
        let mut text = String::from_utf8_lossy(&first).to_string();
        while text.lines().count() < 2 {
            match rx.recv().await {
                Some(Chunk::Stdout(more)) => text.push_str(&String::from_utf8_lossy(&more)),
                other => panic!("unexpected {other:?}"),
            }
        }
        let mut lines = text
            .lines()
            .map(|line| line.trim().parse::<u32>().expect("number"));
        let (pid, pgid) = (lines.next().expect("pid"), lines.next().expect("pgid"));
        assert_eq!(pid, pgid, "the shell leads its own process group");
        LocalHost.signal_group(pgid, Signal::Term).expect("signal");
        loop {
            match rx.recv().await.expect("exit") {
                Chunk::Exit(exit) => {
                    assert_eq!(exit, ExitInfo::Signal("TERM".into()));
                    break;
                }
                _ => continue,
            }
        }
    }
}
