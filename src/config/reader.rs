//! Walking a parsed TOML file with positions: typed reads that report a
//! located [`Diagnostic`] for every mistake and carry on, so that one load
//! finds them all.

use std::ops::Range;
use std::time::Duration;

use regex::Regex;
use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::SourceFile;
use super::diagnostic::Diagnostic;
use super::duration::parse_duration;

/// Where a value sits: which file, which bytes, which key path. Kept by
/// checks that can only run once every file is read (unknown hosts, `after`).
#[derive(Debug, Clone)]
pub struct Spot {
    pub file: usize,
    pub span: Range<usize>,
    pub key_path: String,
}

/// The diagnostics found so far, and the files they point into.
pub struct Errors<'s> {
    sources: &'s [SourceFile],
    list: Vec<Diagnostic>,
}

impl<'s> Errors<'s> {
    pub fn new(sources: &'s [SourceFile]) -> Self {
        Self {
            sources,
            list: Vec::new(),
        }
    }

    /// The text of file `file`, for pointing inside a value.
    pub fn text(&self, file: usize) -> &'s str {
        &self.sources[file].text
    }

    pub fn count(&self) -> usize {
        self.list.len()
    }

    /// A mistake whose value is the text at `spot`.
    pub fn at(&mut self, spot: &Spot, message: impl Into<String>) {
        let source = &self.sources[spot.file];
        self.list.push(Diagnostic::at(
            &source.path,
            &source.text,
            spot.span.clone(),
            &spot.key_path,
            message,
        ));
    }

    /// A mistake located at `spot` that has no value to show (a missing key).
    pub fn without_value(&mut self, spot: &Spot, message: impl Into<String>) {
        let source = &self.sources[spot.file];
        self.list.push(Diagnostic::without_value(
            &source.path,
            &source.text,
            spot.span.clone(),
            &spot.key_path,
            message,
        ));
    }

    pub fn push(&mut self, diagnostic: Diagnostic) {
        self.list.push(diagnostic);
    }

    /// The diagnostics in file order, then by position.
    pub fn into_sorted(self) -> Vec<Diagnostic> {
        let order = |path: &std::path::Path| {
            self.sources
                .iter()
                .position(|source| source.path == path)
                .unwrap_or(usize::MAX)
        };
        let mut list = self.list;
        list.sort_by_key(|d| (order(&d.file), d.line, d.column));
        list
    }
}

/// A value in the tree, with its key path.
#[derive(Clone)]
pub struct Node<'a, 'i> {
    pub file: usize,
    pub path: String,
    pub value: &'a Spanned<DeValue<'i>>,
}

/// A table in the tree; `key_span` is where its name is written, if it has one.
#[derive(Clone)]
pub struct Table<'a, 'i> {
    pub file: usize,
    pub path: String,
    pub table: &'a DeTable<'i>,
    pub key_span: Range<usize>,
}

/// `a.b` plus `c`, quoting keys that TOML would need quoted.
pub fn join_path(parent: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if parent.is_empty() {
        key
    } else {
        format!("{parent}.{key}")
    }
}

fn with_article(type_name: &str) -> String {
    match type_name {
        "integer" | "array" => format!("an {type_name}"),
        other => format!("a {other}"),
    }
}

impl<'a, 'i> Table<'a, 'i> {
    /// The whole document of file `file`.
    pub fn root(file: usize, doc: &'a Spanned<DeTable<'i>>) -> Self {
        Self {
            file,
            path: String::new(),
            table: doc.get_ref(),
            key_span: doc.span(),
        }
    }

    pub fn spot(&self) -> Spot {
        Spot {
            file: self.file,
            span: self.key_span.clone(),
            key_path: self.path.clone(),
        }
    }

    pub fn get(&self, key: &str) -> Option<Node<'a, 'i>> {
        self.table.get(key).map(|value| Node {
            file: self.file,
            path: join_path(&self.path, key),
            value,
        })
    }

    /// Entries in the order they are written in the file (the map itself is
    /// sorted by key).
    pub fn entries(&self) -> Vec<(&'a Spanned<DeString<'i>>, Node<'a, 'i>)> {
        let mut entries: Vec<_> = self
            .table
            .iter()
            .map(|(key, value)| {
                let node = Node {
                    file: self.file,
                    path: join_path(&self.path, key.get_ref()),
                    value,
                };
                (key, node)
            })
            .collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        entries
    }

    /// Reports every key not in `allowed`.
    pub fn deny_unknown(&self, allowed: &[&str], errors: &mut Errors<'_>) {
        for (key, _) in self.entries() {
            if !allowed.contains(&key.get_ref().as_ref()) {
                let spot = Spot {
                    file: self.file,
                    span: key.span(),
                    key_path: join_path(&self.path, key.get_ref()),
                };
                errors.at(
                    &spot,
                    format!(
                        "unknown key \"{}\" (expected one of: {})",
                        key.get_ref(),
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    /// Reads an optional key: `default` when absent, `None` when present but
    /// wrong (the mistake is reported).
    pub fn read<T>(
        &self,
        key: &str,
        default: T,
        read: impl FnOnce(Node<'a, 'i>) -> Option<T>,
    ) -> Option<T> {
        match self.get(key) {
            None => Some(default),
            Some(node) => read(node),
        }
    }

    /// Reads a key that must be present.
    pub fn require<T>(
        &self,
        key: &str,
        errors: &mut Errors<'_>,
        read: impl FnOnce(Node<'a, 'i>, &mut Errors<'_>) -> Option<T>,
    ) -> Option<T> {
        match self.get(key) {
            Some(node) => read(node, errors),
            None => {
                errors.without_value(&self.spot(), format!("missing key \"{key}\""));
                None
            }
        }
    }
}

impl<'a, 'i> Node<'a, 'i> {
    pub fn spot(&self) -> Spot {
        Spot {
            file: self.file,
            span: self.value.span(),
            key_path: self.path.clone(),
        }
    }

    fn wrong_type(&self, expected: &str, errors: &mut Errors<'_>) {
        let found = with_article(self.value.get_ref().type_str());
        errors.at(&self.spot(), format!("expected {expected}, found {found}"));
    }

    pub fn str(&self, errors: &mut Errors<'_>) -> Option<&'a str> {
        let value: &'a DeValue<'i> = self.value.get_ref();
        match value {
            DeValue::String(text) => Some(text.as_ref()),
            _ => {
                self.wrong_type("a string", errors);
                None
            }
        }
    }

    /// A string that holds more than white space.
    pub fn non_blank_str(&self, what: &str, errors: &mut Errors<'_>) -> Option<&'a str> {
        let text = self.str(errors)?;
        if text.trim().is_empty() {
            errors.at(&self.spot(), format!("{what} cannot be empty"));
            return None;
        }
        Some(text)
    }

    pub fn bool(&self, errors: &mut Errors<'_>) -> Option<bool> {
        match self.value.get_ref() {
            DeValue::Boolean(value) => Some(*value),
            _ => {
                self.wrong_type("a boolean", errors);
                None
            }
        }
    }

    pub fn integer(&self, errors: &mut Errors<'_>) -> Option<i64> {
        match self.value.get_ref() {
            DeValue::Integer(number) => {
                let parsed = i64::from_str_radix(number.as_str(), number.radix()).ok();
                if parsed.is_none() {
                    errors.at(&self.spot(), "integer out of range");
                }
                parsed
            }
            _ => {
                self.wrong_type("an integer", errors);
                None
            }
        }
    }

    /// An integer in `range`, converted to `T`.
    pub fn integer_in<T: TryFrom<i64>>(
        &self,
        range: std::ops::RangeInclusive<i64>,
        errors: &mut Errors<'_>,
    ) -> Option<T> {
        let number = self.integer(errors)?;
        match T::try_from(number) {
            Ok(value) if range.contains(&number) => Some(value),
            _ => {
                errors.at(
                    &self.spot(),
                    format!(
                        "{number} is out of range ({} to {})",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }

    /// An exit code, 0 to 255.
    pub fn exit_code(&self, errors: &mut Errors<'_>) -> Option<i32> {
        self.integer_in(0..=255, errors)
    }

    /// One exit code or an array of them.
    pub fn exit_codes(&self, errors: &mut Errors<'_>) -> Option<Vec<i32>> {
        match self.value.get_ref() {
            DeValue::Integer(_) => self.exit_code(errors).map(|code| vec![code]),
            DeValue::Array(_) => {
                let items = self.array(errors)?;
                let codes: Vec<_> = items.iter().map(|item| item.exit_code(errors)).collect();
                codes.into_iter().collect()
            }
            _ => {
                self.wrong_type("an exit code or an array of them", errors);
                None
            }
        }
    }

    pub fn array(&self, errors: &mut Errors<'_>) -> Option<Vec<Node<'a, 'i>>> {
        let value: &'a DeValue<'i> = self.value.get_ref();
        match value {
            DeValue::Array(items) => Some(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, value)| Node {
                        file: self.file,
                        path: format!("{}[{index}]", self.path),
                        value,
                    })
                    .collect(),
            ),
            _ => {
                self.wrong_type("an array", errors);
                None
            }
        }
    }

    /// An array of strings; every element is checked.
    pub fn strings(&self, errors: &mut Errors<'_>) -> Option<Vec<(Node<'a, 'i>, &'a str)>> {
        let items = self.array(errors)?;
        let mut all = Some(Vec::with_capacity(items.len()));
        for item in items {
            match (item.str(errors), all.as_mut()) {
                (Some(text), Some(all)) => all.push((item, text)),
                _ => all = None,
            }
        }
        all
    }

    /// The table's `key_span` is the value's span (a `[header]` or `{ … }`);
    /// callers that hold the naming key narrow it to that.
    pub fn table(&self, errors: &mut Errors<'_>) -> Option<Table<'a, 'i>> {
        let value: &'a DeValue<'i> = self.value.get_ref();
        match value {
            DeValue::Table(table) => Some(Table {
                file: self.file,
                path: self.path.clone(),
                table,
                key_span: self.value.span(),
            }),
            _ => {
                self.wrong_type("a table", errors);
                None
            }
        }
    }

    pub fn duration(&self, errors: &mut Errors<'_>) -> Option<Duration> {
        let text = match self.value.get_ref() {
            DeValue::String(text) => text,
            _ => {
                self.wrong_type("a duration string like \"10s\"", errors);
                return None;
            }
        };
        match parse_duration(text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                errors.at(&self.spot(), message);
                None
            }
        }
    }

    /// A duration that must be longer than zero (a poll interval, a timeout
    /// that would otherwise fire at once).
    pub fn positive_duration(&self, errors: &mut Errors<'_>) -> Option<Duration> {
        let duration = self.duration(errors)?;
        if duration.is_zero() {
            errors.at(&self.spot(), "duration must be longer than zero");
            return None;
        }
        Some(duration)
    }

    pub fn regex(&self, errors: &mut Errors<'_>) -> Option<Regex> {
        let pattern = self.str(errors)?;
        if pattern.is_empty() {
            errors.at(&self.spot(), "empty regex: it would match every line");
            return None;
        }
        match Regex::new(pattern) {
            Ok(regex) => Some(regex),
            Err(error) => {
                errors.at(&self.spot(), format!("bad regex: {}", regex_reason(&error)));
                None
            }
        }
    }

    /// One of a few fixed words.
    pub fn choice<T: Copy>(&self, choices: &[(&str, T)], errors: &mut Errors<'_>) -> Option<T> {
        let word = self.str(errors)?;
        let found = choices.iter().find(|(name, _)| *name == word);
        if found.is_none() {
            let names: Vec<String> = choices
                .iter()
                .map(|(name, _)| format!("\"{name}\""))
                .collect();
            errors.at(
                &self.spot(),
                format!(
                    "unknown value \"{word}\" (expected one of: {})",
                    names.join(", ")
                ),
            );
        }
        found.map(|(_, value)| *value)
    }
}

/// The regex crate's syntax errors are a small drawing of the pattern; the
/// diagnostic already shows the pattern, so keep only the reason.
fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    text.lines()
        .find_map(|line| line.strip_prefix("error: "))
        .map_or(text.clone(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_quote_keys_that_are_not_bare() {
        assert_eq!(join_path("", "jobs"), "jobs");
        assert_eq!(join_path("jobs", "build"), "jobs.build");
        assert_eq!(join_path("jobs", "a.b"), "jobs.\"a.b\"");
        assert_eq!(join_path("env", "my var"), "env.\"my var\"");
    }

    #[test]
    fn regex_errors_keep_only_the_reason() {
        // Built at run time: clippy rejects a literal bad regex.
        let pattern = ["(?P", "<name"].concat();
        let error = Regex::new(&pattern).err();
        let reason = error.as_ref().map(regex_reason);
        assert_eq!(reason.as_deref(), Some("unclosed capture group name"));
    }
}
