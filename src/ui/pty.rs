//! `pty = true` jobs followed live: their kept lines fed to a terminal
//! emulator (vt100) and drawn as its screen (tui-term), so what a program
//! redraws with cursor movements (progress bars over several lines, `docker
//! pull`, `apt`) lands where it meant it to, as in the job's own terminal.
//! Scrolling back or searching uses the line view.

use std::borrow::Borrow;

use crate::logs::{LogLine, Origin};
use crate::model::InstanceId;

/// No scrollback in the emulator: scrolling back is the line view's.
const SCROLLBACK: usize = 0;

/// One instance's output as its terminal would show it now.
pub struct PtyView {
    id: InstanceId,
    parser: vt100::Parser,
    /// The number of the next ring line to feed.
    next: u64,
}

impl PtyView {
    /// An emulator `rows`×`cols` for `id`, fed from the start of what is kept.
    pub fn new(id: InstanceId, rows: u16, cols: u16) -> PtyView {
        PtyView {
            id,
            parser: vt100::Parser::new(rows.max(1), cols.max(1), SCROLLBACK),
            next: 0,
        }
    }

    pub fn id(&self) -> &InstanceId {
        &self.id
    }

    pub fn size(&self) -> (u16, u16) {
        self.parser.screen().size()
    }

    /// The number of the first line not fed yet.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Feeds `lines` (from [`PtyView::next`] on, as [`Ring::since`] gives
    /// them), skipping any fed already.
    pub fn feed<L: Borrow<LogLine>>(&mut self, lines: impl IntoIterator<Item = L>) {
        for line in lines {
            let line = line.borrow();
            if line.seq < self.next {
                continue;
            }
            let (_, cols) = self.size();
            self.parser.process(&bytes(line, usize::from(cols)));
            self.next = line.seq + 1;
        }
    }

    pub fn screen(&self) -> &vt100::Screen {
        self.parser.screen()
    }
}

/// A kept line as the terminal got it: the newline the decoder took off put
/// back (none after a piece of an over-long line); zap's own lines in cyan,
/// on one row of `cols`.
fn bytes(line: &LogLine, cols: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.text.len() + 16);
    if line.origin == Origin::Zap {
        let text: String = crate::ui::output::plain(&line.text)
            .chars()
            .take(cols.saturating_sub(3))
            .collect();
        out.extend_from_slice(b"\x1b[0;36m~ ");
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(b"\x1b[0m");
    } else {
        out.extend_from_slice(line.text.as_bytes());
    }
    if !line.split {
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Ring;
    use crate::model::{HostName, JobName, Stream};
    use crate::transport::decode::LineCut;

    fn id() -> InstanceId {
        InstanceId {
            job: JobName {
                system: "web".into(),
                job: "pull".into(),
            },
            host: HostName("n1".into()),
        }
    }

    fn out(text: &str) -> LogLine {
        LogLine::output(Stream::Stdout, None, text.into(), LineCut::Whole)
    }

    #[test]
    fn lines_redrawn_with_cursor_movements_land_in_place() {
        let mut ring = Ring::new(100);
        ring.push(out("layer a: 10%"));
        ring.push(out("layer b: 0%"));
        let mut view = PtyView::new(id(), 4, 20);
        view.feed(ring.since(view.next()));
        // Up two lines, rewrite both: as `docker pull` does.
        ring.push(out("\x1b[2A\x1b[2Klayer a: done"));
        ring.push(out("\x1b[2Klayer b: 55%"));
        view.feed(ring.since(view.next()));
        let contents = view.screen().contents();
        assert_eq!(contents.trim_end(), "layer a: done\nlayer b: 55%");
    }

    #[test]
    fn feeding_twice_feeds_each_line_once() {
        let mut ring = Ring::new(100);
        ring.push(out("one"));
        let mut view = PtyView::new(id(), 3, 20);
        view.feed(ring.since(view.next()));
        view.feed(ring.since(view.next()));
        ring.push(LogLine::zap(None, "restarting"));
        view.feed(ring.since(view.next()));
        assert_eq!(view.screen().contents().trim_end(), "one\n~ restarting");
    }
}
