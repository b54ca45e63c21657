//! Where an instance's log files live, how they rotate, and reading them
//! back.
//!
//! An instance's output goes to `<root>/system.job@host.log`; older output
//! to `….log.1` (the most recent) up to `….log.N` (the oldest).

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{LogLine, record};
use crate::model::{InstanceId, StepIndex};

/// The directory of the log files of the project whose `hosts.toml` is in
/// `config_dir`.
pub fn logs_dir(config_dir: &Path) -> PathBuf {
    config_dir.join(".zap").join("logs")
}

/// The current log file of `id` in `root`: `web.build@n1.log`.
///
/// Names are validated to letters, digits, `-`, `_` (and `.` in host names)
/// before they get here, so the name is the target as typed. Anything else
/// is written `%XX` per byte, which keeps names apart (`a b` and `a_b`
/// differ) and out of other directories (`/` and a leading `..` cannot
/// appear).
pub fn log_path(root: &Path, id: &InstanceId) -> PathBuf {
    let mut name = String::new();
    push_escaped(&mut name, &id.job.system, false);
    name.push('.');
    push_escaped(&mut name, &id.job.job, false);
    name.push('@');
    push_escaped(&mut name, &id.host.0, true);
    name.push_str(".log");
    root.join(name)
}

fn push_escaped(out: &mut String, name: &str, dots: bool) {
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_') || (dots && byte == b'.') {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
}

/// `path` with `.n` appended: the `n`-th older file.
pub(super) fn rotated(path: &Path, n: u64) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The older files of `path` that exist, by number, most recent first.
fn older_files(path: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(Vec::new());
    };
    let mut prefix = name.to_os_string();
    prefix.push(".");
    let prefix = prefix.as_encoded_bytes();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(suffix) = name.as_encoded_bytes().strip_prefix(prefix) else {
            continue;
        };
        // Only what `rotated` makes: `.7`, not `.07` or `.7.bak`.
        let number = std::str::from_utf8(suffix).ok().and_then(|s| {
            s.parse::<u64>()
                .ok()
                .filter(|n| *n >= 1 && n.to_string() == s)
        });
        if let Some(n) = number {
            found.push((n, entry.path()));
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Moves `path` to `path.1`, `path.1` to `path.2` and so on, so that with
/// the new file about to be started there are `keep` files at most: older
/// ones are deleted, including any left from a larger `keep`.
pub(super) fn rotate(path: &Path, keep: usize) -> io::Result<()> {
    let keep = keep.max(1) as u64;
    let older = older_files(path)?;
    for (n, file) in &older {
        if *n >= keep - 1 {
            remove_if_present(file)?;
        }
    }
    for (n, file) in older.iter().rev() {
        if *n < keep - 1 {
            fs::rename(file, rotated(path, n + 1))?;
        }
    }
    if keep > 1 {
        fs::rename(path, rotated(path, 1))
    } else {
        remove_if_present(path)
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// All of `id`'s output on disk, oldest first, only `step`'s lines if a step
/// is given. Lines are numbered (`seq`) by their place among all the lines
/// read, before the step filter.
///
/// A last line without its newline is left out: it was being written (or
/// zap died writing it). Lines that are not records (a file edited by hand)
/// are skipped. An error `NotFound` means there is no file at all for `id`.
///
/// While a zap is writing, a rotation between listing and reading the files
/// can make some lines appear twice or not at all.
pub fn read_log(root: &Path, id: &InstanceId, step: Option<StepIndex>) -> io::Result<Vec<LogLine>> {
    let path = log_path(root, id);
    let mut files: Vec<PathBuf> = older_files(&path)?
        .into_iter()
        .rev()
        .map(|(_, file)| file)
        .collect();
    files.push(path.clone());
    let mut lines = Vec::new();
    let mut seq = 0;
    let mut any = false;
    for file in &files {
        let bytes = match fs::read(file) {
            Ok(bytes) => bytes,
            // Rotated away since listed, or no current file yet.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", file.display()))),
        };
        any = true;
        let mut records = bytes.split(|&b| b == b'\n');
        // What follows the last newline: empty, or a torn line.
        records.next_back();
        for record in records {
            let Some(mut line) = record::parse(&String::from_utf8_lossy(record)) else {
                continue;
            };
            line.seq = seq;
            seq += 1;
            if step.is_none() || line.step == step {
                lines.push(line);
            }
        }
    }
    if !any {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no log of {id} in {}", root.display()),
        ));
    }
    Ok(lines)
}

#[cfg(test)]
pub(super) mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::logs::Origin;
    use crate::model::{HostName, JobName};

    pub(crate) fn instance(system: &str, job: &str, host: &str) -> InstanceId {
        InstanceId {
            job: JobName {
                system: system.to_owned(),
                job: job.to_owned(),
            },
            host: HostName(host.to_owned()),
        }
    }

    fn name(id: &InstanceId) -> String {
        let path = log_path(Path::new("/r"), id);
        path.strip_prefix("/r")
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn file_names_are_the_target_and_odd_names_are_escaped() {
        assert_eq!(name(&instance("web", "build", "n1")), "web.build@n1.log");
        assert_eq!(
            name(&instance("web", "build-2_x", "db.eu")),
            "web.build-2_x@db.eu.log"
        );
        assert_eq!(name(&instance("a.b", "c", "h")), "a%2Eb.c@h.log");
        assert_eq!(name(&instance("a", "b.c", "h")), "a.b%2Ec@h.log");
        assert_eq!(
            name(&instance("s", "j", "../../etc")),
            "s.j@..%2F..%2Fetc.log"
        );
        assert_eq!(name(&instance("s", "j", "a@b")), "s.j@a%40b.log");
        assert_eq!(name(&instance("s p", "é", "%")), "s%20p.%C3%A9@%25.log");
        assert_ne!(
            name(&instance("a b", "j", "h")),
            name(&instance("a_b", "j", "h"))
        );
        assert_eq!(logs_dir(Path::new("/p")), Path::new("/p/.zap/logs"));
    }

    fn write_records(path: &Path, from: u32, to: u32, tail: &str) {
        let mut text = String::new();
        for n in from..to {
            let line = LogLine {
                seq: 0,
                at: SystemTime::now(),
                origin: Origin::Stdout,
                step: Some(StepIndex(n % 2 + 1)),
                text: format!("line {n}"),
                split: false,
            };
            record::encode(&line, &mut text);
        }
        text.push_str(tail);
        fs::write(path, text).expect("write");
    }

    fn texts(lines: &[LogLine]) -> Vec<String> {
        lines.iter().map(|l| l.text.clone()).collect()
    }

    #[test]
    fn reads_rotated_files_oldest_first_with_a_step_filter() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = instance("web", "build", "n1");
        let path = log_path(dir.path(), &id);
        write_records(&rotated(&path, 2), 0, 3, "");
        write_records(&rotated(&path, 1), 3, 6, "");
        write_records(&path, 6, 9, "");
        // Not ours: another instance's files and look-alikes.
        write_records(&dir.path().join("web.build@n10.log"), 100, 101, "");
        write_records(&rotated(&path, 1).with_extension("1.bak"), 200, 201, "");
        write_records(&dir.path().join("web.build@n1.log.01"), 300, 301, "");

        let all = read_log(dir.path(), &id, None).expect("read");
        assert_eq!(
            texts(&all),
            (0..9).map(|n| format!("line {n}")).collect::<Vec<_>>()
        );
        assert!(all.iter().enumerate().all(|(i, l)| l.seq == i as u64));

        let step_two = read_log(dir.path(), &id, Some(StepIndex(2))).expect("read");
        assert_eq!(texts(&step_two), ["line 1", "line 3", "line 5", "line 7"]);
        assert_eq!(
            step_two.iter().map(|l| l.seq).collect::<Vec<_>>(),
            [1, 3, 5, 7]
        );
    }

    #[test]
    fn a_torn_last_line_and_foreign_lines_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = instance("s", "j", "h");
        let path = log_path(dir.path(), &id);
        write_records(&path, 0, 2, "2024-02-29T12:34:56.789Z out  1 | cut sh");
        let lines = read_log(dir.path(), &id, None).expect("read");
        assert_eq!(texts(&lines), ["line 0", "line 1"]);

        write_records(&path, 0, 2, "2024-02-2");
        assert_eq!(read_log(dir.path(), &id, None).expect("read").len(), 2);

        // A torn line in the middle, cut inside a character, then more.
        let mut bytes = b"not a record\n2024-02-29T12:34:56.789Z out  1 | caf\xc3".to_vec();
        bytes.extend(b"\n2024-02-29T12:34:56.789Z err  - | after\n");
        fs::write(&path, bytes).expect("write");
        let lines = read_log(dir.path(), &id, None).expect("read");
        assert_eq!(texts(&lines), ["caf\u{FFFD}", "after"]);
    }

    #[test]
    fn no_file_at_all_is_not_found_and_an_empty_file_is_no_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = instance("s", "j", "h");
        let missing = read_log(dir.path(), &id, None).map(|_| ());
        assert_eq!(missing.map_err(|e| e.kind()), Err(io::ErrorKind::NotFound));
        let nowhere = read_log(&dir.path().join("absent"), &id, None).map(|_| ());
        assert_eq!(nowhere.map_err(|e| e.kind()), Err(io::ErrorKind::NotFound));
        fs::write(log_path(dir.path(), &id), "").expect("write");
        assert_eq!(read_log(dir.path(), &id, None).expect("read"), []);
    }

    #[test]
    fn rotation_shifts_files_and_drops_the_oldest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.j@h.log");
        let content = |p: &Path| fs::read_to_string(p).unwrap_or_else(|_| "-".to_owned());
        for round in 0..5 {
            fs::write(&path, format!("{round}")).expect("write");
            rotate(&path, 3).expect("rotate");
        }
        assert_eq!(content(&path), "-");
        assert_eq!(content(&rotated(&path, 1)), "4");
        assert_eq!(content(&rotated(&path, 2)), "3");
        assert_eq!(content(&rotated(&path, 3)), "-");

        // Left from a larger `keep`: dropped at the next rotation.
        fs::write(rotated(&path, 9), "old").expect("write");
        fs::write(&path, "5").expect("write");
        rotate(&path, 3).expect("rotate");
        assert_eq!(content(&rotated(&path, 1)), "5");
        assert_eq!(content(&rotated(&path, 2)), "4");
        assert_eq!(content(&rotated(&path, 9)), "-");

        // Keeping one file: rotation starts afresh.
        fs::write(&path, "6").expect("write");
        rotate(&path, 1).expect("rotate");
        let left: Vec<_> = fs::read_dir(dir.path()).expect("list").collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
