//! What travels on the control socket: newline-delimited JSON. A client
//! connects, writes one [`Action`](crate::action::Action) as a line, and reads
//! [`Reply`] lines until [`Reply::End`]; then the server closes the connection.
//!
//! ```text
//! → {"action":"restart","targets":["web.build@n1"]}
//! ← {"reply":"done","message":"restarting web.build@n1"}
//! ← {"reply":"end"}
//! ```
//!
//! These are plain serde structs so other tools can speak the protocol with
//! `socat` and `jq`.

use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::logs::{self, LogLine};
use crate::model::{ExitInfo, Stream};

/// One answer line from the running zap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    /// Every job instance (the answer to `status`).
    Status { instances: Vec<InstanceStatus> },
    /// The request was carried out, or one part of it (one line per target is fine).
    Done { message: String },
    /// The request was refused or failed, e.g. an unknown target.
    Error { message: String },
    /// One output line of a job instance (the answer to `logs`).
    Line(LogEntry),
    /// Nothing more follows; the server closes the connection.
    End,
}

/// One job instance as `zap status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub system: String,
    pub job: String,
    pub host: String,
    /// pending | waiting | starting | running | ready | fixing | backoff |
    /// failed | exited | stopped | lost | unreachable. A string, so a client
    /// older than its server still shows states it does not know.
    pub state: String,
    /// The step running now (or where the last run stopped), counted from 1.
    pub step: Option<u32>,
    pub step_command: Option<String>,
    /// How the previous run ended; stays visible while the next run goes on.
    pub last_exit: Option<LastExit>,
    pub pid: Option<u32>,
    pub restarts: u32,
    pub uptime_s: Option<f64>,
    /// Why the state is what it is: "failed at step 2 (exit 1)",
    /// "restarting in 4s", "waiting for web.db".
    pub reason: Option<String>,
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
    /// Processes in the job's tree at the last poll.
    #[serde(default)]
    pub procs: Option<u32>,
    /// How old the CPU and memory figures are, in seconds.
    #[serde(default)]
    pub stats_age_s: Option<f64>,
    /// Why the host's figures are missing, when its poller fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_unavailable: Option<String>,
    /// Every fixup attempt of this instance, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fixups: Vec<FixupAttempt>,
}

/// One fixup attempt: which rule, the remedy's command, how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixupAttempt {
    pub rule: String,
    pub command: String,
    /// `None` while the remedy runs.
    pub exit: Option<LastExit>,
    pub healed: bool,
}

/// How a run ended: `{"code":1}`, `{"signal":"TERM"}` or `"unknown"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LastExit {
    Code(i32),
    /// The signal's name without `SIG`.
    Signal(String),
    /// The channel closed without saying how the process ended.
    Unknown,
}

impl From<&ExitInfo> for LastExit {
    fn from(exit: &ExitInfo) -> Self {
        match exit {
            ExitInfo::Code(code) => LastExit::Code(*code),
            ExitInfo::Signal(name) => LastExit::Signal(name.clone()),
            ExitInfo::Unknown => LastExit::Unknown,
        }
    }
}

/// One output line and the instance it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub host: String,
    pub system: String,
    pub job: String,
    pub line: LogLineWire,
}

impl LogEntry {
    /// Line `line` of instance `id`, for the wire.
    pub fn new(id: &crate::model::InstanceId, line: &LogLine) -> LogEntry {
        LogEntry {
            host: id.host.0.clone(),
            system: id.job.system.clone(),
            job: id.job.job.clone(),
            line: LogLineWire::from(line),
        }
    }
}

/// One line of a job's output, as kept in memory and in `.zap/logs/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLineWire {
    /// Counts up per instance, so a client can tell lines were skipped.
    pub seq: u64,
    /// When zap received the line, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub origin: Origin,
    /// The step that printed it; `None` for zap's own lines outside a step.
    pub step: Option<u32>,
    pub text: String,
    /// A piece of a line too long to keep whole: the next line of the same
    /// origin continues it (printed with `+`).
    #[serde(default)]
    pub split: bool,
}

impl From<&LogLine> for LogLineWire {
    fn from(line: &LogLine) -> Self {
        let at_ms = line.at.duration_since(UNIX_EPOCH).map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
        LogLineWire {
            seq: line.seq,
            at_ms,
            origin: match line.origin {
                logs::Origin::Stdout => Origin::Out,
                logs::Origin::Stderr => Origin::Err,
                logs::Origin::Zap => Origin::Zap,
            },
            step: line.step.map(|step| step.0),
            text: line.text.clone(),
            split: line.split,
        }
    }
}

/// Where a line came from: the job's stdout, its stderr, or zap itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Out,
    Err,
    Zap,
}

impl From<Stream> for Origin {
    fn from(stream: Stream) -> Self {
        match stream {
            Stream::Stdout => Origin::Out,
            Stream::Stderr => Origin::Err,
        }
    }
}

/// `reply` as one JSON line, newline included.
pub fn encode(reply: &Reply, into: &mut Vec<u8>) {
    // Serialising these types cannot fail: no maps with non-string keys, no
    // custom Serialize impls. Should it ever, the client sees a protocol error.
    if serde_json::to_writer(&mut *into, reply).is_ok() {
        into.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> InstanceStatus {
        InstanceStatus {
            system: "web".into(),
            job: "build".into(),
            host: "n1".into(),
            state: "backoff".into(),
            step: Some(2),
            step_command: Some("make".into()),
            last_exit: Some(LastExit::Code(1)),
            pid: None,
            restarts: 3,
            uptime_s: None,
            reason: Some("restarting in 4s".into()),
            cpu_percent: None,
            rss_bytes: None,
            procs: None,
            stats_age_s: None,
            stats_unavailable: None,
            fixups: Vec::new(),
        }
    }

    #[test]
    fn replies_are_tagged_kebab_case_lines() {
        let mut bytes = Vec::new();
        encode(
            &Reply::Done {
                message: "restarting web.build@n1".into(),
            },
            &mut bytes,
        );
        encode(&Reply::End, &mut bytes);
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            "{\"reply\":\"done\",\"message\":\"restarting web.build@n1\"}\n{\"reply\":\"end\"}\n"
        );
    }

    #[test]
    fn status_and_exits_read_naturally_in_json() {
        let json = serde_json::to_value(Reply::Status {
            instances: vec![status()],
        })
        .expect("json");
        assert_eq!(json["reply"], "status");
        assert_eq!(json["instances"][0]["last_exit"]["code"], 1);
        assert_eq!(json["instances"][0]["pid"], serde_json::Value::Null);
        assert_eq!(
            serde_json::to_string(&LastExit::Signal("TERM".into())).expect("json"),
            r#"{"signal":"TERM"}"#
        );
        assert_eq!(
            serde_json::to_string(&LastExit::Unknown).expect("json"),
            r#""unknown""#
        );
    }

    #[test]
    fn missing_optional_fields_read_as_none() {
        let reply: Reply = serde_json::from_str(
            r#"{"reply":"status","instances":[{"system":"web","job":"build","host":"n1","state":"pending","restarts":0}]}"#,
        )
        .expect("parse");
        let Reply::Status { instances } = reply else {
            panic!("not a status: {reply:?}");
        };
        assert_eq!(instances[0].step, None);
        assert_eq!(instances[0].last_exit, None);
    }

    #[test]
    fn a_log_line_carries_its_instance_beside_the_line() {
        let reply = Reply::Line(LogEntry {
            host: "n1".into(),
            system: "web".into(),
            job: "build".into(),
            line: LogLineWire {
                seq: 7,
                at_ms: 1_700_000_000_000,
                origin: Origin::Err,
                step: Some(2),
                text: "make: *** [all] Error 1".into(),
                split: false,
            },
        });
        let json = serde_json::to_string(&reply).expect("json");
        assert_eq!(
            json,
            r#"{"reply":"line","host":"n1","system":"web","job":"build","line":{"seq":7,"at_ms":1700000000000,"origin":"err","step":2,"text":"make: *** [all] Error 1","split":false}}"#
        );
        assert_eq!(serde_json::from_str::<Reply>(&json).expect("back"), reply);
    }

    #[test]
    fn a_stored_line_converts_to_the_wire() {
        let mut line = LogLine::zap(Some(crate::model::StepIndex(3)), "restarting in 2s");
        line.seq = 9;
        line.at = UNIX_EPOCH + std::time::Duration::from_millis(1_234);
        let wire = LogLineWire::from(&line);
        assert_eq!(
            wire,
            LogLineWire {
                seq: 9,
                at_ms: 1_234,
                origin: Origin::Zap,
                step: Some(3),
                text: "restarting in 2s".into(),
                split: false,
            }
        );
    }
}
