//! `.zap/state`: what this zap started, written as it goes (one JSON line per
//! start and end), so that after a zap that was killed (`kill -9`, a crash,
//! a closed laptop) the next `zap up` knows which process groups to stop,
//! and by which marker to find what the jobs started outside them.
//! The records are tiny and rare (one per job start or end), so they are
//! written straight from the supervisor loop.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::leftovers::instance_marker;
use super::observer::Observer;
use super::state::{self, State, What};
use crate::config::StopScope;
use crate::model::{HostName, InstanceId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Entry {
    Started,
    Ended,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    change: Entry,
    run: String,
    instance: String,
    host: String,
    pid: u32,
    pgid: u32,
    /// The run's `ZAP_INSTANCE` marker, when stopping the job reaches every
    /// process it started (`stop.scope = "tree"`); older lines lack it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    marker: Option<String>,
}

/// A job's process group an earlier zap started and never saw end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub run: String,
    pub instance: String,
    pub host: HostName,
    pub pid: u32,
    pub pgid: u32,
    /// What marks every process the job started, when they are to be
    /// stopped with it.
    pub marker: Option<String>,
}

pub struct Ledger {
    path: PathBuf,
    file: File,
    run: String,
    /// Shells recorded as started and not yet as gone.
    open: usize,
    /// Records of earlier runs that could not be cleaned up yet.
    carried: usize,
    /// The first write error, reported once.
    failed: bool,
}

impl Ledger {
    /// What the ledger at `path` says is still running (started, never
    /// ended). A missing file means nothing is; torn lines are skipped.
    pub fn leftovers(path: &Path) -> io::Result<Vec<Leftover>> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(error),
        };
        let mut open: BTreeMap<(String, String, u32), Leftover> = BTreeMap::new();
        for line in BufReader::new(file).lines() {
            let Ok(record) = serde_json::from_str::<Record>(&line?) else {
                continue;
            };
            let key = (record.run.clone(), record.instance.clone(), record.pgid);
            match record.change {
                Entry::Started => {
                    open.insert(
                        key,
                        Leftover {
                            run: record.run,
                            instance: record.instance,
                            host: HostName(record.host),
                            pid: record.pid,
                            pgid: record.pgid,
                            marker: record.marker,
                        },
                    );
                }
                Entry::Ended => {
                    open.remove(&key);
                }
            }
        }
        Ok(open.into_values().collect())
    }

    /// Starts a new ledger for run `run` at `path`, keeping the records of
    /// `carried` (leftovers that could not be cleaned up yet).
    pub fn create(path: &Path, run: &str, carried: &[Leftover]) -> io::Result<Ledger> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)?;
        let mut ledger = Ledger {
            path: path.to_path_buf(),
            file,
            run: run.to_string(),
            open: 0,
            carried: carried.len(),
            failed: false,
        };
        for leftover in carried {
            ledger.write(&Record {
                change: Entry::Started,
                run: leftover.run.clone(),
                instance: leftover.instance.clone(),
                host: leftover.host.0.clone(),
                pid: leftover.pid,
                pgid: leftover.pgid,
                marker: leftover.marker.clone(),
            });
        }
        Ok(ledger)
    }

    /// Removes the file when there is nothing left to remember.
    pub fn remove(self) -> io::Result<()> {
        if self.open == 0 && self.carried == 0 {
            std::fs::remove_file(&self.path)
        } else {
            Ok(())
        }
    }

    fn record(
        &mut self,
        change: Entry,
        id: &InstanceId,
        pid: u32,
        pgid: u32,
        marker: Option<String>,
    ) {
        let record = Record {
            change,
            run: self.run.clone(),
            instance: id.to_string(),
            host: id.host.0.clone(),
            pid,
            pgid,
            marker,
        };
        self.write(&record);
    }

    /// An earlier run's leftover was dealt with: the next zap need not.
    fn settle(&mut self, leftover: &Leftover) {
        self.carried = self.carried.saturating_sub(1);
        self.write(&Record {
            change: Entry::Ended,
            run: leftover.run.clone(),
            instance: leftover.instance.clone(),
            host: leftover.host.0.clone(),
            pid: leftover.pid,
            pgid: leftover.pgid,
            marker: None,
        });
    }

    fn write(&mut self, record: &Record) {
        let Ok(mut line) = serde_json::to_string(record) else {
            return;
        };
        line.push('\n');
        // Each record goes out whole and at once: a zap killed right after
        // still leaves it on disk.
        if let Err(error) = self.file.write_all(line.as_bytes())
            && !self.failed
        {
            self.failed = true;
            eprintln!(
                "zap: cannot write {}: {error}; a killed zap could leave jobs running",
                self.path.display()
            );
        }
    }
}

impl Observer for Ledger {
    fn changes(&mut self, state: &State, changes: &[state::Change<'_>]) {
        for change in changes {
            // A lost host may still run the job: the state says its shell is
            // gone only once the host is back and what it left was stopped.
            let (record, pid, pgid) = match change.what {
                What::Spawned { pid, pgid, .. } => (Entry::Started, pid, pgid),
                What::ShellGone { pid, pgid } => (Entry::Ended, pid, pgid),
                _ => continue,
            };
            let Some(instance) = state.instances().get(change.instance) else {
                continue;
            };
            match record {
                Entry::Started => self.open += 1,
                Entry::Ended => self.open = self.open.saturating_sub(1),
            }
            let marker = (record == Entry::Started && instance.job().stop.scope == StopScope::Tree)
                .then(|| instance_marker(&self.run, &instance.id, instance.generation));
            self.record(record, &instance.id, pid, pgid, marker);
        }
    }

    fn leftover_settled(&mut self, leftover: &Leftover) {
        self.settle(leftover);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::JobName;

    fn id(job: &str, host: &str) -> InstanceId {
        InstanceId {
            job: JobName {
                system: "web".into(),
                job: job.into(),
            },
            host: HostName(host.into()),
        }
    }

    #[test]
    fn what_started_and_never_ended_is_a_leftover() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(".zap/state");
        let mut ledger = Ledger::create(&path, "run1", &[]).expect("create");
        ledger.record(Entry::Started, &id("a", "n1"), 10, 10, None);
        ledger.record(Entry::Started, &id("b", "n2"), 20, 20, None);
        ledger.record(Entry::Ended, &id("a", "n1"), 10, 10, None);
        // A restart of b: a new group, the old one ended.
        ledger.record(Entry::Ended, &id("b", "n2"), 20, 20, None);
        ledger.record(
            Entry::Started,
            &id("b", "n2"),
            21,
            21,
            Some("run1-b-2".into()),
        );
        drop(ledger);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(b"{\"change\":\"start"))
            .expect("a torn last line");
        let leftovers = Ledger::leftovers(&path).expect("read");
        assert_eq!(
            leftovers,
            [Leftover {
                run: "run1".into(),
                instance: "web.b@n2".into(),
                host: HostName("n2".into()),
                pid: 21,
                pgid: 21,
                marker: Some("run1-b-2".into()),
            }]
        );
        let carried = Ledger::create(&path, "run2", &leftovers).expect("create");
        drop(carried);
        assert_eq!(
            Ledger::leftovers(&path).expect("read"),
            leftovers,
            "carried over"
        );
        // Once dealt with, a carried leftover is no longer one.
        let mut settling = Ledger::create(&path, "run3", &leftovers).expect("create");
        settling.settle(&leftovers[0]);
        assert!(Ledger::leftovers(&path).expect("read").is_empty());
        settling.remove().expect("nothing left: the file goes");
        assert!(!path.exists());
        assert!(
            Ledger::leftovers(&dir.path().join("none"))
                .expect("missing")
                .is_empty()
        );
    }
}
