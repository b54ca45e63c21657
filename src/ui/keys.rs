//! Keys and what they do: the UI's commands, their default keys, and the
//! user's `keys.toml` that rebinds them. The help screen is made from this
//! map, and the job commands take their words from [`Action::describe`], so
//! keys, help and the control socket say the same thing.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::action::Action;

/// A key as the UI sees it: a name plus Ctrl and Alt. Shift is folded into
/// the character (`R`, `?`) or the name (`BackTab`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub name: KeyName,
    pub ctrl: bool,
    pub alt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyName {
    Char(char),
    Enter,
    Esc,
    Tab,
    BackTab,
    Backspace,
    Delete,
    Insert,
    Up,
    Down,
    Left,
    Right,
    PageUp,
    PageDown,
    Home,
    End,
    F(u8),
}

/// Names `keys.toml` accepts besides single characters, and how help shows them.
const NAMED: [(&str, KeyName, &str); 16] = [
    ("enter", KeyName::Enter, "Enter"),
    ("esc", KeyName::Esc, "Esc"),
    ("tab", KeyName::Tab, "Tab"),
    ("backtab", KeyName::BackTab, "Shift+Tab"),
    ("backspace", KeyName::Backspace, "Backspace"),
    ("delete", KeyName::Delete, "Delete"),
    ("insert", KeyName::Insert, "Insert"),
    ("up", KeyName::Up, "↑"),
    ("down", KeyName::Down, "↓"),
    ("left", KeyName::Left, "←"),
    ("right", KeyName::Right, "→"),
    ("pgup", KeyName::PageUp, "PgUp"),
    ("pgdn", KeyName::PageDown, "PgDn"),
    ("home", KeyName::Home, "Home"),
    ("end", KeyName::End, "End"),
    ("space", KeyName::Char(' '), "Space"),
];

/// What a bad key name is told, with what would have worked.
const KEY_HELP: &str = "a key is one character (\"R\", \"?\"), or one of enter, esc, tab, \
     backtab, backspace, delete, insert, up, down, left, right, pgup, pgdn, home, end, \
     space, f1..f12; ctrl-, alt- or shift- may come before it (\"ctrl-r\")";

impl Key {
    pub const fn plain(name: KeyName) -> Key {
        Key {
            name,
            ctrl: false,
            alt: false,
        }
    }

    pub const fn char(c: char) -> Key {
        Key::plain(KeyName::Char(c))
    }

    pub const fn ctrl(c: char) -> Key {
        Key {
            name: KeyName::Char(c),
            ctrl: true,
            alt: false,
        }
    }

    /// Parses `R`, `?`, `enter`, `pgdn`, `f5`, `ctrl-r`, `alt-x`, `shift-tab`.
    pub fn parse(text: &str) -> Result<Key, String> {
        let mut rest = text;
        let (mut ctrl, mut alt, mut shift) = (false, false, false);
        // "-" alone is the minus key; "ctrl--" is Ctrl and minus.
        while rest.chars().count() > 1 {
            let Some((prefix, tail)) = rest.split_once('-') else {
                break;
            };
            match prefix.to_ascii_lowercase().as_str() {
                "ctrl" | "c" => ctrl = true,
                "alt" | "m" | "meta" => alt = true,
                "shift" | "s" => shift = true,
                _ => break,
            }
            rest = tail;
        }
        let mut chars = rest.chars();
        let name = match (chars.next(), chars.next()) {
            (Some(c), None) => {
                let c = if shift || ctrl {
                    // Ctrl+R and Ctrl+r are one key to a terminal.
                    if ctrl {
                        c.to_ascii_lowercase()
                    } else {
                        c.to_ascii_uppercase()
                    }
                } else {
                    c
                };
                KeyName::Char(c)
            }
            (None, _) => return Err(format!("an empty key name: {KEY_HELP}")),
            _ => {
                let lower = rest.to_ascii_lowercase();
                let named = NAMED
                    .iter()
                    .find(|(name, _, _)| *name == lower)
                    .map(|(_, key, _)| *key);
                match (named, lower.strip_prefix('f')) {
                    (Some(KeyName::Tab), _) if shift => KeyName::BackTab,
                    (Some(key), _) => key,
                    (None, Some(number)) => match number.parse::<u8>() {
                        Ok(n @ 1..=12) => KeyName::F(n),
                        _ => return Err(format!("unknown key name {text:?}: {KEY_HELP}")),
                    },
                    (None, None) => return Err(format!("unknown key name {text:?}: {KEY_HELP}")),
                }
            }
        };
        Ok(Key { name, ctrl, alt })
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ctrl {
            f.write_str("Ctrl+")?;
        }
        if self.alt {
            f.write_str("Alt+")?;
        }
        match self.name {
            KeyName::Char(c) if c != ' ' => {
                if self.ctrl {
                    write!(f, "{}", c.to_ascii_uppercase())
                } else {
                    write!(f, "{c}")
                }
            }
            KeyName::F(n) => write!(f, "F{n}"),
            other => {
                let shown = NAMED
                    .iter()
                    .find(|(_, key, _)| *key == other)
                    .map_or("?", |(_, _, shown)| shown);
                f.write_str(shown)
            }
        }
    }
}

/// Everything a key can ask of the UI. Names are kebab-case in `keys.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Command {
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Fold,
    Unfold,
    ToggleFold,
    Open,
    Back,
    Restart,
    StopStart,
    Signal,
    Host,
    Search,
    NextMatch,
    PrevMatch,
    Follow,
    Wrap,
    Help,
    Quit,
    QuitNow,
}

impl Command {
    /// In the order help lists them.
    pub const ALL: [Command; 23] = [
        Command::Up,
        Command::Down,
        Command::PageUp,
        Command::PageDown,
        Command::Top,
        Command::Bottom,
        Command::Fold,
        Command::Unfold,
        Command::ToggleFold,
        Command::Open,
        Command::Back,
        Command::Restart,
        Command::StopStart,
        Command::Signal,
        Command::Host,
        Command::Search,
        Command::NextMatch,
        Command::PrevMatch,
        Command::Follow,
        Command::Wrap,
        Command::Help,
        Command::Quit,
        Command::QuitNow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Command::Up => "up",
            Command::Down => "down",
            Command::PageUp => "page-up",
            Command::PageDown => "page-down",
            Command::Top => "top",
            Command::Bottom => "bottom",
            Command::Fold => "fold",
            Command::Unfold => "unfold",
            Command::ToggleFold => "toggle-fold",
            Command::Open => "open",
            Command::Back => "back",
            Command::Restart => "restart",
            Command::StopStart => "stop-start",
            Command::Signal => "signal",
            Command::Host => "host",
            Command::Search => "search",
            Command::NextMatch => "next-match",
            Command::PrevMatch => "prev-match",
            Command::Follow => "follow",
            Command::Wrap => "wrap",
            Command::Help => "help",
            Command::Quit => "quit",
            Command::QuitNow => "quit-now",
        }
    }

    /// One line for the help screen. The job commands use the words of the
    /// shared [`Action`] vocabulary.
    pub fn describe(self) -> String {
        let none = Vec::new;
        match self {
            Command::Up => "move up; in a job's output, scroll up".into(),
            Command::Down => "move down; in a job's output, scroll down".into(),
            Command::PageUp => "a page up".into(),
            Command::PageDown => "a page down".into(),
            Command::Top => "to the first row, or the oldest line kept".into(),
            Command::Bottom => "to the last row, or the newest line (and follow)".into(),
            Command::Fold => {
                "fold the row, or go to its parent; scroll left in unwrapped output".into()
            }
            Command::Unfold => "unfold the row; scroll right in unwrapped output".into(),
            Command::ToggleFold => "fold or unfold the row".into(),
            Command::Open => "open the job's output (on a system or job row: fold)".into(),
            Command::Back => "back to the previous screen; close a menu".into(),
            Command::Restart => Action::Restart { targets: none() }.describe().into(),
            Command::StopStart => format!(
                "{}; if it is not running: {}",
                Action::Stop { targets: none() }.describe(),
                Action::Start { targets: none() }.describe()
            ),
            Command::Signal => "send a signal to the job's process group (a menu)".into(),
            Command::Host => "the host of the job: load, CPU, memory, processes".into(),
            Command::Search => "search the output (or the job names in the fleet view)".into(),
            Command::NextMatch => "the next match".into(),
            Command::PrevMatch => "the previous match".into(),
            Command::Follow => "follow new output, or stop following".into(),
            Command::Wrap => "wrap long lines, or cut them".into(),
            Command::Help => "this help".into(),
            Command::Quit => format!("{} (asks first)", Action::Down.describe()),
            Command::QuitNow => "quit without asking, when no job runs".into(),
        }
    }

    fn default_keys(self) -> Vec<Key> {
        use KeyName::*;
        let keys: &[Key] = match self {
            Command::Up => &[Key::plain(Up), Key::char('k')],
            Command::Down => &[Key::plain(Down), Key::char('j')],
            Command::PageUp => &[Key::plain(PageUp), Key::ctrl('u')],
            Command::PageDown => &[Key::plain(PageDown), Key::ctrl('d')],
            Command::Top => &[Key::char('g'), Key::plain(Home)],
            Command::Bottom => &[Key::char('G'), Key::plain(End)],
            Command::Fold => &[Key::plain(Left), Key::char('h')],
            Command::Unfold => &[Key::plain(Right), Key::char('l')],
            Command::ToggleFold => &[Key::char(' ')],
            Command::Open => &[Key::plain(Enter)],
            Command::Back => &[Key::plain(Esc)],
            Command::Restart => &[Key::char('R')],
            Command::StopStart => &[Key::char('s')],
            Command::Signal => &[Key::char('x')],
            Command::Host => &[Key::char('H')],
            Command::Search => &[Key::char('/')],
            Command::NextMatch => &[Key::char('n')],
            Command::PrevMatch => &[Key::char('N')],
            Command::Follow => &[Key::char('f')],
            Command::Wrap => &[Key::char('w')],
            Command::Help => &[Key::char('?')],
            Command::Quit => &[Key::char('q')],
            Command::QuitNow => &[Key::char('Q')],
        };
        keys.to_vec()
    }

    fn by_name(name: &str) -> Option<Command> {
        Command::ALL
            .into_iter()
            .find(|command| command.name() == name)
    }
}

/// Ctrl+C always asks to quit, whatever `keys.toml` says: it is what a
/// user presses when nothing else works.
pub const CTRL_C: Key = Key::ctrl('c');

/// Which key does what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keymap {
    by_key: BTreeMap<Key, Command>,
    /// Each command's keys in the order given, for help and the footer.
    by_command: BTreeMap<Command, Vec<Key>>,
}

impl Default for Keymap {
    fn default() -> Keymap {
        let mut keymap = Keymap {
            by_key: BTreeMap::new(),
            by_command: BTreeMap::new(),
        };
        for command in Command::ALL {
            keymap.bind(command, command.default_keys());
        }
        keymap
    }
}

/// A `keys.toml` zap cannot use. Each says the file and what to change.
#[derive(Debug, thiserror::Error)]
pub enum KeymapError {
    #[error("{path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("{path}: {name:?} is not a command; the commands are: {known}")]
    UnknownCommand {
        path: PathBuf,
        name: String,
        known: String,
    },
    #[error("{path}: {command}: {message}")]
    BadKey {
        path: PathBuf,
        command: String,
        message: String,
    },
    #[error("{path}: {key} is bound to both {first} and {second}")]
    Conflict {
        path: PathBuf,
        key: String,
        first: String,
        second: String,
    },
}

impl Keymap {
    pub fn command(&self, key: &Key) -> Option<Command> {
        if *key == CTRL_C {
            return Some(Command::Quit);
        }
        self.by_key.get(key).copied()
    }

    pub fn keys(&self, command: Command) -> &[Key] {
        self.by_command.get(&command).map_or(&[], Vec::as_slice)
    }

    /// The first key of `command` as help shows it, or `-` if unbound.
    pub fn first(&self, command: Command) -> String {
        self.keys(command)
            .first()
            .map_or_else(|| "-".to_string(), ToString::to_string)
    }

    /// Gives `command` exactly `keys`, taking them from any other command.
    fn bind(&mut self, command: Command, keys: Vec<Key>) {
        if let Some(old) = self.by_command.insert(command, keys.clone()) {
            for key in old {
                self.by_key.remove(&key);
            }
        }
        for key in keys {
            if let Some(other) = self.by_key.insert(key, command)
                && other != command
                && let Some(list) = self.by_command.get_mut(&other)
            {
                list.retain(|taken| *taken != key);
            }
        }
    }

    /// `$XDG_CONFIG_HOME/zap/keys.toml`, else `~/.config/zap/keys.toml`.
    pub fn user_file() -> Option<PathBuf> {
        let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        if let Some(config) = non_empty("XDG_CONFIG_HOME") {
            return Some(PathBuf::from(config).join("zap/keys.toml"));
        }
        non_empty("HOME").map(|home| PathBuf::from(home).join(".config/zap/keys.toml"))
    }

    /// The user's key map: the defaults with [`Keymap::user_file`] applied
    /// (no file: the defaults).
    pub fn load_user() -> Result<Keymap, KeymapError> {
        match Keymap::user_file() {
            Some(path) => Keymap::load(&path),
            None => Ok(Keymap::default()),
        }
    }

    /// The defaults with the file at `path` applied; a missing file is fine.
    pub fn load(path: &Path) -> Result<Keymap, KeymapError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Keymap::parse(&text, path),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Keymap::default()),
            Err(source) => Err(KeymapError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Applies `text`, a table of `command = "key"` or `command = ["key", …]`
    /// (`[]` unbinds), to the defaults. A key given to a command is taken
    /// from the command that had it by default.
    pub fn parse(text: &str, path: &Path) -> Result<Keymap, KeymapError> {
        let table: toml::Table =
            text.parse()
                .map_err(|error: toml::de::Error| KeymapError::Toml {
                    path: path.to_path_buf(),
                    message: error.message().to_string(),
                })?;
        let mut keymap = Keymap::default();
        let mut given: BTreeMap<Key, Command> = BTreeMap::new();
        for (name, value) in &table {
            let Some(command) = Command::by_name(name) else {
                let known: Vec<&str> = Command::ALL.iter().map(|c| c.name()).collect();
                return Err(KeymapError::UnknownCommand {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    known: known.join(", "),
                });
            };
            let bad = |message: String| KeymapError::BadKey {
                path: path.to_path_buf(),
                command: name.clone(),
                message,
            };
            let texts: Vec<&toml::Value> = match value {
                toml::Value::Array(items) => items.iter().collect(),
                single => vec![single],
            };
            let mut keys = Vec::new();
            for text in texts {
                let Some(text) = text.as_str() else {
                    return Err(bad(format!(
                        "{text} is not a key: write it as a string, e.g. \"R\" or [\"R\", \"ctrl-r\"]"
                    )));
                };
                let key = Key::parse(text).map_err(bad)?;
                if key == CTRL_C && command != Command::Quit {
                    return Err(bad(
                        "Ctrl+C always asks to quit: it cannot be rebound".into()
                    ));
                }
                if let Some(first) = given.insert(key, command)
                    && first != command
                {
                    return Err(KeymapError::Conflict {
                        path: path.to_path_buf(),
                        key: text.to_string(),
                        first: first.name().to_string(),
                        second: command.name().to_string(),
                    });
                }
                keys.push(key);
            }
            keymap.bind(command, keys);
        }
        Ok(keymap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_parse_and_print() {
        for (text, shown) in [
            ("R", "R"),
            ("?", "?"),
            ("-", "-"),
            ("enter", "Enter"),
            ("PgDn", "PgDn"),
            ("space", "Space"),
            ("ctrl-r", "Ctrl+R"),
            ("Ctrl-R", "Ctrl+R"),
            ("alt-x", "Alt+x"),
            ("shift-r", "R"),
            ("shift-tab", "Shift+Tab"),
            ("f5", "F5"),
            ("ctrl--", "Ctrl+-"),
        ] {
            let key = Key::parse(text).unwrap_or_else(|error| panic!("{text}: {error}"));
            assert_eq!(key.to_string(), shown, "{text}");
        }
        for bad in ["", "ctrll-r", "f13", "enterr", "ctrl-"] {
            let error = Key::parse(bad).expect_err(bad);
            assert!(error.contains("ctrl-"), "{bad}: {error}");
        }
    }

    #[test]
    fn defaults_cover_the_spec_keys() {
        let keymap = Keymap::default();
        let command = |text: &str| keymap.command(&Key::parse(text).expect("key"));
        assert_eq!(command("up"), Some(Command::Up));
        assert_eq!(command("k"), Some(Command::Up));
        assert_eq!(command("enter"), Some(Command::Open));
        assert_eq!(command("esc"), Some(Command::Back));
        assert_eq!(command("R"), Some(Command::Restart));
        assert_eq!(command("s"), Some(Command::StopStart));
        assert_eq!(command("/"), Some(Command::Search));
        assert_eq!(command("f"), Some(Command::Follow));
        assert_eq!(command("?"), Some(Command::Help));
        assert_eq!(command("q"), Some(Command::Quit));
        assert_eq!(command("ctrl-c"), Some(Command::Quit));
        assert_eq!(command("r"), None);
    }

    #[test]
    fn a_keys_file_rebinds_and_takes_keys_from_defaults() {
        let path = Path::new("keys.toml");
        let keymap = Keymap::parse(
            "restart = [\"r\", \"ctrl-r\"]\nhelp = \"h\"\nquit-now = []\n",
            path,
        )
        .expect("valid");
        let command = |text: &str| keymap.command(&Key::parse(text).expect("key"));
        assert_eq!(command("r"), Some(Command::Restart));
        assert_eq!(command("ctrl-r"), Some(Command::Restart));
        assert_eq!(command("R"), None, "rebinding replaces the default");
        assert_eq!(command("h"), Some(Command::Help));
        assert_eq!(keymap.keys(Command::Fold), [Key::plain(KeyName::Left)]);
        assert_eq!(command("Q"), None);
        assert_eq!(keymap.first(Command::QuitNow), "-");
    }

    #[test]
    fn a_bad_keys_file_says_what_and_where() {
        let path = Path::new("/home/u/.config/zap/keys.toml");
        let error = |text: &str| Keymap::parse(text, path).expect_err(text).to_string();
        let message = error("restart = \"ctrll-r\"\n");
        assert!(
            message.starts_with(
                "/home/u/.config/zap/keys.toml: restart: unknown key name \"ctrll-r\""
            ),
            "{message}"
        );
        let message = error("restat = \"r\"\n");
        assert!(message.contains("\"restat\" is not a command"), "{message}");
        assert!(message.contains("restart"), "{message}");
        let message = error("restart = \"r\"\nhelp = \"r\"\n");
        assert!(message.contains("r is bound to both"), "{message}");
        let message = error("restart = 3\n");
        assert!(message.contains("write it as a string"), "{message}");
        let message = error("help = \"ctrl-c\"\n");
        assert!(message.contains("cannot be rebound"), "{message}");
        assert!(error("restart = [").contains("not valid TOML"));
    }

    #[test]
    fn a_missing_file_means_the_defaults() {
        let keymap = Keymap::load(Path::new("/nonexistent/zap/keys.toml")).expect("defaults");
        assert_eq!(keymap, Keymap::default());
    }
}
