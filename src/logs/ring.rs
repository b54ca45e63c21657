//! The last lines of one instance in memory, numbered so that a follower can
//! ask for what it has not seen yet.

use std::collections::VecDeque;

use super::LogLine;
use super::packed::{OpenBlock, SealedBlock};

/// How many lines an instance keeps in memory unless configured otherwise.
pub const DEFAULT_RING_LINES: usize = 6000;

/// Most lines in a block: bounds the lines past the capacity that the
/// oldest block may still hold, and what a reader unpacks to get one line.
const BLOCK_LINES: usize = 256;

/// A block is sealed at this many packed bytes even if it holds fewer
/// lines (long lines), so that the one open block stays small.
const BLOCK_BYTES: usize = 32 * 1024;

/// The last `capacity` lines of an instance, numbered from 0 in the order
/// pushed. Numbers are never reused, so `seq` tells a follower exactly what
/// it missed.
///
/// Lines are kept packed (see `packed`): the newest in an open block, the
/// rest in compressed blocks dropped whole once all their lines are older
/// than the last `capacity`. Reading unpacks a block at a time, so the
/// iterators hand out owned lines. Pushing is O(1) amortised; memory is the
/// packed text of at most `capacity` lines plus one block.
#[derive(Debug, Clone)]
pub struct Ring {
    /// Full blocks, oldest first, each with the number of its first line.
    sealed: VecDeque<(u64, SealedBlock)>,
    open: OpenBlock,
    /// The number of the open block's first line.
    open_first: u64,
    capacity: usize,
    block_lines: usize,
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
            sealed: VecDeque::new(),
            open: OpenBlock::default(),
            open_first: 0,
            capacity,
            // A sixteenth of the capacity, so that a small ring does not
            // hold many more lines than it shows.
            block_lines: (capacity / 16).clamp(1, BLOCK_LINES),
            next_seq: 0,
        }
    }

    /// Keeps `line` as the newest, numbered with the next `seq` (whatever
    /// `line.seq` held is replaced), dropping the oldest if full. Returns the
    /// line as kept, e.g. to hand to the [`LogWriter`](super::LogWriter).
    pub fn push(&mut self, mut line: LogLine) -> LogLine {
        line.seq = self.next_seq;
        self.open.push(&line);
        self.next_seq += 1;
        if self.open.lines() >= self.block_lines || self.open.len_bytes() >= BLOCK_BYTES {
            self.sealed.push_back((self.open_first, self.open.seal()));
            self.open_first = self.next_seq;
        }
        let dropped = self.dropped();
        while let Some((first, block)) = self.sealed.front() {
            if first + block.lines() as u64 > dropped {
                break;
            }
            self.sealed.pop_front();
        }
        line
    }

    /// The lines kept, oldest first.
    pub fn iter(&self) -> Lines<'_> {
        self.since(0)
    }

    /// The lines kept numbered `seq` or later, oldest first: a follower
    /// passes one more than the last number it saw. If lines it wanted have
    /// been dropped already, the first one returned has a larger number
    /// than `seq`.
    pub fn since(&self, seq: u64) -> Lines<'_> {
        Lines {
            ring: self,
            front: seq.clamp(self.dropped(), self.next_seq),
            back: self.next_seq,
            ahead: VecDeque::new(),
            behind: VecDeque::new(),
        }
    }

    /// How many lines were dropped off the front to make room: also the
    /// number of the oldest line kept.
    pub fn dropped(&self) -> u64 {
        self.next_seq - self.len() as u64
    }

    /// The number the next pushed line will get: how many were ever pushed.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn len(&self) -> usize {
        usize::try_from(self.next_seq).map_or(self.capacity, |pushed| pushed.min(self.capacity))
    }

    pub fn is_empty(&self) -> bool {
        self.next_seq == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The lines of the block holding line `seq`, which must be stored.
    fn block_of(&self, seq: u64) -> Vec<LogLine> {
        if seq >= self.open_first {
            return self.open.unpack(self.open_first);
        }
        let index = self.sealed.partition_point(|(first, _)| *first <= seq);
        match index
            .checked_sub(1)
            .and_then(|index| self.sealed.get(index))
        {
            Some((first, block)) => block.unpack(*first),
            None => Vec::new(),
        }
    }

    #[cfg(test)]
    fn heap_bytes(&self) -> usize {
        self.open.heap_bytes()
            + self.sealed.capacity() * std::mem::size_of::<(u64, SealedBlock)>()
            + self
                .sealed
                .iter()
                .map(|(_, block)| block.heap_bytes())
                .sum::<usize>()
    }
}

/// Lines of a [`Ring`] in order, unpacked a block at a time.
pub struct Lines<'a> {
    ring: &'a Ring,
    /// The next line to hand out from the front.
    front: u64,
    /// One past the next line to hand out from the back.
    back: u64,
    /// Unpacked lines from `front` on.
    ahead: VecDeque<LogLine>,
    /// Unpacked lines before `back`.
    behind: VecDeque<LogLine>,
}

impl Iterator for Lines<'_> {
    type Item = LogLine;

    fn next(&mut self) -> Option<LogLine> {
        if self.front >= self.back {
            return None;
        }
        if self.ahead.is_empty() {
            let front = self.front;
            self.ahead = self.ring.block_of(front).into();
            self.ahead.retain(|line| line.seq >= front);
        }
        let line = self.ahead.pop_front()?;
        self.front = line.seq + 1;
        Some(line)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.back.saturating_sub(self.front)).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl DoubleEndedIterator for Lines<'_> {
    fn next_back(&mut self) -> Option<LogLine> {
        if self.front >= self.back {
            return None;
        }
        if self.behind.is_empty() {
            let back = self.back;
            self.behind = self.ring.block_of(back - 1).into();
            self.behind.retain(|line| line.seq < back);
        }
        let line = self.behind.pop_back()?;
        self.back = line.seq;
        Some(line)
    }
}

impl ExactSizeIterator for Lines<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StepIndex;

    fn line(text: &str) -> LogLine {
        LogLine::zap(Some(StepIndex(1)), text)
    }

    fn texts(lines: impl Iterator<Item = LogLine>) -> Vec<(u64, String)> {
        lines.map(|l| (l.seq, l.text)).collect()
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
    fn a_full_ring_stays_within_its_lines_and_one_block() {
        let mut ring = Ring::new(DEFAULT_RING_LINES);
        let text = |n: u64| format!("{n:>8} {}", "output that does not repeat much ".repeat(2));
        let mut peak = 0;
        for n in 0..10 * DEFAULT_RING_LINES as u64 {
            ring.push(LogLine::zap(None, text(n)));
            peak = peak.max(ring.heap_bytes());
        }
        assert_eq!(ring.len(), DEFAULT_RING_LINES);
        // Not more than the text of the lines kept plus a block's worth,
        // however many went through.
        let kept_text = DEFAULT_RING_LINES * text(0).len();
        assert!(
            peak < kept_text + BLOCK_BYTES,
            "{peak} for {kept_text} bytes of text"
        );
        let seqs: Vec<u64> = ring.iter().map(|l| l.seq).collect();
        let last = 10 * DEFAULT_RING_LINES as u64;
        assert_eq!(
            seqs,
            (last - DEFAULT_RING_LINES as u64..last).collect::<Vec<_>>()
        );
        assert_eq!(ring.iter().next().map(|l| l.text), Some(text(last - 6000)));
    }

    #[test]
    fn lines_read_back_from_both_ends_across_blocks() {
        let mut ring = Ring::new(1000);
        for n in 0..2345 {
            ring.push(line(&n.to_string()));
        }
        let forward: Vec<u64> = ring.iter().map(|l| l.seq).collect();
        let mut backward: Vec<u64> = ring.iter().rev().map(|l| l.seq).collect();
        backward.reverse();
        assert_eq!(forward, backward);
        assert_eq!(forward, (1345..2345).collect::<Vec<_>>());
        // From both ends at once, meeting in the middle of a block.
        let mut lines = ring.since(2000);
        assert_eq!(lines.len(), 345);
        let mut seen = Vec::new();
        while let Some(front) = lines.next() {
            seen.push(front.seq);
            if let Some(back) = lines.next_back() {
                seen.push(back.seq);
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (2000..2345).collect::<Vec<_>>());
        // The newest 10 backwards, as a search upwards reads them.
        let last: Vec<String> = ring
            .iter()
            .take(1000)
            .rev()
            .take(2)
            .map(|l| l.text)
            .collect();
        assert_eq!(last, ["2344", "2343"]);
    }
}
