//! The last lines of one instance in memory, numbered so that a follower can
//! ask for what it has not seen yet.

use std::collections::VecDeque;
use std::collections::vec_deque::Iter;

use super::LogLine;

/// How many lines an instance keeps in memory unless configured otherwise.
pub const DEFAULT_RING_LINES: usize = 6000;

/// The space grown into at first: most instances print far fewer lines than
/// the capacity, and a full ring of a few hundred instances would cost
/// megabytes up front.
const INITIAL_SPACE: usize = 64;

/// The last `capacity` lines of an instance, numbered from 0 in the order
/// pushed. Numbers are never reused, so `seq` tells a follower exactly what
/// it missed.
///
/// Pushing is O(1): once the ring is full, each push drops the oldest line
/// and the storage is not reallocated again; the only allocation per line is
/// the line's own text.
#[derive(Debug, Clone)]
pub struct Ring {
    lines: VecDeque<LogLine>,
    capacity: usize,
    next_seq: u64,
}

impl Default for Ring {
    fn default() -> Ring {
        Ring::new(DEFAULT_RING_LINES)
    }
}

impl Ring {
    /// A ring keeping the last `capacity` lines, at least one.
    pub fn new(capacity: usize) -> Ring {
        let capacity = capacity.max(1);
        Ring {
            lines: VecDeque::with_capacity(capacity.min(INITIAL_SPACE)),
            capacity,
            next_seq: 0,
        }
    }

    /// Keeps `line` as the newest, numbered with the next `seq` (whatever
    /// `line.seq` held is replaced), dropping the oldest if full. Returns the
    /// line as kept, e.g. to hand a copy to the
    /// [`LogWriter`](super::LogWriter).
    pub fn push(&mut self, mut line: LogLine) -> &LogLine {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
        }
        line.seq = self.next_seq;
        self.next_seq += 1;
        self.lines.push_back(line);
        // In bounds: a line was pushed just above.
        &self.lines[self.lines.len() - 1]
    }

    /// The lines kept, oldest first.
    pub fn iter(&self) -> Iter<'_, LogLine> {
        self.lines.iter()
    }

    /// The lines kept numbered `seq` or later, oldest first: a follower
    /// passes one more than the last number it saw. If lines it wanted have
    /// been dropped already, the first one returned has a larger number
    /// than `seq`.
    pub fn since(&self, seq: u64) -> Iter<'_, LogLine> {
        let skip = seq.saturating_sub(self.dropped());
        let skip = usize::try_from(skip).map_or(self.lines.len(), |s| s.min(self.lines.len()));
        self.lines.range(skip..)
    }

    /// How many lines were dropped off the front to make room: also the
    /// number of the oldest line kept.
    pub fn dropped(&self) -> u64 {
        self.next_seq - self.lines.len() as u64
    }

    /// The number the next pushed line will get: how many were ever pushed.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StepIndex;

    fn line(text: &str) -> LogLine {
        LogLine::zap(Some(StepIndex(1)), text)
    }

    fn texts<'a>(lines: impl Iterator<Item = &'a LogLine>) -> Vec<(u64, String)> {
        lines.map(|l| (l.seq, l.text.clone())).collect()
    }

    #[test]
    fn keeps_the_last_lines_numbered_in_order() {
        let mut ring = Ring::new(3);
        assert!(ring.is_empty());
        assert_eq!(ring.since(0).count(), 0);
        for n in 0..5 {
            let kept = ring.push(line(&format!("l{n}")));
            assert_eq!(kept.seq, n);
        }
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.capacity(), 3);
        assert_eq!(ring.dropped(), 2);
        assert_eq!(ring.next_seq(), 5);
        assert_eq!(
            texts(ring.iter()),
            [(2, "l2".into()), (3, "l3".into()), (4, "l4".into())]
        );
    }

    #[test]
    fn since_gives_what_a_follower_has_not_seen() {
        let mut ring = Ring::new(4);
        for n in 0..10 {
            ring.push(line(&n.to_string()));
        }
        // Kept: 6..=9.
        assert_eq!(texts(ring.since(8)), [(8, "8".into()), (9, "9".into())]);
        assert_eq!(ring.since(10).count(), 0);
        assert_eq!(ring.since(u64::MAX).count(), 0);
        // Asked for dropped lines: everything kept, and the gap shows.
        let from_start: Vec<_> = ring.since(0).map(|l| l.seq).collect();
        assert_eq!(from_start, [6, 7, 8, 9]);
        assert_eq!(ring.since(6).count(), 4);

        // A follower catching up push by push sees every line once.
        let mut follower = ring.next_seq();
        let mut seen = Vec::new();
        for n in 10..30 {
            ring.push(line(&n.to_string()));
            if n % 3 == 0 {
                for l in ring.since(follower) {
                    seen.push(l.seq);
                    follower = l.seq + 1;
                }
            }
        }
        for l in ring.since(follower) {
            seen.push(l.seq);
        }
        assert_eq!(seen, (10..30).collect::<Vec<_>>());
    }

    #[test]
    fn default_and_degenerate_capacities() {
        assert_eq!(Ring::default().capacity(), DEFAULT_RING_LINES);
        let mut ring = Ring::new(0);
        ring.push(line("a"));
        ring.push(line("b"));
        assert_eq!(texts(ring.iter()), [(1, "b".into())]);
        assert_eq!(ring.dropped(), 1);
    }

    #[test]
    fn a_full_ring_does_not_grow() {
        let mut ring = Ring::new(100);
        for n in 0..100 {
            ring.push(line(&n.to_string()));
        }
        let space = ring.lines.capacity();
        for n in 0..10_000 {
            ring.push(line(&n.to_string()));
        }
        assert_eq!(ring.lines.capacity(), space);
        assert_eq!(ring.len(), 100);
        assert_eq!(ring.dropped(), 10_000);
    }
}
