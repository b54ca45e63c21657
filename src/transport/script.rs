//! The wrapper script a job instance runs in one POSIX shell.
//!
//! A job's steps all run, in order, in one shell so that `cd` and `export`
//! carry from one step to the next. The transport starts that shell with
//! [`LAUNCH_COMMAND`] and writes the script from [`build`] on its stdin, then
//! closes it. The script reports what zap needs to know in-band, as marker
//! lines that carry a per-run [`Nonce`]:
//!
//! ```text
//! @@zap:<nonce>:pid:<pid>:<pgid>     stdout only, before anything else
//! @@zap:<nonce>:start:<step>         on stdout and on stderr
//! @@zap:<nonce>:exit:<step>:<code>   on stdout and on stderr
//! ```
//!
//! A marker is not preceded by a newline, so output that lacks its final
//! newline stays intact; the decoder (`decode`) finds the marker prefix
//! anywhere in a line. The stderr copies exist so stderr lines are attributed
//! to the right step and a partial stderr line is cut where its step ends.
//!
//! The script's own text never contains a well-formed marker: every number
//! is a `printf` argument and every format ends in a literal `\n`. So if the
//! script is echoed back (a pty) or traced (`set -x` in a step), the copy is
//! ordinary output.

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;

use crate::model::StepIndex;
use crate::transport::escape::quote;

/// The command a transport asks the login shell to run. The login shell may
/// be fish or csh, so this string holds no backslash and no single quote
/// inside the quoted part; it replaces itself with a POSIX `/bin/sh` (same
/// PID) that reads the whole script from stdin and runs it. Once `cat` has
/// read the script, the steps' stdin is at end of file.
pub const LAUNCH_COMMAND: &str = r#"exec /bin/sh -c 'eval "$(cat)"'"#;

/// [`LAUNCH_COMMAND`] with each `name=value` in the shell's own environment
/// (not just exported by the script): `/proc/PID/environ` of the job's shell
/// and of everything it starts then shows them, which is how a job's
/// processes and a run's leftovers are recognised. Names and values must be
/// plain words (letters, digits, `_`, `-`), so that the command still holds
/// no quote or backslash for other login shells to misread.
pub fn launch_command_with(base: &str, variables: &[(&str, &str)]) -> Option<String> {
    let plain = |text: &str| {
        !text.is_empty()
            && text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
    };
    let mut command = String::from("exec env");
    for (name, value) in variables {
        if !plain(name) || !plain(value) {
            return None;
        }
        command.push_str(&format!(" {name}={value}"));
    }
    let shell = base.strip_prefix("exec ")?;
    Some(format!("{command} {shell}"))
}

/// What marks zap's marker lines; followed by `:<nonce>:`.
const MARKER_TAG: &str = "@@zap";

/// The longest marker body (what follows the prefix, up to and including the
/// newline) the decoder waits for. Real bodies are under 40 bytes; anything
/// longer is ordinary output.
pub(crate) const MARKER_BODY_MAX: usize = 64;

/// A random 128-bit value, fresh for every run of a job instance, that makes
/// zap's markers impossible to imitate by accident or by a step's output.
#[derive(Clone, PartialEq, Eq)]
pub struct Nonce(u128);

impl Nonce {
    pub fn random() -> Nonce {
        Nonce(rand::random())
    }

    /// Reads 32 hex digits (either case), as [`Nonce`]'s `Display` writes them.
    pub fn from_hex(hex: &str) -> Option<Nonce> {
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(hex, 16).ok().map(Nonce)
    }

    /// The bytes every marker of this run starts with: `@@zap:<nonce>:`.
    pub(crate) fn marker_prefix(&self) -> Vec<u8> {
        format!("{MARKER_TAG}:{self}:").into_bytes()
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({self})")
    }
}

/// What one marker line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    /// The job's shell and its process group.
    Spawned {
        pid: u32,
        pgid: u32,
    },
    StepStarted(StepIndex),
    StepExited {
        step: StepIndex,
        code: i32,
    },
}

impl Marker {
    /// Parses what follows the prefix, without the newline (a trailing `\r`,
    /// as a pty writes it, is allowed). `None` means the line only looks like
    /// a marker: it is then shown as ordinary output.
    pub(crate) fn parse(body: &[u8]) -> Option<Marker> {
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let body = std::str::from_utf8(body).ok()?;
        let mut fields = body.split(':');
        let kind = fields.next()?;
        let numbers: Vec<&str> = fields.collect();
        let marker = match (kind, numbers.as_slice()) {
            ("pid", [pid, pgid]) => Marker::Spawned {
                pid: number(pid)?,
                pgid: number(pgid)?,
            },
            ("start", [step]) => Marker::StepStarted(step_index(step)?),
            ("exit", [step, code]) => Marker::StepExited {
                step: step_index(step)?,
                code: number(code)?,
            },
            _ => return None,
        };
        Some(marker)
    }
}

/// Plain decimal digits only: no sign, no spaces, no `+`, which `str::parse`
/// would accept.
fn number<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn step_index(text: &str) -> Option<StepIndex> {
    number(text).filter(|&n| n >= 1).map(StepIndex)
}

/// Whether `name` can be exported by a POSIX shell: a letter or `_`, then
/// letters, digits or `_`. The config layer should reject other names early;
/// [`build`] makes a script that fails with a message if one gets through.
pub fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The whole wrapper script for one run of a job instance.
///
/// It first prints the shell's PID and process group, then exports `env`,
/// then runs each step with `eval` in the shell itself (so a step may span
/// lines, and its `cd`/`export` hold for later steps), printing a start and
/// an exit marker around it, and stops with the step's code at the first
/// step that fails. If every step succeeds the shell exits 0.
///
/// An env name that is not a shell identifier makes the script print why on
/// stderr and exit 2 before the first step.
pub fn build(nonce: &Nonce, steps: &[String], env: &BTreeMap<String, String>) -> String {
    build_for(nonce, steps, env, false)
}

/// [`build`] for a shell whose stdout and stderr are one stream (a pty):
/// the markers are printed once, not once per stream.
pub fn build_for(
    nonce: &Nonce,
    steps: &[String],
    env: &BTreeMap<String, String>,
    merged_streams: bool,
) -> String {
    let tag = format!("{MARKER_TAG}:{nonce}");
    let mut script = String::new();
    script.push_str("# zap job wrapper\n");
    script.push_str(&pgid_probe(r#""/proc/$$/stat""#));
    // `%s` everywhere, never a literal number: see the module docs.
    let _ = writeln!(script, r#"printf '{tag}:pid:%s:%s\n' "$$" "$zap_pgid""#);
    for (name, value) in env {
        if is_env_name(name) {
            let _ = writeln!(script, "export {name}={}", quote(value));
        } else {
            let _ = writeln!(
                script,
                r"printf 'zap: %s is not a valid environment variable name\n' {} >&2; exit 2",
                quote(name)
            );
        }
    }
    for (index, step) in steps.iter().enumerate() {
        let n = index + 1;
        let _ = writeln!(script, r"printf '{tag}:start:%s\n' {n}");
        if !merged_streams {
            let _ = writeln!(script, r"printf '{tag}:start:%s\n' {n} >&2");
        }
        let _ = writeln!(script, "eval {}", quote(step));
        script.push_str("zap_rc=$?\n");
        let _ = writeln!(script, r#"printf '{tag}:exit:%s:%s\n' {n} "$zap_rc""#);
        if !merged_streams {
            let _ = writeln!(script, r#"printf '{tag}:exit:%s:%s\n' {n} "$zap_rc" >&2"#);
        }
        script.push_str("if [ \"$zap_rc\" -ne 0 ]; then exit \"$zap_rc\"; fi\n");
    }
    script.push_str("exit 0\n");
    script
}

/// Shell code that sets `zap_pgid` to the shell's process group.
///
/// It reads `stat_path` (a shell word, normally `/proc/$$/stat`) with the
/// `read` builtin, so on Linux it forks nothing. The second field of that
/// line is the command name in parentheses, which may itself hold spaces and
/// parentheses, so the fields are counted from after the LAST `) `:
/// `state ppid pgrp …`. Without `/proc` (BSD, macOS) it asks `ps`, and if
/// that fails too it takes the shell's PID: the transports start the shell
/// as a process group leader, so that is the right answer there.
fn pgid_probe(stat_path: &str) -> String {
    format!(
        r#"zap_pgid=
if [ -r {stat_path} ] && read -r zap_stat < {stat_path}; then
  zap_stat=${{zap_stat##*") "}}
  zap_stat=${{zap_stat#* }}
  zap_stat=${{zap_stat#* }}
  zap_pgid=${{zap_stat%% *}}
fi
unset zap_stat
case $zap_pgid in
  ''|*[!0-9]*) zap_pgid=$(ps -o pgid= -p "$$" 2>/dev/null) ;;
esac
zap_pgid=${{zap_pgid#"${{zap_pgid%%[! ]*}}"}}
zap_pgid=${{zap_pgid%"${{zap_pgid##*[! ]}}"}}
case $zap_pgid in
  ''|*[!0-9]*) zap_pgid=$$ ;;
esac
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ExitInfo, Stream};
    use crate::transport::Chunk;
    use crate::transport::decode::{Decoder, JobEvent, LineCut};
    use std::io::Write as _;
    use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
    use std::process::{Command, Stdio};

    fn nonce() -> Nonce {
        Nonce::from_hex("0123456789abcdef0123456789ABCDEF").expect("valid hex")
    }

    #[test]
    fn nonce_round_trips_as_hex() {
        let n = Nonce::random();
        let hex = n.to_string();
        assert_eq!(hex.len(), 32);
        assert_eq!(Nonce::from_hex(&hex), Some(n));
        assert_ne!(Nonce::random(), Nonce::random());
        assert_eq!(nonce().to_string(), "0123456789abcdef0123456789abcdef");
        assert_eq!(Nonce::from_hex("+123456789abcdef0123456789abcdef"), None);
        assert_eq!(Nonce::from_hex("0123"), None);
        assert_eq!(Nonce::from_hex("g123456789abcdef0123456789abcdef"), None);
    }

    #[test]
    fn marker_bodies_parse_strictly() {
        assert_eq!(
            Marker::parse(b"pid:42:40"),
            Some(Marker::Spawned { pid: 42, pgid: 40 })
        );
        assert_eq!(
            Marker::parse(b"start:3\r"),
            Some(Marker::StepStarted(StepIndex(3)))
        );
        assert_eq!(
            Marker::parse(b"exit:3:127"),
            Some(Marker::StepExited {
                step: StepIndex(3),
                code: 127
            })
        );
        for bad in [
            &b"start:0"[..],
            b"start:",
            b"start:+1",
            b"start:-1",
            b"start: 1",
            b"start:1:2",
            b"start:%s\\n' 1",
            b"exit:1",
            b"exit:1:x",
            b"exit:1:99999999999",
            b"pid:1",
            b"pid:1:2:3",
            b"stop:1",
            b"",
            b"start:\xff",
        ] {
            assert_eq!(
                Marker::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn env_names_are_shell_identifiers() {
        for good in ["A", "_", "RUST_LOG", "a1", "_x_2"] {
            assert!(is_env_name(good), "{good}");
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "é", "$A", "A;B"] {
            assert!(!is_env_name(bad), "{bad}");
        }
    }

    #[test]
    fn launch_command_with_puts_the_variable_in_the_shells_own_environment() {
        let command = launch_command_with(LAUNCH_COMMAND, &[("ZAP_RUN", "abc-1"), ("B", "2")])
            .expect("plain words");
        assert_eq!(
            command,
            r#"exec env ZAP_RUN=abc-1 B=2 /bin/sh -c 'eval "$(cat)"'"#
        );
        let output = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&command)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                let mut stdin = child.stdin.take().expect("stdin");
                stdin.write_all(b"tr '\\0' '\\n' < /proc/$$/environ | grep '^ZAP_RUN='")?;
                drop(stdin);
                child.wait_with_output()
            })
            .expect("run");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "ZAP_RUN=abc-1\n");
        assert_eq!(
            launch_command_with(LAUNCH_COMMAND, &[("ZAP_RUN", "a'b")]),
            None
        );
        assert_eq!(
            launch_command_with(LAUNCH_COMMAND, &[("ZAP RUN", "ab")]),
            None
        );
    }

    #[test]
    fn launch_command_survives_other_login_shells() {
        let inner = LAUNCH_COMMAND
            .strip_prefix("exec /bin/sh -c '")
            .and_then(|rest| rest.strip_suffix('\''))
            .expect("one single-quoted argument");
        assert!(!inner.contains('\''));
        assert!(!LAUNCH_COMMAND.contains('\\'));
    }

    #[test]
    fn the_script_text_holds_no_marker() {
        let mut env = BTreeMap::new();
        env.insert("A".to_owned(), "1".to_owned());
        let script = build(&nonce(), &["true".to_owned(), "false".to_owned()], &env);
        assert!(script.contains(&format!("@@zap:{}:", nonce())));
        // Echoed back (a pty) or traced, it is ordinary text.
        let mut decoder = Decoder::new(nonce());
        let mut events = Vec::new();
        decoder.feed(Chunk::Stdout(script.clone().into_bytes()), &mut events);
        decoder.feed(Chunk::Stderr(script.into_bytes()), &mut events);
        decoder.feed(Chunk::Exit(ExitInfo::Code(0)), &mut events);
        assert!(
            events.iter().all(|e| matches!(
                e,
                JobEvent::Line { step: None, .. } | JobEvent::Ended { .. }
            )),
            "{events:#?}"
        );
    }

    /// What running a script in a real shell produced.
    struct Run {
        child_pid: u32,
        events: Vec<JobEvent>,
    }

    impl Run {
        fn lines(&self, stream: Stream, wanted: StepIndex) -> Vec<&str> {
            self.events
                .iter()
                .filter_map(|event| match event {
                    JobEvent::Line {
                        stream: s,
                        step: Some(step),
                        text,
                        ..
                    } if *s == stream && *step == wanted => Some(text.as_str()),
                    _ => None,
                })
                .collect()
        }

        fn started(&self) -> Vec<u32> {
            self.events
                .iter()
                .filter_map(|event| match event {
                    JobEvent::StepStarted { step } => Some(step.0),
                    _ => None,
                })
                .collect()
        }

        fn exited(&self) -> Vec<(u32, i32)> {
            self.events
                .iter()
                .filter_map(|event| match event {
                    JobEvent::StepExited { step, code } => Some((step.0, *code)),
                    _ => None,
                })
                .collect()
        }

        fn spawned(&self) -> (u32, u32) {
            let spawned: Vec<(u32, u32)> = self
                .events
                .iter()
                .filter_map(|event| match event {
                    JobEvent::Spawned { pid, pgid } => Some((*pid, *pgid)),
                    _ => None,
                })
                .collect();
            assert_eq!(spawned.len(), 1, "{:#?}", self.events);
            spawned[0]
        }

        fn ended(&self) -> &ExitInfo {
            match self.events.last() {
                Some(JobEvent::Ended { exit }) => exit,
                other => panic!("last event is not Ended: {other:?}"),
            }
        }
    }

    /// Runs `script` on the stdin of `program args…` in its own process
    /// group, as the local transport does, and decodes what came out.
    fn run(program: &str, args: &[&str], script: &str) -> Run {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start the shell");
        let child_pid = child.id();
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(script.as_bytes())
            .expect("write the script");
        let output = child.wait_with_output().expect("wait for the shell");
        let exit = match (output.status.code(), output.status.signal()) {
            (Some(code), _) => ExitInfo::Code(code),
            (None, Some(signal)) => ExitInfo::Signal(signal.to_string()),
            (None, None) => ExitInfo::Unknown,
        };
        let mut decoder = Decoder::new(nonce());
        let mut events = Vec::new();
        decoder.feed(Chunk::Stdout(output.stdout), &mut events);
        decoder.feed(Chunk::Stderr(output.stderr), &mut events);
        decoder.feed(Chunk::Exit(exit), &mut events);
        Run { child_pid, events }
    }

    fn steps(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| (*t).to_owned()).collect()
    }

    fn the_usual_job(program: &str, args: &[&str]) {
        let script = build(
            &nonce(),
            &steps(&[
                "cd /tmp",
                "export A=1",
                "pwd; echo $A",
                "echo err >&2",
                "printf 'no newline'",
                "echo $$",
                "false",
                "echo never",
            ]),
            &BTreeMap::new(),
        );
        let run = run(program, args, &script);
        let label = format!("{program} {args:?}: {:#?}", run.events);
        let (pid, pgid) = run.spawned();
        assert_eq!(pid, run.child_pid, "{label}");
        // The shell was started in its own process group.
        assert_eq!(pgid, run.child_pid, "{label}");
        assert_eq!(
            run.lines(Stream::Stdout, StepIndex(3)),
            ["/tmp", "1"],
            "{label}"
        );
        assert_eq!(run.lines(Stream::Stderr, StepIndex(4)), ["err"], "{label}");
        assert_eq!(
            run.lines(Stream::Stdout, StepIndex(5)),
            ["no newline"],
            "{label}"
        );
        assert_eq!(
            run.lines(Stream::Stdout, StepIndex(6)),
            [pid.to_string()],
            "{label}"
        );
        assert_eq!(run.started(), [1, 2, 3, 4, 5, 6, 7], "{label}");
        assert_eq!(
            run.exited(),
            [(1, 0), (2, 0), (3, 0), (4, 0), (5, 0), (6, 0), (7, 1)],
            "{label}"
        );
        assert_eq!(run.ended(), &ExitInfo::Code(1), "{label}");
        let no_newline = run.events.iter().find(|event| {
            matches!(event, JobEvent::Line { text, cut: LineCut::NoNewline, .. } if text == "no newline")
        });
        assert!(no_newline.is_some(), "{label}");
        let unattributed = run
            .events
            .iter()
            .any(|event| matches!(event, JobEvent::Line { step: None, .. }));
        assert!(!unattributed, "{label}");
    }

    const EVAL_STDIN: &str = r#"eval "$(cat)""#;

    #[test]
    fn runs_through_the_launch_command() {
        the_usual_job("/bin/sh", &["-c", LAUNCH_COMMAND]);
    }

    #[test]
    fn runs_in_sh() {
        the_usual_job("/bin/sh", &["-c", EVAL_STDIN]);
    }

    #[test]
    fn runs_in_dash() {
        the_usual_job("/bin/dash", &["-c", EVAL_STDIN]);
    }

    #[test]
    fn runs_in_bash() {
        the_usual_job("/bin/bash", &["-c", EVAL_STDIN]);
    }

    #[test]
    fn runs_in_bash_as_sh() {
        the_usual_job("/bin/bash", &["--posix", "-c", EVAL_STDIN]);
    }

    #[test]
    fn runs_in_busybox_sh_if_installed() {
        for busybox in ["/bin/busybox", "/usr/bin/busybox"] {
            if std::path::Path::new(busybox).exists() {
                the_usual_job(busybox, &["sh", "-c", EVAL_STDIN]);
                return;
            }
        }
    }

    #[test]
    fn env_is_exported_literally() {
        let mut env = BTreeMap::new();
        env.insert(
            "ZAP_T1".to_owned(),
            "it's $HOME `id` \"q\"\nline 2".to_owned(),
        );
        env.insert("ZAP_T2".to_owned(), String::new());
        let script = build(
            &nonce(),
            &steps(&[r#"printf '%s|' "$ZAP_T1" "${ZAP_T2-unset}"; sh -c 'echo "$ZAP_T2"x'"#]),
            &env,
        );
        for shell in ["/bin/sh", "/bin/dash", "/bin/bash"] {
            let run = run(shell, &["-c", EVAL_STDIN], &script);
            assert_eq!(
                run.lines(Stream::Stdout, StepIndex(1)),
                ["it's $HOME `id` \"q\"", "line 2||x"],
                "{shell}: {:#?}",
                run.events
            );
            assert_eq!(run.ended(), &ExitInfo::Code(0));
        }
    }

    #[test]
    fn a_bad_env_name_stops_before_the_first_step() {
        let mut env = BTreeMap::new();
        env.insert("BAD NAME".to_owned(), "x".to_owned());
        let script = build(&nonce(), &steps(&["echo hi"]), &env);
        let run = run("/bin/sh", &["-c", EVAL_STDIN], &script);
        run.spawned();
        assert!(run.started().is_empty(), "{:#?}", run.events);
        assert_eq!(run.ended(), &ExitInfo::Code(2));
        let said_why = run.events.iter().any(|event| {
            matches!(event, JobEvent::Line { stream: Stream::Stderr, text, .. }
                if text.contains("BAD NAME is not a valid environment variable name"))
        });
        assert!(said_why, "{:#?}", run.events);
    }

    #[test]
    fn multi_line_steps_comments_and_stdin_at_eof() {
        let script = build(
            &nonce(),
            &steps(&[
                "for i in 1 2\ndo\n  echo \"line $i\"\ndone # a comment ends here",
                "cat; echo \"read $?\"",
                "exit 3",
                "echo never",
            ]),
            &BTreeMap::new(),
        );
        for shell in ["/bin/sh", "/bin/dash", "/bin/bash"] {
            let run = run(shell, &["-c", EVAL_STDIN], &script);
            assert_eq!(
                run.lines(Stream::Stdout, StepIndex(1)),
                ["line 1", "line 2"]
            );
            assert_eq!(run.lines(Stream::Stdout, StepIndex(2)), ["read 0"]);
            // The shell left mid-step: no exit marker, the transport says why.
            assert_eq!(run.started(), [1, 2, 3], "{shell}");
            assert_eq!(run.exited(), [(1, 0), (2, 0)], "{shell}");
            assert_eq!(run.ended(), &ExitInfo::Code(3), "{shell}");
        }
    }

    #[test]
    fn tracing_a_step_does_not_fake_markers() {
        let script = build(
            &nonce(),
            &steps(&["set -x", "echo traced", "printf 'x' >&2"]),
            &BTreeMap::new(),
        );
        for shell in ["/bin/sh", "/bin/dash", "/bin/bash"] {
            let run = run(shell, &["-c", EVAL_STDIN], &script);
            let label = format!("{shell}: {:#?}", run.events);
            assert_eq!(run.started(), [1, 2, 3], "{label}");
            assert_eq!(run.exited(), [(1, 0), (2, 0), (3, 0)], "{label}");
            assert_eq!(
                run.lines(Stream::Stdout, StepIndex(2)),
                ["traced"],
                "{label}"
            );
            // The trace of the next command follows `x` on the same line.
            let stderr = run.lines(Stream::Stderr, StepIndex(3));
            assert!(stderr.iter().any(|line| line.starts_with('x')), "{label}");
            assert_eq!(run.ended(), &ExitInfo::Code(0), "{label}");
        }
    }

    /// The `/proc/PID/stat` parsing, on lines whose command name is hostile.
    #[test]
    fn pgid_probe_reads_odd_stat_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cases = [
            ("1234 (sh) S 1 4321 4321 0 -1 4194560 100 0", "4321"),
            ("1234 (a b) c) d) R 1 777 777 0 -1", "777"),
            ("1234 ((sh)) S 9 55 55 0", "55"),
            ("1234 (x ) ) Z 2 8 8 0", "8"),
        ];
        for (line, pgid) in cases {
            let path = dir.path().join("stat");
            std::fs::write(&path, format!("{line}\n")).expect("write stat");
            let code = format!(
                "{}printf %s \"$zap_pgid\"",
                pgid_probe(&quote(&path.to_string_lossy()))
            );
            for shell in ["/bin/sh", "/bin/dash", "/bin/bash"] {
                let output = Command::new(shell)
                    .arg("-c")
                    .arg(&code)
                    .output()
                    .expect("run the shell");
                assert_eq!(
                    String::from_utf8_lossy(&output.stdout),
                    pgid,
                    "{shell} {line}"
                );
            }
        }
    }

    /// Without a readable stat file the probe falls back to `ps`, then `$$`.
    #[test]
    fn pgid_probe_falls_back() {
        let code = format!(
            "{}printf '%s %s' \"$zap_pgid\" \"$$\"",
            pgid_probe("/nonexistent/stat")
        );
        let output = Command::new("/bin/sh")
            .arg("-c")
            .arg(&code)
            .process_group(0)
            .output()
            .expect("run the shell");
        let text = String::from_utf8_lossy(&output.stdout);
        let (pgid, pid) = text.split_once(' ').expect("two fields");
        assert_eq!(pgid, pid, "a group leader's pgid is its pid");
    }
}
