//! Reading the config folder: TOML → validated [`Plan`], or every mistake with
//! its file, line and column.
//!
//! The files are parsed with positions (`toml::de::DeTable`) rather than
//! deserialized with serde, so that one load reports every mistake in every
//! file instead of stopping at the first.

mod diagnostic;
mod duration;
mod fixup;
mod graph;
mod hosts;
mod jobs;
mod names;
mod pack;
pub mod plan;
mod reader;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::DeTable;

pub use diagnostic::{ConfigErrors, Diagnostic};
pub use duration::parse_duration;
pub use fixup::{BUILT_IN_PACKS, placeholders};
pub use pack::BUILT_IN_PACK_SOURCES;
pub use plan::*;

use hosts::{PathBase, read_hosts};
use jobs::{Known, ReadSystem, read_system};
use names::is_plain_name;
use pack::read_pack;
use reader::{Errors, Table};

/// Where the built-in fixup packs appear to be, in diagnostics.
pub const BUILT_IN_DIR: &str = "<built-in>";

/// A config file's text, with its path relative to the config folder
/// (`hosts.toml`, `jobs/web.toml`, `jobs/fixups/vm.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// True when `dir` holds a `hosts.toml` or a `jobs/` folder.
pub fn has_config(dir: &Path) -> bool {
    dir.join("hosts.toml").is_file() || dir.join("jobs").is_dir()
}

/// Reads `dir/hosts.toml` (optional: without it there is only the built-in
/// `local` host), `dir/jobs/*.toml` (one system each) and the fixup packs
/// in `dir/jobs/fixups/*.toml`, next to the built-in ones.
pub fn load(dir: &Path) -> Result<Plan, ConfigErrors> {
    let mut problems = Vec::new();
    let mut paths = Vec::new();
    if dir.join("hosts.toml").exists() {
        paths.push(PathBuf::from("hosts.toml"));
    }
    for folder in ["jobs", "jobs/fixups"] {
        match toml_files(&dir.join(folder)) {
            Ok(names) => paths.extend(names.into_iter().map(|name| Path::new(folder).join(name))),
            Err(error) => problems.push(Diagnostic::whole_file(
                Path::new(folder),
                None,
                format!("cannot list the folder: {error}"),
            )),
        }
    }
    let mut sources = Vec::new();
    for path in paths {
        match std::fs::read_to_string(dir.join(&path)) {
            Ok(text) => sources.push(SourceFile::new(path, text)),
            Err(error) => problems.push(Diagnostic::whole_file(
                &path,
                None,
                format!("cannot read the file: {error}"),
            )),
        }
    }
    match load_sources(dir, &sources) {
        Ok(plan) if problems.is_empty() => Ok(plan),
        Ok(_) => Err(ConfigErrors::new(problems)),
        Err(errors) => {
            problems.extend(errors.diagnostics().iter().cloned());
            Err(ConfigErrors::new(problems))
        }
    }
}

/// The `*.toml` file names in `folder`, sorted; none when it does not exist.
fn toml_files(folder: &Path) -> std::io::Result<Vec<String>> {
    if !folder.is_dir() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".toml") && entry.path().is_file() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Like [`load`], on files already in memory (the embedded demo, tests).
/// `dir` is what relative paths in the files are taken from.
pub fn load_sources(dir: &Path, sources: &[SourceFile]) -> Result<Plan, ConfigErrors> {
    let home = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from);
    load_with_home(dir, sources, home.as_deref())
}

/// What a file is, by its path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Hosts,
    System(String),
    Pack(String),
    BuiltInPack(String),
    Unknown,
}

fn role(path: &Path) -> Role {
    let parent = path.parent().unwrap_or(Path::new(""));
    let stem = path
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned());
    let is_toml = path.extension().is_some_and(|ext| ext == "toml");
    match (stem, is_toml) {
        _ if path == Path::new("hosts.toml") => Role::Hosts,
        (Some(stem), true) if parent == Path::new("jobs") => Role::System(stem),
        (Some(stem), true) if parent == Path::new("jobs/fixups") => Role::Pack(stem),
        (Some(stem), true) if parent == Path::new(BUILT_IN_DIR) => Role::BuiltInPack(stem),
        _ => Role::Unknown,
    }
}

/// [`load_sources`] with `$HOME` given, so that tests need not change the
/// process environment.
fn load_with_home(
    dir: &Path,
    sources: &[SourceFile],
    home: Option<&Path>,
) -> Result<Plan, ConfigErrors> {
    // Sorted by role and name, so systems come in file-name order and so do
    // the diagnostics.
    let mut sources = sources.to_vec();
    add_built_in_packs(&mut sources);
    sources.sort_by_cached_key(|source| role(&source.path));
    let sources = sources;
    let mut errors = Errors::new(&sources);

    let docs: Vec<Option<Spanned<DeTable<'_>>>> = sources
        .iter()
        .map(|source| parse_toml(source, &mut errors))
        .collect();

    let mut hosts_doc = None;
    let mut hosts_unreadable = false;
    let mut systems: Vec<(usize, String)> = Vec::new();
    let mut packs = BTreeSet::new();
    let mut pack_files: Vec<(usize, String)> = Vec::new();
    for (file, source) in sources.iter().enumerate() {
        match role(&source.path) {
            Role::Hosts if hosts_doc.is_some() || hosts_unreadable => {
                errors.push(Diagnostic::whole_file(
                    &source.path,
                    None,
                    "hosts.toml is given twice",
                ));
            }
            Role::Hosts => match &docs[file] {
                Some(doc) => hosts_doc = Some(Table::root(file, doc)),
                None => hosts_unreadable = true,
            },
            Role::System(name) => {
                if check_system_name(&name, &source.path, &systems, &sources, &mut errors) {
                    systems.push((file, name));
                }
            }
            Role::Pack(name) if is_plain_name(&name) => {
                packs.insert(name.clone());
                pack_files.push((file, name));
            }
            Role::BuiltInPack(name) => pack_files.push((file, name)),
            Role::Pack(name) => errors.push(Diagnostic::whole_file(
                &source.path,
                Some(name.clone()),
                format!("bad fixup pack name \"{name}\": use letters, digits, '-' and '_'"),
            )),
            Role::Unknown => errors.push(Diagnostic::whole_file(
                &source.path,
                None,
                "not a config file: expected hosts.toml, jobs/NAME.toml or jobs/fixups/NAME.toml",
            )),
        }
    }

    let absolute_dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let base = PathBase {
        dir: &absolute_dir,
        home,
    };
    let hosts = read_hosts(hosts_doc, &base, &mut errors);
    let known = Known {
        hosts: (!hosts_unreadable).then_some(&hosts),
        packs: &packs,
    };

    let mut read: Vec<ReadSystem> = Vec::new();
    let mut unreadable: BTreeSet<&str> = BTreeSet::new();
    for (file, name) in &systems {
        match &docs[*file] {
            Some(doc) => read.push(read_system(
                &Table::root(*file, doc),
                name,
                &known,
                &mut errors,
            )),
            None => {
                unreadable.insert(name);
            }
        }
    }
    let mut fixup_packs = BTreeMap::new();
    for (file, name) in &pack_files {
        let source = &sources[*file];
        let origin = match role(&source.path) {
            Role::BuiltInPack(_) => PackOrigin::BuiltIn,
            _ => PackOrigin::File(source.path.clone()),
        };
        let doc = docs[*file].as_ref();
        if let Some(pack) = doc.and_then(|doc| {
            read_pack(
                &Table::root(*file, doc),
                name,
                &source.path,
                origin,
                &mut errors,
            )
        }) {
            fixup_packs.insert(name.clone(), pack);
        }
    }
    let system_names: BTreeSet<&str> = systems.iter().map(|(_, name)| name.as_str()).collect();
    let all_jobs: Vec<_> = read.iter().flat_map(|system| &system.jobs).collect();
    let mut after = graph::resolve_after(&all_jobs, &system_names, &unreadable, &mut errors);

    if errors.count() > 0 {
        return Err(ConfigErrors::new(errors.into_sorted()));
    }
    let mut plan = Plan {
        dir: dir.to_path_buf(),
        hosts: hosts.hosts,
        systems: Vec::new(),
        jobs: Vec::new(),
        fixup_packs,
    };
    // With no diagnostics, every part below is present.
    for system in read {
        plan.systems.extend(system.system);
        for job in system.jobs {
            if let Some(mut value) = job.job {
                value.after = after.remove(&job.name).unwrap_or_default();
                plan.jobs.push(value);
            }
        }
    }
    Ok(plan)
}

/// Adds the built-in packs that no `jobs/fixups/NAME.toml` replaces, so they
/// are read (and checked) like a user's.
fn add_built_in_packs(sources: &mut Vec<SourceFile>) {
    for (name, text) in pack::BUILT_IN_PACK_SOURCES {
        let replaced = sources
            .iter()
            .any(|source| role(&source.path) == Role::Pack((*name).to_string()));
        if !replaced {
            let path = Path::new(BUILT_IN_DIR).join(format!("{name}.toml"));
            sources.push(SourceFile::new(path, *text));
        }
    }
}

/// Parses a file, reporting its first syntax error. Later syntax errors are
/// not reported: the parser's recovery makes them mostly echoes of the first
/// (a duplicate table, say, spills its keys into the first one).
fn parse_toml<'t>(source: &'t SourceFile, errors: &mut Errors<'_>) -> Option<Spanned<DeTable<'t>>> {
    let (doc, syntax_errors) = DeTable::parse_recoverable(&source.text);
    let first = syntax_errors
        .iter()
        .min_by_key(|error| error.span().map_or(usize::MAX, |span| span.start));
    let Some(first) = first else {
        return Some(doc);
    };
    let span = first.span().unwrap_or(0..0);
    let message = format!("TOML syntax: {}", first.message());
    let diagnostic = if span.is_empty() {
        // Something is missing here (a comma, a bracket): point just after
        // the last thing written, not at the start of the next line.
        let text = source.text.get(..span.start).unwrap_or("");
        let at = text.trim_end().len();
        Diagnostic::without_value(&source.path, &source.text, at..at, "", message)
    } else {
        Diagnostic::at(&source.path, &source.text, span, "", message)
    };
    errors.push(diagnostic);
    None
}

/// A system's name is its file stem: plain, and not the same as another
/// system's but for case (on a case-blind file system they are one file, and
/// targets would be ambiguous).
fn check_system_name(
    name: &str,
    path: &Path,
    earlier: &[(usize, String)],
    sources: &[SourceFile],
    errors: &mut Errors<'_>,
) -> bool {
    if !is_plain_name(name) {
        let why = if name.contains('.') {
            "'.' separates system and job"
        } else {
            "use letters, digits, '-' and '_'"
        };
        errors.push(Diagnostic::whole_file(
            path,
            Some(name.to_string()),
            format!("bad system name \"{name}\" (the file name): {why}"),
        ));
        return false;
    }
    let clash = earlier
        .iter()
        .find(|(_, other)| other.eq_ignore_ascii_case(name));
    if let Some((file, other)) = clash {
        let message = if other == name {
            format!("system \"{name}\" is given twice")
        } else {
            format!(
                "system \"{name}\" differs from \"{other}\" ({}) only by case",
                sources[*file].path.display()
            )
        };
        errors.push(Diagnostic::whole_file(
            path,
            Some(name.to_string()),
            message,
        ));
        return false;
    }
    true
}
