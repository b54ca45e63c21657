//! `zap status`, `restart`, `stop`, `start`, `logs` and `down`: each asks the
//! running instance over the control socket, prints its answer and returns
//! the process exit code (see [`code`]).

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::ControlError;
use super::client::{self, ReplyStream};
use super::format::{LogPrinter, status_table};
use super::protocol::{LogEntry, LogLineWire, Reply};
use crate::action::Action;
use crate::logs;
use crate::model::{InstanceId, StepIndex};

/// Exit codes of these commands, with the meanings every zap command gives them.
pub mod code {
    pub const OK: u8 = 0;
    /// The running zap refused or failed the request (an unknown target,
    /// nothing to restart), or the conversation broke off: like a failed
    /// job, what was asked for did not happen.
    pub const REFUSED: u8 = 1;
    /// No zap is running for this config: a usage error, as the command
    /// needs one (`zap logs` falls back to `.zap/logs` instead).
    pub const NOT_RUNNING: u8 = 2;
}

/// How long `zap down` waits for the instance to be gone after it agreed.
const DOWN_WAIT: Duration = Duration::from_secs(60);
const DOWN_POLL: Duration = Duration::from_millis(100);

/// Where a command prints: its answer to `out`, problems to `err`, coloured
/// when `colour` (stdout is a terminal); and how long it waits for an
/// answer before it gives up (`--timeout`, 10 s by default).
pub struct Console<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub colour: bool,
    pub answer_within: Duration,
}

impl Console<'_> {
    fn problem(&mut self, message: impl std::fmt::Display) {
        let _ = writeln!(self.err, "zap: {message}");
    }

    /// Prints why talking to the instance failed; returns the exit code.
    fn failed(&mut self, error: &ControlError) -> u8 {
        self.problem(error);
        match error {
            ControlError::NotRunning { .. } => code::NOT_RUNNING,
            _ => code::REFUSED,
        }
    }
}

/// `zap status [--json]`: the table, or a JSON array of
/// [`InstanceStatus`](super::InstanceStatus).
pub async fn status(config_dir: &Path, json: bool, console: &mut Console<'_>) -> u8 {
    let replies = match ask(config_dir, &Action::Status, console.answer_within).await {
        Ok(replies) => replies,
        Err(error) => return console.failed(&error),
    };
    let mut exit = code::OK;
    let mut instances = None;
    for reply in replies {
        match reply {
            Reply::Status { instances: list } => instances = Some(list),
            Reply::Done { message } => console.problem(message),
            Reply::Error { message } => {
                console.problem(message);
                exit = code::REFUSED;
            }
            Reply::Line(_) | Reply::End => {}
        }
    }
    let Some(instances) = instances else {
        if exit == code::OK {
            console.problem("the running zap sent no status");
        }
        return code::REFUSED;
    };
    let text = if json {
        match serde_json::to_string_pretty(&instances) {
            Ok(text) => text + "\n",
            Err(error) => {
                console.problem(format!("cannot write the status as JSON: {error}"));
                return code::REFUSED;
            }
        }
    } else {
        status_table(&instances, console.colour)
    };
    let _ = console.out.write_all(text.as_bytes());
    exit
}

/// `zap restart|stop|start TARGET…` and `zap down`: prints the instance's
/// messages. `down` then waits (up to a minute) until the instance is gone,
/// so `zap down && zap up` works.
pub async fn act(config_dir: &Path, action: Action, console: &mut Console<'_>) -> u8 {
    let down = action == Action::Down;
    let replies = match ask(config_dir, &action, console.answer_within).await {
        Ok(replies) => replies,
        // Going away mid-answer is what `down` asked for.
        Err(ControlError::Closed) if down => Vec::new(),
        Err(error) => return console.failed(&error),
    };
    let mut exit = code::OK;
    for reply in replies {
        match reply {
            Reply::Done { message } => {
                let _ = writeln!(console.out, "{message}");
            }
            Reply::Error { message } => {
                console.problem(message);
                exit = code::REFUSED;
            }
            Reply::Status { .. } | Reply::Line(_) | Reply::End => {}
        }
    }
    if down && exit == code::OK && !wait_until_gone(config_dir, DOWN_WAIT).await {
        console.problem(format!(
            "the running zap is still stopping its jobs after {}s",
            DOWN_WAIT.as_secs()
        ));
        exit = code::REFUSED;
    }
    exit
}

/// `zap logs TARGET [-f] [--step N]`: the instance's kept lines (then new
/// ones with `follow`, until the instance is gone or the user stops it). When
/// no zap is running, prints what `stored` returns instead, e.g. from
/// [`read_stored`].
pub async fn logs(
    config_dir: &Path,
    target: &str,
    follow: bool,
    step: Option<u32>,
    console: &mut Console<'_>,
    stored: impl FnOnce() -> Result<Vec<LogEntry>, String>,
) -> u8 {
    let action = Action::Logs {
        target: target.to_string(),
        follow,
        step,
    };
    let within = console.answer_within;
    let asked = tokio::time::timeout(within, client::request(config_dir, &action)).await;
    match asked.unwrap_or(Err(ControlError::NoAnswer { within })) {
        Ok(stream) => print_stream(stream, follow, console).await,
        Err(ControlError::NotRunning { dir }) => {
            let entries = match stored() {
                Ok(entries) => entries,
                Err(message) => {
                    console.problem(format!(
                        "{message} (and no zap is running for {})",
                        dir.display()
                    ));
                    return code::REFUSED;
                }
            };
            if follow {
                console.problem(format!(
                    "no zap is running for {}: showing .zap/logs, not following",
                    dir.display()
                ));
            }
            let mut printer = LogPrinter::new(console.colour);
            printer.fit(&entries);
            for entry in &entries {
                if writeln!(console.out, "{}", printer.line(entry)).is_err() {
                    break;
                }
            }
            code::OK
        }
        Err(error) => console.failed(&error),
    }
}

async fn print_stream(mut stream: ReplyStream, follow: bool, console: &mut Console<'_>) -> u8 {
    let mut printer = LogPrinter::new(console.colour);
    let mut exit = code::OK;
    // Without `follow` every line is read first, so the columns line up.
    let mut held = Vec::new();
    loop {
        match stream.next().await {
            Ok(Some(Reply::Line(entry))) if follow => {
                let printed = writeln!(console.out, "{}", printer.line(&entry))
                    .and_then(|()| console.out.flush());
                if printed.is_err() {
                    // `zap logs -f | head` has what it wanted.
                    return exit;
                }
            }
            Ok(Some(Reply::Line(entry))) => held.push(entry),
            Ok(Some(Reply::Error { message })) => {
                console.problem(message);
                exit = code::REFUSED;
            }
            Ok(Some(Reply::Done { message })) => console.problem(message),
            Ok(Some(Reply::Status { .. } | Reply::End)) => {}
            Ok(None) => break,
            Err(error) => {
                exit = console.failed(&error);
                break;
            }
        }
    }
    printer.fit(&held);
    for entry in &held {
        if writeln!(console.out, "{}", printer.line(entry)).is_err() {
            break;
        }
    }
    exit
}

/// The stored output of `ids` from `<config dir>/.zap/logs`, merged in time
/// order, for [`logs`] when no zap is running. An error if none has a log.
pub fn read_stored(
    config_dir: &Path,
    ids: &[InstanceId],
    step: Option<u32>,
) -> Result<Vec<LogEntry>, String> {
    let root = logs::logs_dir(config_dir);
    let mut entries = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        match logs::read_log(&root, id, step.map(StepIndex)) {
            Ok(lines) => entries.extend(lines.iter().map(|line| LogEntry {
                host: id.host.0.clone(),
                system: id.job.system.clone(),
                job: id.job.job.clone(),
                line: LogLineWire::from(line),
            })),
            Err(error) if error.kind() == io::ErrorKind::NotFound => missing.push(id.to_string()),
            Err(error) => return Err(format!("cannot read the log of {id}: {error}")),
        }
    }
    if entries.is_empty() && !missing.is_empty() {
        return Err(format!(
            "no log of {} in {}",
            missing.join(", "),
            root.display()
        ));
    }
    // Stable: each instance's lines keep their order.
    entries.sort_by_key(|entry| entry.line.at_ms);
    Ok(entries)
}

/// Sends `action` and reads the whole answer, for at most `within`.
async fn ask(
    config_dir: &Path,
    action: &Action,
    within: Duration,
) -> Result<Vec<Reply>, ControlError> {
    let answer = async { client::request(config_dir, action).await?.collect().await };
    tokio::time::timeout(within, answer)
        .await
        .unwrap_or(Err(ControlError::NoAnswer { within }))
}

/// Polls until nothing answers for `config_dir`; `false` after `limit`.
async fn wait_until_gone(config_dir: &Path, limit: Duration) -> bool {
    let start = Instant::now();
    while client::is_running(config_dir).await {
        if start.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(DOWN_POLL).await;
    }
    true
}
