//! The terminal UI of `zap up`: the fleet as a folding tree, a
//! job's output, a host's processes, help; actions through the same
//! vocabulary as the control socket.
//!
//! Data flows one way, as everywhere in zap:
//! - `news`: the supervisor loop's [`UiObserver`] counts lines and flags a
//!   redraw, O(1) per event; it never draws;
//! - `snapshot`: what the screens show, copied out of the state inside the
//!   loop (`Request::Inspect`), with `figures` the one place CPU and memory
//!   are read from;
//! - `view`: the view model (screen, selection, folds, scroll, search) and
//!   its pure key handling, `keys` the rebindable key map, `tree` the rows;
//! - `ansi`: SGR escapes in job output as styles, the rest dropped;
//! - `render`: drawing, a pure function of snapshot, view and `output` (the
//!   job's lines in view) or, for a `pty = true` job followed live, `pty`
//!   (its lines through a terminal emulator);
//! - `app`: the UI task (input, frame pacing, actions), and `terminal`: raw
//!   mode and its restoration, and the painter thread.

pub mod ansi;
mod app;
pub mod figures;
pub mod keys;
pub mod news;
pub mod output;
mod pacer;
pub mod pty;
pub mod render;
pub mod snapshot;
mod terminal;
pub mod tree;
pub mod view;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

pub use keys::{Keymap, KeymapError};
pub use news::{News, UiObserver};

use crate::logbook::LogBook;
use crate::model::InstanceId;
use crate::supervisor::engine::Request;

/// The UI before it takes the terminal: made when `zap up` starts (its
/// observer sees everything from the first event on), started once the
/// supervisor loop's request channel exists.
pub struct Tui {
    news: Arc<News>,
    keymap: Keymap,
}

impl Tui {
    /// The UI for `selected`, and the observer to give the supervisor loop.
    pub fn new(keymap: Keymap, selected: &[InstanceId]) -> (UiObserver, Tui) {
        let news = News::new(selected);
        (UiObserver::new(news.clone()), Tui { news, keymap })
    }

    /// Takes the terminal and starts the UI task. Its actions go to the
    /// loop through `engine`; job output is read from `logbook`.
    pub fn start(
        self,
        engine: mpsc::Sender<Request>,
        logbook: LogBook,
    ) -> std::io::Result<Running> {
        let (width, height) = crossterm::terminal::size()?;
        terminal::enter()?;
        let painter = match terminal::Painter::start() {
            Ok(painter) => painter,
            Err(error) => {
                terminal::restore();
                return Err(error);
            }
        };
        let view = view::ViewModel::new(self.keymap, width, height);
        let (stop, stopped) = oneshot::channel();
        let (done, ended) = oneshot::channel();
        let news = self.news.clone();
        // The UI runs on a thread and runtime of its own: on the shared
        // runtime, a key waited in line behind the tasks reading the jobs'
        // output, which under a flood of it is a long line.
        let started = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .and_then(|runtime| {
                std::thread::Builder::new()
                    .name("zap-ui".into())
                    .spawn(move || {
                        runtime.block_on(app::run(news, engine, logbook, view, painter, stopped));
                        let _ = done.send(());
                    })
            });
        if let Err(error) = started {
            terminal::restore();
            return Err(error);
        }
        Ok(Running {
            news: self.news,
            stop,
            ended,
        })
    }
}

/// The UI while it runs.
pub struct Running {
    news: Arc<News>,
    stop: oneshot::Sender<()>,
    /// Fires when the UI thread is done, or is dropped should it panic.
    ended: oneshot::Receiver<()>,
}

impl Running {
    /// Ends the UI (call when the supervisor loop is over), gives the
    /// terminal back and prints zap's notes of the run, which the screen
    /// showed only briefly. False when the UI had panicked.
    pub async fn finish(self) -> bool {
        let _ = self.stop.send(());
        let ended_well = self.ended.await.is_ok();
        terminal::restore();
        // The terminal may be gone (SIGHUP): nothing to say then.
        let mut out = std::io::stdout().lock();
        for note in app::notes_to_print(&self.news) {
            if writeln!(out, "zap: {note}").is_err() {
                break;
            }
        }
        ended_well
    }
}
