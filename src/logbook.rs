//! Every instance's recent output (a ring of lines in memory), its full
//! output on disk (`.zap/logs/`), and the `zap logs -f` clients following it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::Plan;
use crate::logs::{BATCH_LINES, DEFAULT_RING_LINES, LogLine, LogWriter, Ring};
use crate::model::{InstanceId, StepIndex};
use crate::supervisor::engine::Observer;
use crate::supervisor::state::{Change, State};
use crate::words::{self, Shown};

/// Whoever follows lines as they come (`zap logs -f`): it takes them without
/// ever making the supervisor wait.
pub trait LineFollower: Send {
    /// Takes `lines`, oldest first; `false` when the follower is gone or too
    /// slow, and is then forgotten.
    fn take(&self, lines: Vec<(InstanceId, LogLine)>) -> bool;
    /// Whether it is gone already.
    fn is_gone(&self) -> bool;
}

/// Shared by the supervisor loop (which adds lines) and the control
/// socket's handler (which reads and follows them). A std mutex: it is held
/// only to push or copy lines, never across an await.
#[derive(Clone)]
pub struct LogBook {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    rings: BTreeMap<InstanceId, Ring>,
    followers: Vec<Follower>,
    writer: Option<LogWriter>,
    /// Lines not yet handed to the writer, in order, grouped by instance:
    /// they go over in batches, when the supervisor is idle or enough
    /// wait, so a fast job costs the writer thread few wake-ups.
    unwritten: Vec<(InstanceId, Vec<LogLine>)>,
    unwritten_lines: usize,
}

struct Follower {
    ids: Vec<InstanceId>,
    step: Option<StepIndex>,
    to: Box<dyn LineFollower>,
}

impl LogBook {
    /// Rings for `ids`, each as long as its job's `log_lines` in `plan`.
    pub fn new(plan: &Plan, ids: &[InstanceId], writer: Option<LogWriter>) -> Self {
        let rings = ids
            .iter()
            .map(|id| {
                let lines = plan
                    .job(&id.job)
                    .map_or(DEFAULT_RING_LINES, |job| job.log_lines);
                (id.clone(), Ring::new(lines))
            })
            .collect();
        LogBook {
            inner: Arc::new(Mutex::new(Inner {
                rings,
                followers: Vec::new(),
                writer,
                unwritten: Vec::new(),
                unwritten_lines: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding it leaves whole lines behind: use it anyway.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps `line` of instance `id` and passes it to its followers; it goes
    /// to disk with the next batch.
    pub fn push(&self, id: &InstanceId, line: LogLine) {
        let batch_full = {
            let mut inner = self.lock();
            let Some(ring) = inner.rings.get_mut(id) else {
                return;
            };
            let line = ring.push(line);
            if !inner.followers.is_empty() {
                inner.followers.retain(|follower| {
                    if !follower.ids.contains(id)
                        || follower.step.is_some_and(|step| line.step != Some(step))
                    {
                        return !follower.to.is_gone();
                    }
                    follower.to.take(vec![(id.clone(), line.clone())])
                });
            }
            if inner.writer.is_some() {
                match inner.unwritten.last_mut() {
                    Some((last, lines)) if last == id => lines.push(line),
                    _ => inner.unwritten.push((id.clone(), vec![line])),
                }
                inner.unwritten_lines += 1;
            }
            inner.unwritten_lines >= BATCH_LINES
        };
        if batch_full {
            self.hand_over();
        }
    }

    /// Hands the lines not yet written to the writer.
    fn hand_over(&self) {
        let (writer, unwritten) = {
            let mut inner = self.lock();
            inner.unwritten_lines = 0;
            (inner.writer.clone(), std::mem::take(&mut inner.unwritten))
        };
        // Outside the lock: a full disk queue makes `append_all` wait, and
        // the control socket's handler must not wait with it.
        if let Some(writer) = writer {
            for (id, lines) in unwritten {
                writer.append_all(&id, lines);
            }
        }
    }

    /// Gives the kept lines of `ids` (of one step, if given) to `to`; with
    /// `follow`, also every later line until it goes away.
    pub fn serve(
        &self,
        ids: Vec<InstanceId>,
        step: Option<StepIndex>,
        follow: bool,
        to: Box<dyn LineFollower>,
    ) {
        let mut inner = self.lock();
        let mut backlog: Vec<(InstanceId, LogLine)> = Vec::new();
        for id in &ids {
            if let Some(ring) = inner.rings.get(id) {
                backlog.extend(
                    ring.iter()
                        .filter(|line| step.is_none() || line.step == step)
                        .map(|line| (id.clone(), line)),
                );
            }
        }
        // Several instances' lines, interleaved by time as they happened.
        backlog.sort_by_key(|(_, line)| line.at);
        let sent = to.take(backlog);
        if follow && sent {
            inner.followers.push(Follower { ids, step, to });
        }
    }

    /// Calls `read` with the kept lines of `id` (None if zap does not run it).
    /// Keep `read` short: the supervisor waits for the lock meanwhile.
    pub fn with_ring<R>(&self, id: &InstanceId, read: impl FnOnce(&Ring) -> R) -> Option<R> {
        self.lock().rings.get(id).map(read)
    }

    /// Flushes the files and stops the writer.
    pub fn close(&self) -> Vec<String> {
        self.hand_over();
        let writer = self.lock().writer.take();
        let Some(writer) = writer else {
            return Vec::new();
        };
        let missed = writer.missed_ever();
        let mut errors: Vec<String> = writer
            .flush_and_stop()
            .iter()
            .map(ToString::to_string)
            .collect();
        if missed > 0 {
            errors.push(format!(
                "{missed} lines of output were not written to the logs: the disk did not keep up \
                 (each log file says where they were)"
            ));
        }
        errors
    }
}

/// Records each job's output and zap's lines about it.
impl Observer for LogBook {
    fn changes(&mut self, state: &State, changes: &[Change<'_>]) {
        let now = std::time::Instant::now();
        words::each_line(state, changes, now, |instance, shown| {
            let line = match shown {
                Shown::Output {
                    stream,
                    step,
                    text,
                    cut,
                } => LogLine::output(stream, step, text.to_string(), cut),
                Shown::Said { step, text } => LogLine::zap(step, text),
            };
            self.push(&instance.id, line);
        });
    }

    fn idle(&mut self) {
        self.hand_over();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, SourceFile};
    use crate::model::{HostName, JobName};

    #[test]
    fn each_job_keeps_as_many_lines_as_its_log_lines_says() {
        let sources = [SourceFile::new(
            "jobs/web.toml",
            "[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\nlog_lines = 3\n\
             [jobs.b]\nhost = \"local\"\nsteps = [\"x\"]\n",
        )];
        let plan = config::load_sources(std::path::Path::new("/nowhere"), &sources).expect("valid");
        let id = |job: &str| InstanceId {
            job: JobName {
                system: "web".into(),
                job: job.into(),
            },
            host: HostName("local".into()),
        };
        let book = LogBook::new(&plan, &[id("a"), id("b")], None);
        for n in 0..5 {
            book.push(&id("a"), LogLine::zap(None, format!("line {n}")));
        }
        let kept = book
            .with_ring(&id("a"), |ring| {
                ring.iter()
                    .map(|line| line.text.clone())
                    .collect::<Vec<_>>()
            })
            .expect("a ring");
        assert_eq!(kept, ["line 2", "line 3", "line 4"]);
        assert_eq!(
            book.with_ring(&id("b"), |ring| ring.capacity()),
            Some(DEFAULT_RING_LINES)
        );
    }
}
