//! The one vocabulary of things a user can ask a running zap to do. The
//! control socket carries these, the TUI's keys map to them and the help
//! text is made from them, so all three always agree.

use serde::{Deserialize, Serialize};

/// A request to the running instance. Targets are spelled as on the command
/// line: `system`, `system.job` or `system.job@host`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Every job instance with its state (`zap status`).
    Status,
    /// Stop the targets (whole process group), then start them again.
    Restart { targets: Vec<String> },
    /// Stop the targets and keep them stopped.
    Stop { targets: Vec<String> },
    /// Start stopped or failed targets.
    Start { targets: Vec<String> },
    /// A job's output: what is kept in memory, then new lines if `follow`.
    Logs {
        target: String,
        #[serde(default)]
        follow: bool,
        #[serde(default)]
        step: Option<u32>,
    },
    /// Stop every job, then the running zap itself (`zap down`).
    Down,
}

impl Action {
    /// One line for the help text.
    pub fn describe(&self) -> &'static str {
        match self {
            Action::Status => "show every job instance and its state",
            Action::Restart { .. } => "stop the job (its whole process group) and start it again",
            Action::Stop { .. } => "stop the job and keep it stopped",
            Action::Start { .. } => "start a stopped or failed job",
            Action::Logs { .. } => "show the job's output",
            Action::Down => "stop every job and quit",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_travel_as_tagged_kebab_case_json() {
        let restart = Action::Restart {
            targets: vec!["web.build@n1".into()],
        };
        let json = serde_json::to_string(&restart).expect("serialise");
        assert_eq!(json, r#"{"action":"restart","targets":["web.build@n1"]}"#);
        let back: Action =
            serde_json::from_str(r#"{"action":"logs","target":"web.build"}"#).expect("deserialise");
        assert_eq!(
            back,
            Action::Logs {
                target: "web.build".into(),
                follow: false,
                step: None
            }
        );
        assert_eq!(
            serde_json::from_str::<Action>(r#"{"action":"down"}"#).expect("down"),
            Action::Down
        );
    }
}
