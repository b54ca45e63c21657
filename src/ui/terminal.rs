//! The real terminal: raw mode, the alternate screen and the mouse while the
//! UI runs, given back on every way out (the end of `zap up`, an error, a
//! panic anywhere); and the painter thread that writes frames, so a slow or
//! stuck terminal never holds up key handling or the supervisor.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{cursor, execute};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::buffer::Buffer;

/// Set while zap holds the terminal, so it is given back exactly once.
static TAKEN: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();
/// Held by the painter while it writes a frame and by [`restore`] while it
/// gives the terminal back: a frame finished after the terminal was given
/// back (a panic elsewhere) would scribble over the shell's screen.
static WRITING: Mutex<()> = Mutex::new(());
/// How long [`restore`] waits for a frame being written: should the
/// painter itself have panicked while writing, it never lets go.
const FRAME_WAIT: Duration = Duration::from_millis(200);

/// Takes the terminal: raw mode (so Ctrl+C is a key, not a SIGINT), the
/// alternate screen, mouse reports, no cursor.
pub fn enter() -> io::Result<()> {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Give the terminal back first, so the message is readable.
            restore();
            previous(info);
        }));
    });
    enable_raw_mode()?;
    TAKEN.store(true, Ordering::SeqCst);
    let entered = execute!(
        io::stdout(),
        EnterAlternateScreen,
        EnableMouseCapture,
        cursor::Hide
    );
    if let Err(error) = entered {
        restore();
        return Err(error);
    }
    Ok(())
}

/// Gives the terminal back as it was; does nothing if zap does not hold it.
pub fn restore() {
    let _writing = wait_for_frame();
    if !TAKEN.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = disable_raw_mode();
    let mut out = io::stdout();
    let _ = execute!(out, DisableMouseCapture, LeaveAlternateScreen, cursor::Show);
    let _ = out.flush();
}

/// Waits (a little) for the frame being written; `None` if it takes too long.
fn wait_for_frame() -> Option<MutexGuard<'static, ()>> {
    let deadline = Instant::now() + FRAME_WAIT;
    loop {
        match WRITING.try_lock() {
            Ok(guard) => return Some(guard),
            Err(TryLockError::Poisoned(poisoned)) => return Some(poisoned.into_inner()),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(TryLockError::WouldBlock) => return None,
        }
    }
}

/// The newest frame waiting to be written, and whether to stop.
#[derive(Default)]
struct Slot {
    frame: Option<Buffer>,
    stop: bool,
}

/// A thread that owns the terminal's output and writes the newest frame
/// it was given; frames drawn while it writes replace each other.
pub struct Painter {
    slot: Arc<(Mutex<Slot>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Painter {
    pub fn start() -> io::Result<Painter> {
        let mut terminal = Terminal::new(CrosstermBackend::new(io::stdout()))?;
        let slot: Arc<(Mutex<Slot>, Condvar)> = Arc::default();
        let shared = slot.clone();
        let thread = std::thread::Builder::new()
            .name("zap-ui-painter".into())
            .spawn(move || {
                loop {
                    let frame = {
                        let (lock, wake) = &*shared;
                        let mut slot = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        while slot.frame.is_none() && !slot.stop {
                            slot = wake
                                .wait(slot)
                                .unwrap_or_else(|poisoned| poisoned.into_inner());
                        }
                        if slot.stop {
                            // Dropping a terminal that cannot show its
                            // cursor (it hung up) complains on stderr;
                            // restore() shows the cursor anyway.
                            if terminal.show_cursor().is_err() {
                                std::mem::forget(terminal);
                            }
                            return;
                        }
                        slot.frame.take()
                    };
                    let writing = WRITING
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    if let Some(frame) = frame
                        && TAKEN.load(Ordering::SeqCst)
                    {
                        // A terminal that cannot be written to shows nothing;
                        // the supervisor goes on all the same.
                        let _ = paint(&mut terminal, &frame);
                    }
                    drop(writing);
                }
            })?;
        Ok(Painter {
            slot,
            thread: Some(thread),
        })
    }

    /// Hands over a frame to write (replacing one not written yet).
    pub fn paint(&self, frame: Buffer) {
        let (lock, wake) = &*self.slot;
        lock.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .frame = Some(frame);
        wake.notify_one();
    }

    /// Stops the thread after the frame it is writing.
    pub fn stop(mut self) {
        self.shut();
    }

    fn shut(&mut self) {
        {
            let (lock, wake) = &*self.slot;
            lock.lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .stop = true;
            wake.notify_one();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Painter {
    fn drop(&mut self) {
        self.shut();
    }
}

fn paint(terminal: &mut Terminal<CrosstermBackend<io::Stdout>>, frame: &Buffer) -> io::Result<()> {
    terminal.draw(|target| {
        let area = target.area().intersection(frame.area);
        let buffer = target.buffer_mut();
        for y in area.top()..area.bottom() {
            for x in area.left()..area.right() {
                if let (Some(from), Some(to)) = (frame.cell((x, y)), buffer.cell_mut((x, y))) {
                    *to = from.clone();
                }
            }
        }
    })?;
    Ok(())
}
