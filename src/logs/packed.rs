//! Lines packed into bytes for the [`Ring`](super::Ring): a block of
//! records, each a few bytes of header before the text, LZ4-compressed once
//! the block is full.
//!
//! A `LogLine` held as a struct costs its text's allocation plus some 100
//! bytes of struct, allocator overhead and deque slot; 200 jobs × 6000 lines
//! made that the bulk of zap's memory. Packed, a line costs its text plus
//! about 5 bytes, and a full block far less once compressed: job output
//! repeats itself.
//!
//! A record: the time as a zigzag varint of nanoseconds since the previous
//! record's (since the epoch for a block's first), a flags byte (origin,
//! split, whether a step follows), the step as a varint, the text's length
//! as a varint, then the text.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{LogLine, Origin};
use crate::model::StepIndex;

const SPLIT: u8 = 0b100;
const HAS_STEP: u8 = 0b1000;

/// Records being appended, with the time of the last one for the next's
/// delta.
#[derive(Debug, Clone, Default)]
pub struct OpenBlock {
    bytes: Vec<u8>,
    lines: usize,
    last_at: i128,
}

impl OpenBlock {
    pub fn push(&mut self, line: &LogLine) {
        let at = nanos(line.at);
        put_varint(&mut self.bytes, zigzag(at - self.last_at));
        self.last_at = at;
        let origin = match line.origin {
            Origin::Stdout => 0,
            Origin::Stderr => 1,
            Origin::Zap => 2,
        };
        let flags = origin
            | if line.split { SPLIT } else { 0 }
            | if line.step.is_some() { HAS_STEP } else { 0 };
        self.bytes.push(flags);
        if let Some(step) = line.step {
            put_varint(&mut self.bytes, u128::from(step.0));
        }
        put_varint(&mut self.bytes, line.text.len() as u128);
        self.bytes.extend_from_slice(line.text.as_bytes());
        self.lines += 1;
    }

    pub fn lines(&self) -> usize {
        self.lines
    }

    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The lines, numbered from `first_seq`.
    pub fn unpack(&self, first_seq: u64) -> Vec<LogLine> {
        unpack(&self.bytes, first_seq)
    }

    /// Compresses the records into a sealed block and starts afresh,
    /// keeping the space for the next block.
    pub fn seal(&mut self) -> SealedBlock {
        let sealed = SealedBlock {
            lines: self.lines,
            compressed: lz4_flex::block::compress_prepend_size(&self.bytes).into_boxed_slice(),
        };
        self.bytes.clear();
        self.lines = 0;
        self.last_at = 0;
        sealed
    }

    /// Bytes held, counting unused space.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }
}

/// A full block, compressed; sized exactly.
#[derive(Debug, Clone)]
pub struct SealedBlock {
    lines: usize,
    compressed: Box<[u8]>,
}

impl SealedBlock {
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// The lines, numbered from `first_seq`. Empty only if the block was
    /// damaged in memory, which the compression format would notice.
    pub fn unpack(&self, first_seq: u64) -> Vec<LogLine> {
        lz4_flex::block::decompress_size_prepended(&self.compressed)
            .map(|bytes| unpack(&bytes, first_seq))
            .unwrap_or_default()
    }

    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.compressed.len()
    }
}

fn unpack(mut bytes: &[u8], first_seq: u64) -> Vec<LogLine> {
    let mut lines = Vec::new();
    let mut at = 0i128;
    let mut seq = first_seq;
    while !bytes.is_empty() {
        let Some(line) = take_record(&mut bytes, &mut at, seq) else {
            break;
        };
        lines.push(line);
        seq += 1;
    }
    lines
}

fn take_record(bytes: &mut &[u8], at: &mut i128, seq: u64) -> Option<LogLine> {
    *at += unzigzag(take_varint(bytes)?);
    let (&flags, rest) = bytes.split_first()?;
    *bytes = rest;
    let origin = match flags & 0b11 {
        0 => Origin::Stdout,
        1 => Origin::Stderr,
        _ => Origin::Zap,
    };
    let step = if flags & HAS_STEP != 0 {
        Some(StepIndex(u32::try_from(take_varint(bytes)?).ok()?))
    } else {
        None
    };
    let len = usize::try_from(take_varint(bytes)?).ok()?;
    let text = bytes.get(..len)?;
    *bytes = &bytes[len..];
    Some(LogLine {
        seq,
        at: from_nanos(*at),
        origin,
        step,
        // Packed from a String, so valid UTF-8.
        text: String::from_utf8_lossy(text).into_owned(),
        split: flags & SPLIT != 0,
    })
}

/// Nanoseconds since the epoch, negative before it: exact both ways.
fn nanos(at: SystemTime) -> i128 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    }
}

fn from_nanos(nanos: i128) -> SystemTime {
    let magnitude = nanos.unsigned_abs();
    let duration = Duration::new(
        u64::try_from(magnitude / 1_000_000_000).unwrap_or(u64::MAX),
        (magnitude % 1_000_000_000) as u32,
    );
    if nanos >= 0 {
        UNIX_EPOCH + duration
    } else {
        UNIX_EPOCH - duration
    }
}

fn zigzag(value: i128) -> u128 {
    ((value << 1) ^ (value >> 127)) as u128
}

fn unzigzag(value: u128) -> i128 {
    ((value >> 1) as i128) ^ -((value & 1) as i128)
}

fn put_varint(out: &mut Vec<u8>, mut value: u128) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u128> {
    let mut value = 0u128;
    for shift in (0..128).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u128::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Vec<LogLine> {
        let base = UNIX_EPOCH + Duration::new(1_709_210_096, 789_123_456);
        vec![
            LogLine {
                seq: 0,
                at: base,
                origin: Origin::Stdout,
                step: Some(StepIndex(2)),
                text: "Compiling zap v0.1.0".into(),
                split: false,
            },
            LogLine {
                seq: 1,
                // A clock stepped back, and a wide step number.
                at: base - Duration::from_millis(1500),
                origin: Origin::Stderr,
                step: Some(StepIndex(u32::MAX)),
                text: "é ␤ \u{0} and a long tail ".repeat(500),
                split: true,
            },
            LogLine {
                seq: 2,
                at: UNIX_EPOCH - Duration::new(5, 7),
                origin: Origin::Zap,
                step: None,
                text: String::new(),
                split: false,
            },
        ]
    }

    #[test]
    fn lines_come_back_exactly_open_and_sealed() {
        let mut block = OpenBlock::default();
        for line in lines() {
            block.push(&line);
        }
        assert_eq!(block.lines(), 3);
        assert_eq!(block.unpack(0), lines());
        let sealed = block.seal();
        assert_eq!(sealed.lines(), 3);
        assert_eq!(sealed.unpack(0), lines());
        assert_eq!(block.lines(), 0);
        assert!(block.unpack(7).is_empty());
        // After a seal, times are again relative to the epoch.
        block.push(&lines()[2]);
        let again = block.unpack(9);
        assert_eq!(again[0].seq, 9);
        assert_eq!(again[0].at, lines()[2].at);
    }

    #[test]
    fn repetitive_output_packs_small() {
        let mut block = OpenBlock::default();
        for n in 0..200 {
            let mut line = lines()[0].clone();
            line.text = format!("line {n} of 7000 {}", "x".repeat(40));
            block.push(&line);
        }
        let raw = block.len_bytes();
        assert!(raw < 200 * 70, "{raw}");
        let sealed = block.seal();
        assert!(
            sealed.heap_bytes() * 3 < raw,
            "{} of {raw}",
            sealed.heap_bytes()
        );
    }
}
