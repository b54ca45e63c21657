//! One config mistake, located and shown like a compiler error; and the set of
//! them that loading returns.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Values longer than this are cut in diagnostics: a whole inline table does
/// not help a reader find the mistake.
const MAX_VALUE_CHARS: usize = 60;

/// A mistake in a config file, with everything needed to show where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as given, relative to the config folder (e.g. `jobs/web.toml`).
    pub file: PathBuf,
    /// 1-based; 0 when the mistake concerns the file as a whole (it cannot be
    /// read, or its name is wrong).
    pub line: usize,
    /// 1-based, in characters; 0 together with `line`.
    pub column: usize,
    /// Where in the TOML tree, e.g. `jobs.build.steps[1]`; empty for syntax
    /// errors, where the tree could not be built.
    pub key_path: String,
    /// The offending value (or key) as written in the file.
    pub value: Option<String>,
    pub message: String,
    /// The whole line that holds the mistake, without its line break.
    pub source_line: String,
    /// How many characters of `source_line` the caret underlines (at least 1).
    pub width: usize,
}

impl Diagnostic {
    /// A mistake at byte range `span` of `text`, showing the spanned text as
    /// the value.
    pub fn at(
        file: &Path,
        text: &str,
        span: Range<usize>,
        key_path: &str,
        message: impl Into<String>,
    ) -> Self {
        let value = Some(snippet(text, &span));
        Self::located(file, text, span, key_path, value, message.into())
    }

    /// Like [`Diagnostic::at`], for mistakes that have no value of their own
    /// (a missing key, a cycle).
    pub fn without_value(
        file: &Path,
        text: &str,
        span: Range<usize>,
        key_path: &str,
        message: impl Into<String>,
    ) -> Self {
        Self::located(file, text, span, key_path, None, message.into())
    }

    /// A mistake about a file as a whole, with no position in it.
    pub fn whole_file(file: &Path, value: Option<String>, message: impl Into<String>) -> Self {
        Self {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key_path: String::new(),
            value,
            message: message.into(),
            source_line: String::new(),
            width: 0,
        }
    }

    fn located(
        file: &Path,
        text: &str,
        span: Range<usize>,
        key_path: &str,
        value: Option<String>,
        message: String,
    ) -> Self {
        let start = floor_char_boundary(text, span.start.min(text.len()));
        let line_start = text[..start].rfind('\n').map_or(0, |at| at + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |at| start + at);
        let source_line = text[line_start..line_end].trim_end_matches('\r');
        let line = text[..line_start].matches('\n').count() + 1;
        let column = text[line_start..start].chars().count() + 1;
        let end = floor_char_boundary(text, span.end.clamp(start, line_end));
        let width = text[start..end].chars().count().max(1);
        Self {
            file: file.to_path_buf(),
            line,
            column,
            key_path: key_path.to_string(),
            value,
            message,
            source_line: source_line.to_string(),
            width,
        }
    }
}

/// The text of `span`, on one line and cut to a readable length.
fn snippet(text: &str, span: &Range<usize>) -> String {
    let start = floor_char_boundary(text, span.start.min(text.len()));
    let end = floor_char_boundary(text, span.end.clamp(start, text.len()));
    let raw = &text[start..end];
    let first_line = raw.lines().next().unwrap_or("");
    let mut value: String = first_line.chars().take(MAX_VALUE_CHARS).collect();
    if value.len() < raw.len() {
        value.push('…');
    }
    value
}

/// TOML spans are byte offsets on char boundaries; this guards against a span
/// that is not, rather than panicking on a slice.
fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        let number = self.line.to_string();
        let gutter = " ".repeat(number.len() + 1);
        if self.line == 0 {
            writeln!(f, "{gutter}--> {}", self.file.display())?;
        } else {
            writeln!(
                f,
                "{gutter}--> {}:{}:{}",
                self.file.display(),
                self.line,
                self.column
            )?;
            writeln!(f, "{gutter}|")?;
            writeln!(f, "{number} | {}", self.source_line)?;
            // Tabs before the caret stay tabs so that it lines up however
            // the terminal expands them.
            let pad: String = self
                .source_line
                .chars()
                .take(self.column - 1)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            write!(f, "{gutter}| {pad}{}", "^".repeat(self.width))?;
            if self.key_path.is_empty() {
                writeln!(f)?;
            } else {
                writeln!(f, " {}", self.key_path)?;
            }
        }
        if let Some(value) = &self.value {
            // The message usually quotes the value already; say it only when
            // it does not.
            if !self.message.contains(value.as_str()) {
                writeln!(f, "{gutter}= value: {value}")?;
            }
        }
        Ok(())
    }
}

/// Every mistake found in the config folder, in file order, then by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    diagnostics: Vec<Diagnostic>,
}

impl ConfigErrors {
    pub(super) fn new(diagnostics: Vec<Diagnostic>) -> Self {
        Self { diagnostics }
    }

    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, diagnostic) in self.diagnostics.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{diagnostic}")?;
        }
        match self.diagnostics.len() {
            0 | 1 => Ok(()),
            count => write!(f, "\n{count} errors in the config\n"),
        }
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_line_and_column_in_characters() {
        let text = "a = 1\nhost = \"n9\"\nb = 2\n";
        let d = Diagnostic::at(
            Path::new("jobs/web.toml"),
            text,
            13..17,
            "jobs.x.host",
            "bad",
        );
        assert_eq!((d.line, d.column, d.width), (2, 8, 4));
        assert_eq!(d.source_line, "host = \"n9\"");
        assert_eq!(d.value.as_deref(), Some("\"n9\""));

        let text = "é = \"x\"";
        let d = Diagnostic::at(Path::new("f.toml"), text, 5..8, "", "bad");
        assert_eq!((d.line, d.column, d.width), (1, 5, 3));
    }

    #[test]
    fn renders_like_a_compiler() {
        let text = "[jobs.build]\nsteps = [\"make\"]\nhost = \"n9\"\n";
        let start = text.find("\"n9\"").unwrap_or(0);
        let d = Diagnostic::at(
            Path::new("jobs/web.toml"),
            text,
            start..start + 4,
            "jobs.build.host",
            "unknown host \"n9\"",
        );
        assert_eq!(
            d.to_string(),
            "error: unknown host \"n9\"\n  --> jobs/web.toml:3:8\n  |\n3 | host = \"n9\"\n  |        ^^^^ jobs.build.host\n"
        );
    }

    #[test]
    fn a_value_the_message_does_not_quote_gets_its_own_line() {
        let d = Diagnostic::at(
            Path::new("hosts.toml"),
            "port = \"22\"",
            7..11,
            "hosts.n1.port",
            "expected an integer, found a string",
        );
        assert!(
            d.to_string()
                .ends_with("  |        ^^^^ hosts.n1.port\n  = value: \"22\"\n"),
            "{d}"
        );
    }

    #[test]
    fn long_and_multi_line_values_are_cut() {
        let text = format!("x = [\n{}]", "\"a\", ".repeat(40));
        let d = Diagnostic::at(Path::new("f.toml"), &text, 4..text.len(), "x", "bad");
        assert_eq!(d.value.as_deref(), Some("[…"));
        assert_eq!(d.width, 1);
    }
}
