//! What happened since the last frame, as the supervisor loop tells it: a
//! dirty flag, line counts per instance (for the unseen marks), jobs that
//! just failed and zap's notes. The loop's side ([`UiObserver`]) only counts
//! and flags, O(1) per event, so ten jobs printing 20k lines a second each
//! cost it a few atomic adds; the UI task reads the news when it draws.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::Notify;

use crate::model::{InstanceId, Stream};
use crate::supervisor::engine::Observer;
use crate::supervisor::{Change, State, What};
use crate::words;

/// How many notes and failures are kept for the screen.
const KEPT: usize = 20;

/// Shared by the loop's observer and the UI task.
pub struct News {
    dirty: AtomicBool,
    wake: Notify,
    /// Per instance, in the order of `ids`: stdout and stderr lines so far.
    lines: Vec<[AtomicU64; 2]>,
    index: HashMap<InstanceId, usize>,
    /// Rare things, behind a std mutex held only to push or copy.
    rare: Mutex<Rare>,
}

#[derive(Default)]
struct Rare {
    failures: VecDeque<Failure>,
    notes: VecDeque<(Instant, String)>,
}

/// A job instance that just failed, for the strip above a job's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub id: InstanceId,
    pub at: Instant,
    /// "failed at step 2: exit 1", from the state at that moment.
    pub what: String,
}

impl News {
    pub fn new(ids: &[InstanceId]) -> Arc<News> {
        Arc::new(News {
            dirty: AtomicBool::new(true),
            wake: Notify::new(),
            lines: ids
                .iter()
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
            index: ids
                .iter()
                .enumerate()
                .map(|(position, id)| (id.clone(), position))
                .collect(),
            rare: Mutex::new(Rare::default()),
        })
    }

    fn rare(&self) -> MutexGuard<'_, Rare> {
        // Whoever panicked held it only to push: what is there is whole.
        self.rare
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Something changed: draw again (wakes the UI task once per frame).
    pub fn mark_dirty(&self) {
        if !self.dirty.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Clears the flag; true if it was set.
    pub fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::AcqRel)
    }

    /// Waits for [`News::mark_dirty`].
    pub async fn changed(&self) {
        self.wake.notified().await;
    }

    /// Stdout and stderr lines of `id` so far.
    pub fn lines(&self, id: &InstanceId) -> (u64, u64) {
        self.index.get(id).map_or((0, 0), |&position| {
            let [out, err] = &self.lines[position];
            (out.load(Ordering::Relaxed), err.load(Ordering::Relaxed))
        })
    }

    fn count_line(&self, id: &InstanceId, stderr: bool) {
        if let Some(&position) = self.index.get(id) {
            self.lines[position][usize::from(stderr)].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn push_note(&self, text: &str, at: Instant) {
        let mut rare = self.rare();
        if rare.notes.len() == KEPT {
            rare.notes.pop_front();
        }
        rare.notes.push_back((at, text.to_string()));
        drop(rare);
        self.mark_dirty();
    }

    pub fn push_failure(&self, failure: Failure) {
        let mut rare = self.rare();
        rare.failures.retain(|old| old.id != failure.id);
        if rare.failures.len() == KEPT {
            rare.failures.pop_front();
        }
        rare.failures.push_back(failure);
    }

    /// Failures since `since`, newest first.
    pub fn failures_since(&self, since: Instant) -> Vec<Failure> {
        self.rare()
            .failures
            .iter()
            .rev()
            .filter(|failure| failure.at >= since)
            .cloned()
            .collect()
    }

    /// zap's notes, oldest first.
    pub fn notes(&self) -> Vec<(Instant, String)> {
        self.rare().notes.iter().cloned().collect()
    }
}

/// The supervisor loop's side of the news: counts lines, notes failures,
/// flags a redraw. It never draws.
pub struct UiObserver {
    news: Arc<News>,
}

impl UiObserver {
    pub fn new(news: Arc<News>) -> UiObserver {
        UiObserver { news }
    }
}

impl Observer for UiObserver {
    fn changes(&mut self, state: &State, changes: &[Change<'_>]) {
        for change in changes {
            let Some(instance) = state.instances().get(change.instance) else {
                continue;
            };
            match &change.what {
                What::Output { stream, .. } => {
                    self.news
                        .count_line(&instance.id, *stream == Stream::Stderr);
                }
                What::Phase { to, .. } => {
                    if let Some(what) = words::trouble(instance, to) {
                        self.news.push_failure(Failure {
                            id: instance.id.clone(),
                            at: Instant::now(),
                            what,
                        });
                    }
                }
                _ => {}
            }
        }
        self.news.mark_dirty();
    }

    fn polled(&mut self, _state: &State) {
        self.news.mark_dirty();
    }

    fn note(&mut self, text: &str) {
        self.news.push_note(text, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HostName, JobName};

    fn id(job: &str) -> InstanceId {
        InstanceId {
            job: JobName {
                system: "web".into(),
                job: job.into(),
            },
            host: HostName("local".into()),
        }
    }

    #[test]
    fn the_dirty_flag_wakes_once_and_is_taken_once() {
        let news = News::new(&[id("a")]);
        assert!(news.take_dirty(), "the first frame is always due");
        assert!(!news.take_dirty());
        news.mark_dirty();
        news.mark_dirty();
        assert!(news.take_dirty());
        assert!(!news.take_dirty());
    }

    #[test]
    fn lines_are_counted_per_instance_and_stream() {
        let news = News::new(&[id("a"), id("b")]);
        news.count_line(&id("a"), false);
        news.count_line(&id("a"), true);
        news.count_line(&id("a"), false);
        news.count_line(&id("zzz"), false);
        assert_eq!(news.lines(&id("a")), (2, 1));
        assert_eq!(news.lines(&id("b")), (0, 0));
    }

    #[test]
    fn failures_keep_the_newest_per_instance() {
        let news = News::new(&[id("a")]);
        let t0 = Instant::now();
        for n in 0..3 {
            news.push_failure(Failure {
                id: id("a"),
                at: t0,
                what: format!("failed {n}"),
            });
        }
        let failures = news.failures_since(t0);
        assert_eq!(failures.len(), 1);
        assert_eq!(failures[0].what, "failed 2");
    }
}
