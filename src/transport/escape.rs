//! Shell quoting: the one place that turns text into a literal POSIX shell word.
//!
//! Everything zap puts into a shell command line that did not come from the
//! user as shell code (env values, step texts handed to `eval`, fixup
//! captures) goes through [`quote`], so there is exactly one rule to audit.

/// Makes `text` one literal word for any POSIX shell (sh, dash, bash, busybox
/// sh, zsh in sh mode).
///
/// Plain words made only of characters no shell treats specially stay as
/// they are, so commands shown to users read naturally (`podman rm -f web1`).
/// Anything else is wrapped in single quotes, inside which a shell expands
/// nothing; a single quote itself is written as `'\''` (close the quoted
/// part, an escaped quote, reopen). The empty string becomes `''` so it
/// still counts as an argument.
///
/// A NUL byte cannot be part of a shell word at all; it is passed through
/// and the shell will cut the word there.
pub fn quote(text: &str) -> String {
    if !text.is_empty() && text.bytes().all(is_plain) {
        return text.to_owned();
    }
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('\'');
    for ch in text.chars() {
        if ch == '\'' {
            quoted.push_str(r"'\''");
        } else {
            quoted.push(ch);
        }
    }
    quoted.push('\'');
    quoted
}

/// Bytes that never need quoting, wherever the word stands. `=` is left out
/// so a quoted word in command position is never taken for an assignment,
/// and `~` so it is never taken for a home directory.
fn is_plain(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'_' | b'-' | b'.' | b'/' | b',' | b':' | b'@' | b'%' | b'+'
        )
}

#[cfg(test)]
mod tests {
    use super::quote;
    use std::process::Command;

    const AWKWARD: &[&str] = &[
        "",
        "plain",
        "/srv/letz-1.2/file_name.conf",
        "two words",
        "  leading and trailing  ",
        "it's",
        "'",
        "''",
        "'start and end'",
        "\"double\" quotes",
        "$HOME and ${PATH} and $(id) and $1",
        "`uname -a`",
        "line one\nline two\n",
        "\n",
        "a; rm -rf /tmp/nothing; b",
        "*",
        "/etc/*.conf ?x [ab]",
        "~",
        "~root",
        "A=1",
        "a\\b\\\\c\\'",
        "tab\there",
        "a|b&c>d<e(f)g{h}i!j#k",
        "-n",
        "héllo wörld ✓ 日本語",
        "\u{7f}\u{1}\r",
        "%s %d %%",
    ];

    #[test]
    fn plain_words_stay_unquoted() {
        assert_eq!(quote("web1"), "web1");
        assert_eq!(quote("/srv/letz/lsyncd.conf"), "/srv/letz/lsyncd.conf");
        assert_eq!(quote("user@host:22"), "user@host:22");
        assert_eq!(quote("-f"), "-f");
    }

    #[test]
    fn special_text_is_single_quoted() {
        assert_eq!(quote(""), "''");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("'"), r"''\'''");
        assert_eq!(quote("two words"), "'two words'");
        assert_eq!(quote("$HOME"), "'$HOME'");
        assert_eq!(quote("`id`"), "'`id`'");
        assert_eq!(quote("a\nb"), "'a\nb'");
        assert_eq!(quote("a;b"), "'a;b'");
        assert_eq!(quote("*"), "'*'");
        assert_eq!(quote("A=1"), "'A=1'");
        assert_eq!(quote("~"), "'~'");
        assert_eq!(quote("\"x\""), "'\"x\"'");
        assert_eq!(quote("héllo"), "'héllo'");
    }

    /// The shell reads each quoted word back as exactly the original text.
    fn round_trip(shell: &str) {
        for text in AWKWARD {
            let output = Command::new(shell)
                .arg("-c")
                .arg(format!("printf %s {}", quote(text)))
                .current_dir("/")
                .output()
                .expect("run the shell");
            assert!(output.status.success(), "{shell} failed on {text:?}");
            assert_eq!(
                String::from_utf8_lossy(&output.stdout),
                *text,
                "{shell} changed {text:?} quoted as {}",
                quote(text)
            );
        }
    }

    #[test]
    fn round_trip_through_sh() {
        round_trip("/bin/sh");
    }

    #[test]
    fn round_trip_through_dash_and_bash() {
        for shell in ["/bin/dash", "/bin/bash"] {
            if std::path::Path::new(shell).exists() {
                round_trip(shell);
            }
        }
    }

    #[test]
    fn quoted_words_stay_one_argument() {
        let words: Vec<String> = AWKWARD.iter().map(|text| quote(text)).collect();
        let output = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {}", words.join(" ")))
            .output()
            .expect("run the shell");
        let args: Vec<&[u8]> = output.stdout.split(|&b| b == 0).collect();
        // printf's output ends with a NUL, so the split leaves one empty tail.
        assert_eq!(args.len(), AWKWARD.len() + 1);
        for (arg, text) in args.iter().zip(AWKWARD) {
            assert_eq!(*arg, text.as_bytes());
        }
    }
}
