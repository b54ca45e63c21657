//! Captures into a remedy: each `{name}` becomes one literal shell word.
//!
//! Captures come from the output of programs on remote hosts; they must
//! never become code. They go through the project's one quoting function,
//! [`crate::transport::escape::quote`], and the config layer refuses
//! placeholders the shell would not read as a word of their own (inside
//! quotes, a here-document or `$(( ))`).

use std::collections::BTreeMap;

use crate::config::placeholders;
use crate::transport::escape::quote;

/// `run` with every `{name}` replaced by `captures[name]`, quoted. A
/// capture group that took no part in the match is the empty word `''`. NUL
/// characters are dropped: no shell word can hold one, and a shell would cut
/// the word there.
pub fn substitute(run: &str, captures: &BTreeMap<String, String>) -> String {
    let mut command = String::with_capacity(run.len());
    let mut from = 0;
    for (range, name) in placeholders(run) {
        command.push_str(&run[from..range.start]);
        let value = captures.get(name).map_or("", String::as_str);
        command.push_str(&quote(&value.replace('\0', "")));
        from = range.end;
    }
    command.push_str(&run[from..]);
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn captures(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    const HOSTILE: &[&str] = &[
        "x'; rm -rf ~; '",
        "web 1",
        "$HOME",
        "${PATH}",
        "$(touch /tmp/zap-fixup-pwned)",
        "`touch /tmp/zap-fixup-pwned`",
        "a\nb",
        "a; echo pwned",
        "a && echo pwned",
        "a | tee /tmp/zap-fixup-pwned",
        "\"double\" and 'single'",
        "*",
        "~",
        "-rf",
        "",
        "a\\b\\'c",
        "\r",
        "héllo ✓",
    ];

    #[test]
    fn plain_captures_read_naturally() {
        let run = "podman rm -f {name} && echo ${HOME} {port}/tcp";
        let got = substitute(run, &captures(&[("name", "web1"), ("port", "8080")]));
        assert_eq!(got, "podman rm -f web1 && echo ${HOME} 8080/tcp");
    }

    #[test]
    fn a_missing_capture_is_the_empty_word() {
        assert_eq!(substitute("port={port}", &captures(&[])), "port=''");
        assert_eq!(
            substitute("x {a}{b} y", &captures(&[("b", "2")])),
            "x ''2 y"
        );
    }

    #[test]
    fn hostile_captures_are_quoted() {
        let got = substitute("podman rm -f {name}", &captures(&[("name", HOSTILE[0])]));
        assert_eq!(got, r"podman rm -f 'x'\''; rm -rf ~; '\'''");
        let got = substitute("echo {n}", &captures(&[("n", "a\0b")]));
        assert_eq!(got, "echo ab");
    }

    /// Runs the substituted command through a real shell: every hostile
    /// capture arrives as exactly one argument, byte for byte, and nothing
    /// in it runs.
    #[test]
    fn hostile_captures_arrive_as_one_literal_argument() {
        let marker = std::env::temp_dir().join("zap-fixup-pwned");
        let _ = std::fs::remove_file(&marker);
        for shell in ["/bin/sh", "/bin/dash", "/bin/bash"] {
            if !std::path::Path::new(shell).exists() {
                continue;
            }
            for text in HOSTILE {
                let run = "printf '<%s>\\n' {name} {name}";
                let command = substitute(run, &captures(&[("name", text)]));
                let output = Command::new(shell)
                    .arg("-c")
                    .arg(&command)
                    .current_dir("/")
                    .output()
                    .expect("run the shell");
                assert!(output.status.success(), "{shell}: {command}");
                assert_eq!(
                    String::from_utf8_lossy(&output.stdout),
                    format!("<{text}>\n<{text}>\n"),
                    "{shell} ran {command}"
                );
            }
        }
        assert!(!marker.exists(), "a capture ran as code");
    }

    #[test]
    fn an_assignment_keeps_the_capture_literal() {
        for text in HOSTILE {
            let command = substitute(
                "want={mount}\nprintf '%s' \"$want\"",
                &captures(&[("mount", text)]),
            );
            let output = Command::new("/bin/sh")
                .arg("-c")
                .arg(&command)
                .current_dir("/")
                .output()
                .expect("run the shell");
            assert_eq!(String::from_utf8_lossy(&output.stdout), *text, "{command}");
        }
    }
}
