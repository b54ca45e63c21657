//! Turning a job shell's raw output into lines, markers and step exits.
//!
//! The transport hands over [`Chunk`]s cut wherever the pipe or the SSH
//! channel cut them; the [`Decoder`] keeps one line buffer per stream, finds
//! the wrapper's markers (see `script`) anywhere in a line and at any chunk
//! boundary, and emits [`JobEvent`]s. It never fails: whatever bytes come,
//! they become lines.

use std::collections::VecDeque;

use crate::model::{ExitInfo, StepIndex, Stream};
use crate::transport::Chunk;
use crate::transport::script::{MARKER_BODY_MAX, Marker, Nonce};

/// The longest piece of a line emitted at once. Longer lines come in pieces
/// marked [`LineCut::Split`], so a job printing megabytes without a newline
/// holds zap's memory at about this much per stream.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// What a job's output says, in order. `Ended` is always the last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobEvent {
    /// The job's shell is running with this PID, in this process group.
    Spawned {
        pid: u32,
        pgid: u32,
    },
    StepStarted {
        step: StepIndex,
    },
    /// A line (or a piece of one) of output. `step` is the step whose start
    /// this stream last reported; `None` before the first step.
    Line {
        stream: Stream,
        step: Option<StepIndex>,
        text: String,
        cut: LineCut,
    },
    StepExited {
        step: StepIndex,
        code: i32,
    },
    /// The shell is gone. If a step started and never exited, the shell
    /// ended during it (`exit`, a signal, a fatal syntax error): the
    /// consumer attributes this exit to that step.
    Ended {
        exit: ExitInfo,
    },
}

/// How a [`JobEvent::Line`]'s text ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineCut {
    /// With a newline (not included in the text, nor a `\r` before it).
    Whole,
    /// Without a newline: the output ended, or a marker followed.
    NoNewline,
    /// A piece of a line longer than [`MAX_LINE_BYTES`]; more of the same
    /// line follows, and its last piece is `Whole` or `NoNewline`.
    Split,
}

/// Decodes one run of one job instance. Build it with the run's nonce, feed
/// it every chunk in order.
///
/// Text is decoded as UTF-8, with invalid bytes and NUL bytes shown as
/// U+FFFD: a NUL is never meant as text, and it would cut the line short in
/// a terminal or a C-string consumer.
#[derive(Debug)]
pub struct Decoder {
    prefix: Vec<u8>,
    stdout: LineBuffer,
    stderr: LineBuffer,
    /// Stderr lines of a step that stdout has not announced yet. The two
    /// pipes are read independently, so stderr can run ahead; holding its
    /// lines back until stdout's start marker keeps the shown order true.
    held: VecDeque<JobEvent>,
    ended: bool,
}

/// How many stderr lines may wait for stdout to catch up before they are
/// shown anyway: bounded, since stdout may be slowed or silent.
const MAX_HELD_LINES: usize = 256;

impl Decoder {
    pub fn new(nonce: Nonce) -> Decoder {
        Decoder {
            prefix: nonce.marker_prefix(),
            stdout: LineBuffer::new(Stream::Stdout),
            stderr: LineBuffer::new(Stream::Stderr),
            held: VecDeque::new(),
            ended: false,
        }
    }

    /// Appends the events `chunk` completes to `out`. Chunks after `Exit` are
    /// ignored. `Lost` ends the output like an exit nobody reported
    /// (`ExitInfo::Unknown`); the consumer, which saw the chunk, says why.
    pub fn feed(&mut self, chunk: Chunk, out: &mut Vec<JobEvent>) {
        if self.ended {
            return;
        }
        let mut fresh = Vec::new();
        match chunk {
            Chunk::Stdout(bytes) => {
                self.stdout.push(&bytes, &self.prefix, &mut fresh);
                self.release_after_starts(fresh, out);
            }
            Chunk::Stderr(bytes) => {
                self.stderr.push(&bytes, &self.prefix, &mut fresh);
                self.hold_or_pass(fresh, out);
            }
            Chunk::Exit(_) | Chunk::Lost(_) => {
                let exit = match chunk {
                    Chunk::Exit(exit) => exit,
                    _ => ExitInfo::Unknown,
                };
                self.stdout.finish(&mut fresh);
                self.release_after_starts(fresh, out);
                let mut fresh = Vec::new();
                self.stderr.finish(&mut fresh);
                self.hold_or_pass(fresh, out);
                out.extend(self.held.drain(..));
                out.push(JobEvent::Ended { exit });
                self.ended = true;
            }
        }
    }

    /// Passes stdout's events on, each step start followed by the stderr
    /// lines that were waiting for it.
    fn release_after_starts(&mut self, fresh: Vec<JobEvent>, out: &mut Vec<JobEvent>) {
        for event in fresh {
            let started = match &event {
                JobEvent::StepStarted { step } => Some(*step),
                _ => None,
            };
            out.push(event);
            if let Some(started) = started {
                while self
                    .held
                    .front()
                    .is_some_and(|line| line_step(line) <= Some(started))
                {
                    out.extend(self.held.pop_front());
                }
            }
        }
    }

    /// Holds back stderr lines of steps stdout has not started yet; stderr's
    /// steps only grow, so whatever is held is ahead too.
    fn hold_or_pass(&mut self, fresh: Vec<JobEvent>, out: &mut Vec<JobEvent>) {
        for event in fresh {
            if line_step(&event) > self.stdout.step {
                if self.held.len() >= MAX_HELD_LINES {
                    out.extend(self.held.drain(..));
                }
                self.held.push_back(event);
            } else {
                out.push(event);
            }
        }
    }
}

fn line_step(event: &JobEvent) -> Option<StepIndex> {
    match event {
        JobEvent::Line { step, .. } => *step,
        _ => None,
    }
}

/// The undecided tail of one stream: the current line so far.
#[derive(Debug)]
struct LineBuffer {
    stream: Stream,
    buf: Vec<u8>,
    /// `buf[..checked]` is known to be plain text of the current line: no
    /// newline, no marker and no start of one. Scanning resumes here, so
    /// each byte is looked at a bounded number of times.
    checked: usize,
    /// The step whose start marker this stream saw last.
    step: Option<StepIndex>,
    /// A `Split` piece of the current line was already emitted.
    continued: bool,
}

/// What scanning the buffer from `checked` found first.
enum Found {
    /// A newline at this index.
    Newline(usize),
    /// A marker from `at` up to and including the newline at `newline`.
    Marker {
        at: usize,
        newline: usize,
        marker: Marker,
    },
    /// Nothing decided from this index on: it may be the start of a marker
    /// or the `\r` of a `\r\n`, or it is the end of the buffer.
    Undecided(usize),
}

impl LineBuffer {
    fn new(stream: Stream) -> LineBuffer {
        LineBuffer {
            stream,
            buf: Vec::new(),
            checked: 0,
            step: None,
            continued: false,
        }
    }

    fn push(&mut self, bytes: &[u8], prefix: &[u8], out: &mut Vec<JobEvent>) {
        // Taken out for the while, so lines can be emitted from it.
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(bytes);
        // The current line starts at `start`; everything before it is
        // emitted and dropped once, at the end.
        let mut start = 0;
        loop {
            match scan(&buf, self.checked, prefix) {
                Found::Newline(newline) => {
                    let line = &buf[start..newline];
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    self.emit(line, LineCut::Whole, out);
                    start = newline + 1;
                    self.checked = start;
                }
                Found::Marker {
                    at,
                    newline,
                    marker,
                } => {
                    if at > start || self.continued {
                        self.emit(&buf[start..at], LineCut::NoNewline, out);
                    }
                    self.apply(marker, out);
                    start = newline + 1;
                    self.checked = start;
                }
                Found::Undecided(at) => {
                    self.checked = at;
                    break;
                }
            }
        }
        // Bound the memory: text known to be plain goes out in pieces.
        while self.checked - start > MAX_LINE_BYTES {
            let cut = cut_point(&buf[start..self.checked]);
            let piece = &buf[start..start + cut];
            out.push(self.line(piece, LineCut::Split));
            self.continued = true;
            start += cut;
        }
        buf.drain(..start);
        self.buf = buf;
        self.checked -= start;
    }

    /// Emits what is left as the last line: the output has ended.
    fn finish(&mut self, out: &mut Vec<JobEvent>) {
        if !self.buf.is_empty() || self.continued {
            let rest = std::mem::take(&mut self.buf);
            self.emit(&rest, LineCut::NoNewline, out);
        }
        self.checked = 0;
    }
}

/// Looks through `buf` from `from` (everything before it being plain text)
/// for the end of the line or a marker.
fn scan(buf: &[u8], mut from: usize, prefix: &[u8]) -> Found {
    loop {
        let Some(offset) = memchr::memchr2(b'\n', b'@', &buf[from..]) else {
            // A `\r` at the very end may be half of a `\r\n`: keep it
            // out of a `Split` piece so splitting does not depend on
            // where chunks were cut.
            let end = match buf.last() {
                Some(b'\r') if buf.len() > from => buf.len() - 1,
                _ => buf.len(),
            };
            return Found::Undecided(end);
        };
        let at = from + offset;
        if buf[at] == b'\n' {
            return Found::Newline(at);
        }
        from = at + 1;
        let rest = &buf[at..];
        if rest.len() < prefix.len() {
            if prefix.starts_with(rest) {
                return Found::Undecided(at);
            }
            continue;
        }
        if !rest.starts_with(prefix) {
            continue;
        }
        let body = &rest[prefix.len()..];
        let window = &body[..body.len().min(MARKER_BODY_MAX)];
        match memchr::memchr(b'\n', window) {
            Some(end) => {
                if let Some(marker) = Marker::parse(&window[..end]) {
                    return Found::Marker {
                        at,
                        newline: at + prefix.len() + end,
                        marker,
                    };
                }
                // Our nonce, but malformed: plain text.
            }
            None if body.len() < MARKER_BODY_MAX => return Found::Undecided(at),
            // Too long to be a marker: plain text.
            None => {}
        }
    }
}

impl LineBuffer {
    /// Acts on a marker. Only the stdout copies make events; the stderr
    /// copies only tell which step stderr's lines belong to.
    fn apply(&mut self, marker: Marker, out: &mut Vec<JobEvent>) {
        if let Marker::StepStarted(step) = marker {
            self.step = Some(step);
        }
        if self.stream == Stream::Stderr {
            return;
        }
        out.push(match marker {
            Marker::Spawned { pid, pgid } => JobEvent::Spawned { pid, pgid },
            Marker::StepStarted(step) => JobEvent::StepStarted { step },
            Marker::StepExited { step, code } => JobEvent::StepExited { step, code },
        });
    }

    /// Emits the end of the current line, in pieces if it is too long.
    fn emit(&mut self, mut line: &[u8], cut: LineCut, out: &mut Vec<JobEvent>) {
        while line.len() > MAX_LINE_BYTES {
            let at = cut_point(line);
            out.push(self.line(&line[..at], LineCut::Split));
            line = &line[at..];
        }
        out.push(self.line(line, cut));
        self.continued = false;
    }

    fn line(&self, bytes: &[u8], cut: LineCut) -> JobEvent {
        JobEvent::Line {
            stream: self.stream,
            step: self.step,
            text: text(bytes),
            cut,
        }
    }
}

/// Where to cut a line longer than [`MAX_LINE_BYTES`]: at that length, or a
/// little before so a UTF-8 character is not cut in two. If the bytes there
/// are not UTF-8 anyway, at that length.
fn cut_point(line: &[u8]) -> usize {
    let is_continuation = |b: u8| b & 0b1100_0000 == 0b1000_0000;
    (MAX_LINE_BYTES - 3..=MAX_LINE_BYTES)
        .rev()
        .find(|&at| !is_continuation(line[at]))
        .unwrap_or(MAX_LINE_BYTES)
}

fn text(bytes: &[u8]) -> String {
    // Nearly all output is valid UTF-8, which the strict check confirms much
    // faster than the lossy decoder's character-by-character walk.
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    // The lossy decoder makes no NUL of its own: looking at the bytes is enough.
    if memchr::memchr(0, bytes).is_some() {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng as _, SeedableRng as _};
    use std::time::{Duration, Instant};

    const HEX: &str = "00112233445566778899aabbccddeeff";

    fn nonce() -> Nonce {
        Nonce::from_hex(HEX).expect("valid hex")
    }

    fn marker(body: &str) -> String {
        format!("@@zap:{HEX}:{body}\n")
    }

    fn line(stream: Stream, step: Option<u32>, text: &str, cut: LineCut) -> JobEvent {
        JobEvent::Line {
            stream,
            step: step.map(StepIndex),
            text: text.to_owned(),
            cut,
        }
    }

    fn out(step: Option<u32>, text: &str, cut: LineCut) -> JobEvent {
        line(Stream::Stdout, step, text, cut)
    }

    fn err(step: Option<u32>, text: &str, cut: LineCut) -> JobEvent {
        line(Stream::Stderr, step, text, cut)
    }

    fn started(step: u32) -> JobEvent {
        JobEvent::StepStarted {
            step: StepIndex(step),
        }
    }

    fn exited(step: u32, code: i32) -> JobEvent {
        JobEvent::StepExited {
            step: StepIndex(step),
            code,
        }
    }

    fn ended(code: i32) -> JobEvent {
        JobEvent::Ended {
            exit: ExitInfo::Code(code),
        }
    }

    /// Feeds stdout, then stderr, each cut at the given lengths, then exit 0.
    fn decode_in(
        stdout: &[u8],
        stderr: &[u8],
        cuts: &mut dyn FnMut(usize) -> usize,
    ) -> Vec<JobEvent> {
        let mut decoder = Decoder::new(nonce());
        let mut events = Vec::new();
        for (bytes, make) in [
            (stdout, Chunk::Stdout as fn(Vec<u8>) -> Chunk),
            (stderr, Chunk::Stderr),
        ] {
            let mut rest = bytes;
            while !rest.is_empty() {
                let n = cuts(rest.len()).clamp(1, rest.len());
                decoder.feed(make(rest[..n].to_vec()), &mut events);
                rest = &rest[n..];
            }
        }
        decoder.feed(Chunk::Exit(ExitInfo::Code(0)), &mut events);
        events
    }

    fn decode(stdout: &[u8], stderr: &[u8]) -> Vec<JobEvent> {
        decode_in(stdout, stderr, &mut |len| len)
    }

    /// A transcript with every kind of trouble, and the events it means.
    fn transcript() -> (Vec<u8>, Vec<u8>, Vec<JobEvent>) {
        let wrong = "ffffffffffffffffffffffffffffffff";
        let mut stdout = Vec::new();
        stdout.extend(marker("pid:4242:4240").bytes());
        stdout.extend(marker("start:1").bytes());
        stdout.extend(b"hello\n");
        stdout.extend(marker("exit:1:0").bytes());
        stdout.extend(marker("start:2").bytes());
        stdout.extend(b"partial");
        stdout.extend(marker("exit:2:0").bytes());
        stdout.extend(marker("start:3").bytes());
        stdout.extend(format!("@@zap:{wrong}:exit:3:0\n").bytes());
        stdout.extend(b"@@zap::exit:3:0\n");
        stdout.extend(b"@@zap:exit:3:0\n");
        stdout.extend(format!("say @@zap:{HEX}:bogus:1\n").bytes());
        stdout.extend(format!("x @@zap:{HEX}:start:9 and more\n").bytes());
        stdout.extend(format!("@@zap:{HEX}:exit:3:99999999999\n").bytes());
        stdout.extend(b"crlf\r\n");
        stdout.extend(b"lone\rcr\n");
        stdout.extend(b"bad \xff\xfe utf8 \xe2\x82\n");
        stdout.extend(b"nul\0byte\n");
        stdout.extend(b"\n");
        stdout.extend(b"@");
        stdout.extend(marker("exit:3:7").bytes());
        stdout.extend(b"@@za tail without newline\r");

        let mut stderr = Vec::new();
        stderr.extend(b"early\n");
        stderr.extend(marker("start:1").bytes());
        stderr.extend(b"e1\n");
        stderr.extend(b"half");
        stderr.extend(marker("exit:1:0").bytes());
        stderr.extend(marker("start:2").bytes());
        stderr.extend(marker("exit:2:0").bytes());
        stderr.extend(marker("start:3").bytes());
        stderr.extend(b"e3\r\n");
        stderr.extend(b"last");

        use LineCut::*;
        let expected = vec![
            JobEvent::Spawned {
                pid: 4242,
                pgid: 4240,
            },
            started(1),
            out(Some(1), "hello", Whole),
            exited(1, 0),
            started(2),
            out(Some(2), "partial", NoNewline),
            exited(2, 0),
            started(3),
            out(Some(3), &format!("@@zap:{wrong}:exit:3:0"), Whole),
            out(Some(3), "@@zap::exit:3:0", Whole),
            out(Some(3), "@@zap:exit:3:0", Whole),
            out(Some(3), &format!("say @@zap:{HEX}:bogus:1"), Whole),
            out(Some(3), &format!("x @@zap:{HEX}:start:9 and more"), Whole),
            out(Some(3), &format!("@@zap:{HEX}:exit:3:99999999999"), Whole),
            out(Some(3), "crlf", Whole),
            out(Some(3), "lone\rcr", Whole),
            out(Some(3), "bad \u{FFFD}\u{FFFD} utf8 \u{FFFD}", Whole),
            out(Some(3), "nul\u{FFFD}byte", Whole),
            out(Some(3), "", Whole),
            out(Some(3), "@", NoNewline),
            exited(3, 7),
            err(None, "early", Whole),
            err(Some(1), "e1", Whole),
            err(Some(1), "half", NoNewline),
            err(Some(3), "e3", Whole),
            // Flushed at exit: stdout first, then stderr.
            out(Some(3), "@@za tail without newline\r", NoNewline),
            err(Some(3), "last", NoNewline),
            ended(0),
        ];
        (stdout, stderr, expected)
    }

    /// The events of one transcript, reordered as if stdout had been fed
    /// entirely before stderr (the streams are decoded independently).
    fn by_stream(events: &[JobEvent]) -> (Vec<JobEvent>, Vec<JobEvent>) {
        events.iter().cloned().partition(|event| {
            !matches!(
                event,
                JobEvent::Line {
                    stream: Stream::Stderr,
                    ..
                }
            )
        })
    }

    #[test]
    fn decodes_the_transcript_fed_whole() {
        let (stdout, stderr, expected) = transcript();
        assert_eq!(decode(&stdout, &stderr), expected);
    }

    #[test]
    fn decodes_the_transcript_byte_by_byte() {
        let (stdout, stderr, expected) = transcript();
        assert_eq!(decode_in(&stdout, &stderr, &mut |_| 1), expected);
    }

    #[test]
    fn decodes_the_transcript_cut_at_every_boundary() {
        let (stdout, stderr, expected) = transcript();
        for first in 1..stdout.len() {
            let mut cuts = [first, usize::MAX, first.min(stderr.len()), usize::MAX].into_iter();
            let events = decode_in(&stdout, &stderr, &mut |_| cuts.next().unwrap_or(usize::MAX));
            assert_eq!(events, expected, "cut at {first}");
        }
    }

    #[test]
    fn decodes_the_transcript_in_random_interleaved_chunks() {
        let (stdout, stderr, expected) = transcript();
        let expected = by_stream(&expected);
        let mut rng = StdRng::seed_from_u64(0x2a9);
        for _ in 0..300 {
            let mut decoder = Decoder::new(nonce());
            let mut events = Vec::new();
            let (mut rest_out, mut rest_err) = (&stdout[..], &stderr[..]);
            while !rest_out.is_empty() || !rest_err.is_empty() {
                let use_stdout =
                    rest_err.is_empty() || (!rest_out.is_empty() && rng.random_bool(0.5));
                let rest = if use_stdout {
                    &mut rest_out
                } else {
                    &mut rest_err
                };
                let n = rng.random_range(1..=rest.len().min(60));
                let piece = rest[..n].to_vec();
                *rest = &rest[n..];
                let chunk = if use_stdout {
                    Chunk::Stdout(piece)
                } else {
                    Chunk::Stderr(piece)
                };
                decoder.feed(chunk, &mut events);
            }
            decoder.feed(Chunk::Exit(ExitInfo::Code(0)), &mut events);
            assert_eq!(by_stream(&events), expected);
        }
    }

    #[test]
    fn stderr_markers_make_no_events() {
        let mut stderr = Vec::new();
        stderr.extend(marker("pid:1:1").bytes());
        stderr.extend(marker("start:1").bytes());
        stderr.extend(marker("exit:1:5").bytes());
        assert_eq!(decode(b"", &stderr), [ended(0)]);
    }

    #[test]
    fn output_without_newline_before_an_exit_marker_and_at_eof() {
        let stdout = format!("{}no newline{}more", marker("start:1"), marker("exit:1:0"));
        assert_eq!(
            decode(stdout.as_bytes(), b""),
            [
                started(1),
                out(Some(1), "no newline", LineCut::NoNewline),
                exited(1, 0),
                out(Some(1), "more", LineCut::NoNewline),
                ended(0),
            ]
        );
    }

    #[test]
    fn stderr_lines_follow_their_steps() {
        let stdout = [
            marker("start:1"),
            marker("exit:1:0"),
            marker("start:2"),
            marker("exit:2:1"),
        ]
        .concat();
        let stderr = [
            marker("start:1"),
            "one\ncut short".to_owned(),
            marker("exit:1:0"),
            marker("start:2"),
            "two\n".to_owned(),
            marker("exit:2:1"),
        ]
        .concat();
        assert_eq!(
            decode(stdout.as_bytes(), stderr.as_bytes()),
            [
                started(1),
                exited(1, 0),
                started(2),
                exited(2, 1),
                err(Some(1), "one", LineCut::Whole),
                err(Some(1), "cut short", LineCut::NoNewline),
                err(Some(2), "two", LineCut::Whole),
                ended(0),
            ]
        );
    }

    #[test]
    fn a_marker_prefix_too_long_to_wait_for_is_text() {
        let long = format!("@@zap:{HEX}:start:{}\n", "1".repeat(100));
        assert_eq!(
            decode(long.as_bytes(), b""),
            [out(None, long.trim_end(), LineCut::Whole), ended(0)]
        );
        // Waiting for a possible marker must not hold a line back forever.
        let mut decoder = Decoder::new(nonce());
        let mut events = Vec::new();
        decoder.feed(
            Chunk::Stdout(format!("@@zap:{HEX}:").into_bytes()),
            &mut events,
        );
        decoder.feed(Chunk::Stdout(vec![b'x'; 2 * MAX_LINE_BYTES]), &mut events);
        assert!(matches!(
            events.first(),
            Some(JobEvent::Line { cut: LineCut::Split, text, .. }) if text.starts_with("@@zap:")
        ));
    }

    #[test]
    fn after_exit_nothing_more_is_decoded() {
        let mut decoder = Decoder::new(nonce());
        let mut events = Vec::new();
        decoder.feed(
            Chunk::Exit(ExitInfo::Signal("KILL".to_owned())),
            &mut events,
        );
        decoder.feed(Chunk::Stdout(b"late\n".to_vec()), &mut events);
        decoder.feed(Chunk::Exit(ExitInfo::Code(0)), &mut events);
        assert_eq!(
            events,
            [JobEvent::Ended {
                exit: ExitInfo::Signal("KILL".to_owned())
            }]
        );
    }

    fn pieces(events: &[JobEvent]) -> Vec<(&str, LineCut)> {
        events
            .iter()
            .filter_map(|event| match event {
                JobEvent::Line { text, cut, .. } => Some((text.as_str(), *cut)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_ten_megabyte_line_comes_in_bounded_pieces_quickly() {
        let size = 10 * 1024 * 1024;
        let line: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        let began = Instant::now();
        let mut decoder = Decoder::new(nonce());
        let mut events = Vec::new();
        for chunk in line.chunks(32 * 1024) {
            decoder.feed(Chunk::Stdout(chunk.to_vec()), &mut events);
            assert!(decoder.stdout.buf.len() <= MAX_LINE_BYTES + 32 * 1024);
        }
        decoder.feed(Chunk::Exit(ExitInfo::Code(0)), &mut events);
        let pieces = pieces(&events);
        assert_eq!(pieces.len(), size / MAX_LINE_BYTES);
        assert!(
            pieces[..pieces.len() - 1]
                .iter()
                .all(|(_, cut)| *cut == LineCut::Split)
        );
        assert_eq!(pieces.last().map(|p| p.1), Some(LineCut::NoNewline));
        assert!(pieces.iter().all(|(text, _)| text.len() <= MAX_LINE_BYTES));
        let joined: String = pieces.iter().map(|(text, _)| *text).collect();
        assert_eq!(joined.as_bytes(), &line[..]);
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{:?}",
            began.elapsed()
        );

        // In one chunk, ending with a newline: the same pieces, the last whole.
        let began = Instant::now();
        let mut with_newline = line.clone();
        with_newline.push(b'\n');
        let events = decode(&with_newline, b"");
        let pieces = self::pieces(&events);
        assert_eq!(pieces.len(), size / MAX_LINE_BYTES);
        assert_eq!(pieces.last().map(|p| p.1), Some(LineCut::Whole));
        let total: usize = pieces.iter().map(|(text, _)| text.len()).sum();
        assert_eq!(total, size);
        assert!(began.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_long_line_splits_the_same_however_it_arrives() {
        let mut bytes = "é✓".repeat(MAX_LINE_BYTES / 2).into_bytes();
        bytes.extend(b"\r\n");
        let whole = decode(&bytes, b"");
        let by_chunks = decode_in(&bytes, b"", &mut |_| 7001);
        let by_bytes = decode_in(&bytes, b"", &mut |_| 1);
        assert_eq!(whole, by_chunks);
        assert_eq!(whole, by_bytes);
        let pieces = pieces(&whole);
        assert!(pieces.len() > 2);
        assert_eq!(pieces.last().map(|p| p.1), Some(LineCut::Whole));
        let joined: String = pieces.iter().map(|(text, _)| *text).collect();
        assert!(!joined.contains('\u{FFFD}'), "a character was cut in two");
        assert_eq!(joined.as_bytes(), &bytes[..bytes.len() - 2]);
    }

    #[test]
    fn a_marker_straddling_the_line_limit_is_found() {
        for before in [
            MAX_LINE_BYTES - 20,
            MAX_LINE_BYTES - 1,
            MAX_LINE_BYTES,
            MAX_LINE_BYTES + 5,
        ] {
            let mut bytes = marker("start:1").into_bytes();
            bytes.extend(vec![b'x'; before]);
            bytes.extend(marker("exit:1:0").bytes());
            for chunk in [1, 1000, MAX_LINE_BYTES - 3, usize::MAX] {
                let events = decode_in(&bytes, b"", &mut |_| chunk);
                assert!(
                    events.contains(&exited(1, 0)),
                    "{before} in chunks of {chunk}"
                );
                let text: usize = pieces(&events).iter().map(|(t, _)| t.len()).sum();
                assert_eq!(text, before);
                assert_eq!(
                    pieces(&events).last().map(|p| p.1),
                    Some(LineCut::NoNewline)
                );
            }
        }
    }

    #[test]
    fn a_line_of_exactly_the_limit_is_one_line() {
        for ending in [&b"\n"[..], b"\r\n"] {
            let mut bytes = vec![b'y'; MAX_LINE_BYTES];
            bytes.extend(ending);
            for chunk in [1, 4096, MAX_LINE_BYTES + 1, usize::MAX] {
                let events = decode_in(&bytes, b"", &mut |_| chunk);
                assert_eq!(
                    pieces(&events),
                    [("y".repeat(MAX_LINE_BYTES).as_str(), LineCut::Whole)],
                    "{ending:?} in chunks of {chunk}"
                );
            }
        }
    }

    #[test]
    fn stderr_that_runs_ahead_waits_for_stdout_to_start_its_step() {
        let mut decoder = Decoder::new(nonce());
        let mut events = Vec::new();
        let stderr = format!("{}early\n", marker("start:2"));
        decoder.feed(Chunk::Stderr(stderr.into_bytes()), &mut events);
        assert!(
            events.is_empty(),
            "held until stdout reaches step 2: {events:?}"
        );
        let stdout = format!(
            "{}one\n{}{}",
            marker("start:1"),
            marker("exit:1:0"),
            marker("start:2")
        );
        decoder.feed(Chunk::Stdout(stdout.into_bytes()), &mut events);
        assert_eq!(
            events,
            [
                started(1),
                out(Some(1), "one", LineCut::Whole),
                exited(1, 0),
                started(2),
                err(Some(2), "early", LineCut::Whole),
            ]
        );
    }

    #[test]
    fn held_stderr_is_bounded_and_released_at_the_end() {
        let mut decoder = Decoder::new(nonce());
        let mut events = Vec::new();
        let mut stderr = marker("start:1");
        for n in 0..MAX_HELD_LINES + 10 {
            stderr.push_str(&format!("line {n}\n"));
        }
        decoder.feed(Chunk::Stderr(stderr.into_bytes()), &mut events);
        assert_eq!(events.len(), MAX_HELD_LINES, "a full hold is let go");
        decoder.feed(Chunk::Exit(ExitInfo::Code(0)), &mut events);
        assert_eq!(events.len(), MAX_HELD_LINES + 10 + 1);
        assert_eq!(events.last(), Some(&ended(0)));
    }
}
