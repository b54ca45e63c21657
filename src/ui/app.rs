//! The UI task: reads keys, mouse and resizes (crossterm's event stream,
//! never blocking), asks the supervisor loop for a [`Snapshot`] when the
//! news says something changed, draws at most ~30 frames a second, and
//! turns the view's [`UiAction`]s into the loop's requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{
    Event as TermEvent, EventStream, KeyCode, KeyEventKind, KeyModifiers, MouseEventKind,
};
use futures::StreamExt;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use tokio::sync::{mpsc, oneshot};

use super::keys::{Key, KeyName};
use super::news::News;
use super::output::{self, OutputWindow};
use super::pacer::Pacer;
use super::pty::PtyView;
use super::render::Frame;
use super::snapshot::Snapshot;
use super::terminal::{self, Painter};
use super::view::{Context, OutputBounds, Screen, UiAction, ViewModel};
use crate::action::Action;
use crate::logbook::LogBook;
use crate::logs::LogLine;
use crate::model::Signal;
use crate::supervisor::Event;
use crate::supervisor::engine::{Request, request_for_action};

/// Clocks on screen (uptime, backoff) move even when nothing happens.
const CLOCK: Duration = Duration::from_secs(1);
/// How long a job's failure stays in the strip.
const RECENT: Duration = Duration::from_secs(60);
/// How long one of zap's notes stays in the footer.
const NOTE_SHOWN: Duration = Duration::from_secs(8);
/// Rows the mouse wheel scrolls per notch.
const WHEEL: i32 = 3;

/// How the UI's actions are told apart from the control socket's in a job's
/// output.
const FROM_UI: &str = "from the terminal UI";

/// The supervisor's request for a UI action (`None` for those the UI does
/// itself). Restart, stop, start and quit are the control socket's actions,
/// carried out as the same engine events.
pub fn request_for(action: UiAction, snapshot: &Snapshot) -> Option<Request> {
    Some(match action {
        UiAction::Act { action, targets } => {
            let reason = match action {
                Action::Restart { .. } => format!("restart {FROM_UI}"),
                Action::Down => format!("quit {FROM_UI}"),
                _ => format!("stopped {FROM_UI}"),
            };
            return request_for_action(&action, targets, reason);
        }
        UiAction::Signal { signal, targets } => Request::Apply {
            targets,
            event: Event::SendSignal(signal),
        },
        UiAction::KillAll => Request::Apply {
            targets: snapshot
                .instances
                .iter()
                .filter(|instance| instance.kind.is_running())
                .map(|instance| instance.id.clone())
                .collect(),
            event: Event::SendSignal(Signal::Kill),
        },
        UiAction::Find { .. } => return None,
    })
}

/// A crossterm key as the view's [`Key`]; `None` for releases and keys the
/// UI has no use for.
pub fn key_of(event: &crossterm::event::KeyEvent) -> Option<Key> {
    if event.kind == KeyEventKind::Release {
        return None;
    }
    let name = match event.code {
        KeyCode::Char(c) => KeyName::Char(c),
        KeyCode::Enter => KeyName::Enter,
        KeyCode::Esc => KeyName::Esc,
        KeyCode::Tab => KeyName::Tab,
        KeyCode::BackTab => KeyName::BackTab,
        KeyCode::Backspace => KeyName::Backspace,
        KeyCode::Delete => KeyName::Delete,
        KeyCode::Insert => KeyName::Insert,
        KeyCode::Up => KeyName::Up,
        KeyCode::Down => KeyName::Down,
        KeyCode::Left => KeyName::Left,
        KeyCode::Right => KeyName::Right,
        KeyCode::PageUp => KeyName::PageUp,
        KeyCode::PageDown => KeyName::PageDown,
        KeyCode::Home => KeyName::Home,
        KeyCode::End => KeyName::End,
        KeyCode::F(n) => KeyName::F(n),
        _ => return None,
    };
    let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
    let name = match name {
        // Ctrl+R arrives as 'r' or 'R' depending on the terminal.
        KeyName::Char(c) if ctrl => KeyName::Char(c.to_ascii_lowercase()),
        other => other,
    };
    Some(Key {
        name,
        ctrl,
        alt: event.modifiers.contains(KeyModifiers::ALT),
    })
}

/// The UI task's own state.
struct App {
    news: Arc<News>,
    engine: mpsc::Sender<Request>,
    logbook: LogBook,
    view: ViewModel,
    snapshot: Snapshot,
    painter: Painter,
    /// When the UI started: notes from before are shown only then.
    started: Instant,
    /// The terminal emulator of the `pty = true` job followed live.
    pty: Option<PtyView>,
}

/// Waits for SIGHUP (the terminal went away), or forever if it cannot be
/// listened to.
async fn hangup(signal: &mut Option<tokio::signal::unix::Signal>) {
    if let Some(signal) = signal
        && signal.recv().await.is_some()
    {
        return;
    }
    std::future::pending().await
}

/// Waits for the answer to a snapshot request, or forever if none is out.
async fn answer(pending: &mut Option<oneshot::Receiver<Snapshot>>) -> Option<Snapshot> {
    match pending {
        Some(receiver) => receiver.await.ok(),
        None => std::future::pending().await,
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs the UI until `stop` fires (the supervisor loop has ended).
pub async fn run(
    news: Arc<News>,
    engine: mpsc::Sender<Request>,
    logbook: LogBook,
    view: ViewModel,
    painter: Painter,
    mut stop: oneshot::Receiver<()>,
) {
    // Should this task panic, the terminal is given back by the panic hook
    // and the loop is asked to stop the jobs: nobody could see them anymore.
    let _guard = ShutDownOnPanic(engine.clone());
    let mut app = App {
        news,
        engine,
        logbook,
        view,
        snapshot: Snapshot::default(),
        painter,
        started: Instant::now(),
        pty: None,
    };
    let mut events = EventStream::new();
    let mut input_open = true;
    let mut clock = tokio::time::interval(CLOCK);
    let mut pending: Option<oneshot::Receiver<Snapshot>> = None;
    let mut pacer = Pacer::new(tokio::time::Instant::now());
    // A closed terminal would otherwise end zap at once and leave every
    // job running: stop them, as Ctrl+C does without the UI.
    let mut hung_up = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        let due = pacer.due(tokio::time::Instant::now(), pending.is_some());
        if due.ask {
            pending = app.ask_for_snapshot();
            pacer.asked(pending.is_some());
        }
        if due.draw {
            app.draw();
        }
        let wake = pacer.wake_at(pending.is_some());
        tokio::select! {
            // Keys first: however much the jobs print, a key is handled
            // (and drawn) before anything else waiting.
            biased;
            _ = &mut stop => break,
            event = events.next(), if input_open => match event {
                Some(Ok(event)) => {
                    let screen = app.view.screen.clone();
                    // Mouse moves and clicks change nothing on screen.
                    if app.on_terminal_event(event).await {
                        // Drawn at once, not at the next frame's slot: what
                        // a key does shows within a frame's work, and keys
                        // come a few dozen a second at most.
                        app.draw();
                        pacer.drawn_now(tokio::time::Instant::now());
                    }
                    // The host view shows processes: a snapshot with them.
                    if app.view.screen != screen {
                        pacer.changed();
                    }
                }
                Some(Err(_)) | None => input_open = false,
            },
            () = app.news.changed() => pacer.changed(),
            _ = clock.tick() => pacer.changed(),
            snapshot = answer(&mut pending) => {
                pending = None;
                if let Some(snapshot) = snapshot {
                    app.view.settle(&snapshot);
                    app.snapshot = snapshot;
                    pacer.arrived();
                }
            }
            () = sleep_until(wake) => {}
            () = hangup(&mut hung_up) => {
                hung_up = None;
                input_open = false;
                let reason = "the terminal closed".to_string();
                let _ = app.engine.send(Request::ShutDown { reason }).await;
            }
        }
    }
    app.painter.stop();
}

/// Notes zap wrote while the UI ran, to print once the terminal is back.
pub fn notes_to_print(news: &News) -> Vec<String> {
    news.notes().into_iter().map(|(_, text)| text).collect()
}

struct ShutDownOnPanic(mpsc::Sender<Request>);

impl Drop for ShutDownOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            terminal::restore();
            let _ = self.0.try_send(Request::ShutDown {
                reason: "the terminal UI failed".into(),
            });
        }
    }
}

impl App {
    /// Asks the loop for a snapshot; `None` if the loop cannot take the
    /// request now (it is full: ask again next frame).
    fn ask_for_snapshot(&mut self) -> Option<oneshot::Receiver<Snapshot>> {
        self.news.take_dirty();
        let (tx, rx) = oneshot::channel();
        let news = self.news.clone();
        let host = match &self.view.screen {
            Screen::Host(host) => Some(host.clone()),
            _ => None,
        };
        let look = Box::new(move |state: &crate::supervisor::State| {
            let lines = |id: &crate::model::InstanceId| news.lines(id);
            let snapshot = Snapshot::capture(state, Instant::now(), lines, host.as_ref());
            let _ = tx.send(snapshot);
        });
        self.engine
            .try_send(Request::Inspect(look))
            .ok()
            .map(|()| rx)
    }

    fn bounds(&self) -> OutputBounds {
        match self.view.open_job() {
            Some(id) => self
                .logbook
                .with_ring(id, output::bounds)
                .unwrap_or_default(),
            None => OutputBounds::default(),
        }
    }

    /// Handles a key, the wheel or a resize; true if the screen may change.
    async fn on_terminal_event(&mut self, event: TermEvent) -> bool {
        let bounds = self.bounds();
        match event {
            TermEvent::Key(key) => {
                let Some(key) = key_of(&key) else {
                    return false;
                };
                #[cfg(debug_assertions)]
                panic_on_demand::arm_if(&key);
                let context = Context {
                    snapshot: &self.snapshot,
                    output: bounds,
                };
                let actions = self.view.handle(key, &context);
                for action in actions {
                    self.carry_out(action).await;
                }
            }
            TermEvent::Mouse(mouse) => {
                let context = Context {
                    snapshot: &self.snapshot,
                    output: bounds,
                };
                match mouse.kind {
                    MouseEventKind::ScrollDown => self.view.scroll(WHEEL, &context),
                    MouseEventKind::ScrollUp => self.view.scroll(-WHEEL, &context),
                    _ => return false,
                }
            }
            TermEvent::Resize(width, height) => {
                self.view.resize(width, height);
                self.view.settle(&self.snapshot);
            }
            _ => return false,
        }
        true
    }

    async fn carry_out(&mut self, action: UiAction) {
        if let UiAction::Find {
            id,
            query,
            from,
            forward,
        } = &action
        {
            // A copy (compressed blocks, a memcpy) is searched outside the
            // lock the supervisor takes for every line.
            let ring = self.logbook.with_ring(id, Clone::clone);
            let found = ring.and_then(|ring| output::find(&ring, query, *from, *forward));
            let bounds = self.bounds();
            self.view.found(found, bounds);
            return;
        }
        if let Some(request) = request_for(action, &self.snapshot) {
            // The loop takes requests between events; a second is plenty.
            let sent = tokio::time::timeout(CLOCK, self.engine.send(request)).await;
            if !matches!(sent, Ok(Ok(()))) {
                self.view.message = Some("zap is busy: try again".into());
            }
        }
    }

    /// Draws a frame into a buffer and hands it to the painter.
    fn draw(&mut self) {
        #[cfg(debug_assertions)]
        panic_on_demand::fire();
        let (width, height) = (self.view.width, self.view.height);
        let area = Rect::new(0, 0, width, height);
        let window = match &self.view.screen {
            Screen::Job(id) => {
                let rows = self.view.body_rows();
                let output = &self.view.output;
                self.logbook
                    .with_ring(id, |ring| OutputWindow::copy(ring, output, rows))
                    .unwrap_or_default()
            }
            _ => OutputWindow::default(),
        };
        self.update_pty(Rect::new(0, 0, width, self.view.body_rows()));
        let now = Instant::now();
        let failures = self
            .news
            .failures_since(now.checked_sub(RECENT).unwrap_or(self.started));
        let note = self
            .news
            .notes()
            .into_iter()
            .rev()
            .find(|(at, _)| now.saturating_duration_since(*at) < NOTE_SHOWN)
            .map(|(_, text)| format!("zap: {text}"));
        let status = self.view.message.clone().or(note);
        let frame = Frame {
            snapshot: &self.snapshot,
            view: &self.view,
            output: &window,
            failures: &failures,
            status: status.as_deref(),
            terminal: self.pty.as_ref().map(PtyView::screen),
        };
        let mut buffer = Buffer::empty(area);
        (&frame).render(area, &mut buffer);
        self.painter.paint(buffer);
        self.view.mark_seen(&self.snapshot);
    }
}

impl App {
    /// Keeps the emulator of the open job fed when it is a `pty = true` job
    /// followed live, with no search going on; drops it otherwise.
    fn update_pty(&mut self, body: Rect) {
        let live = match &self.view.screen {
            Screen::Job(id) => {
                let pty = self
                    .snapshot
                    .instance(id)
                    .is_some_and(|instance| instance.pty);
                let output = &self.view.output;
                (pty && output.follow && self.view.search.is_none()).then(|| id.clone())
            }
            _ => None,
        };
        let Some(id) = live else {
            self.pty = None;
            return;
        };
        let size = (body.height.max(1), body.width.max(1));
        let fresh = match &self.pty {
            Some(view) => view.id() != &id || view.size() != size,
            None => true,
        };
        if fresh {
            self.pty = Some(PtyView::new(id.clone(), size.0, size.1));
        }
        let Some(view) = self.pty.as_mut() else {
            return;
        };
        // Copied under the lock, parsed after it.
        let next = view.next();
        let lines: Vec<LogLine> = self
            .logbook
            .with_ring(&id, |ring| ring.since(next).collect())
            .unwrap_or_default();
        view.feed(&lines);
    }
}

/// A real panic in the drawing path, on demand, so that tests/tui.rs can
/// check that a panic gives the terminal back and stops the jobs: nothing
/// else can make the UI panic from outside. Pressing the key named by
/// `ZAP_TEST_UI_PANIC_KEY` makes the next frame panic. Debug builds only:
/// a release build has neither the variable nor the check.
#[cfg(debug_assertions)]
mod panic_on_demand {
    use std::sync::atomic::{AtomicBool, Ordering};

    use crate::ui::keys::{Key, KeyName};

    static ARMED: AtomicBool = AtomicBool::new(false);

    pub fn arm_if(key: &Key) {
        let Some(wanted) = std::env::var("ZAP_TEST_UI_PANIC_KEY").ok() else {
            return;
        };
        if matches!(key.name, KeyName::Char(c) if wanted.chars().eq([c])) && !key.ctrl {
            ARMED.store(true, Ordering::SeqCst);
        }
    }

    pub fn fire() {
        if ARMED.load(Ordering::SeqCst) {
            panic!("ZAP_TEST_UI_PANIC_KEY was pressed: a panic on demand");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key pressed on the terminal, as the UI reads it.
    fn key(code: KeyCode, modifiers: KeyModifiers) -> Option<Key> {
        key_of(&crossterm::event::KeyEvent::new(code, modifiers))
    }
    use crate::model::{HostName, InstanceId, JobName};

    fn id() -> InstanceId {
        InstanceId {
            job: JobName {
                system: "web".into(),
                job: "api".into(),
            },
            host: HostName("local".into()),
        }
    }

    #[test]
    fn terminal_keys_become_view_keys() {
        assert_eq!(
            key(KeyCode::Char('R'), KeyModifiers::SHIFT),
            Some(Key::char('R'))
        );
        assert_eq!(
            key(KeyCode::Char('C'), KeyModifiers::CONTROL),
            Some(super::super::keys::CTRL_C)
        );
        assert_eq!(
            key(KeyCode::PageDown, KeyModifiers::NONE),
            Some(Key::plain(KeyName::PageDown))
        );
        assert_eq!(key(KeyCode::CapsLock, KeyModifiers::NONE), None);
    }

    #[test]
    fn ui_actions_are_the_control_sockets_events() {
        let snapshot = Snapshot::default();
        let restart = UiAction::Act {
            action: Action::Restart {
                targets: vec![id().to_string()],
            },
            targets: vec![id()],
        };
        match request_for(restart, &snapshot) {
            Some(Request::Apply {
                targets,
                event: Event::Restart { reason },
            }) => {
                assert_eq!(targets, [id()]);
                assert_eq!(reason, "restart from the terminal UI");
            }
            _ => panic!("a restart"),
        }
        let stop = UiAction::Act {
            action: Action::Stop { targets: vec![] },
            targets: vec![id()],
        };
        assert!(matches!(
            request_for(stop, &snapshot),
            Some(Request::Apply {
                event: Event::Stop {
                    counts_as_failure: false,
                    ..
                },
                ..
            })
        ));
        let quit = UiAction::Act {
            action: Action::Down,
            targets: vec![],
        };
        assert!(matches!(
            request_for(quit, &snapshot),
            Some(Request::ShutDown { .. })
        ));
        let signal = UiAction::Signal {
            signal: Signal::Hup,
            targets: vec![id()],
        };
        assert!(matches!(
            request_for(signal, &snapshot),
            Some(Request::Apply {
                event: Event::SendSignal(Signal::Hup),
                ..
            })
        ));
    }
}
