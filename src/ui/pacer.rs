//! When the UI asks the supervisor for a snapshot and draws it: only after
//! something changed, at most once a frame (about 30 a second however fast
//! the jobs print), and at once after a key.

use std::time::Duration;

use tokio::time::Instant;

/// The shortest time between two frames (about 30 a second).
pub const FRAME: Duration = Duration::from_millis(33);

/// What the UI loop is to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Due {
    /// Ask the supervisor for a snapshot of its state.
    pub ask: bool,
    /// Draw the snapshot that came.
    pub draw: bool,
}

#[derive(Debug)]
pub struct Pacer {
    /// The state changed since a snapshot was last asked for.
    changed: bool,
    /// A snapshot came and is not drawn yet.
    undrawn: bool,
    /// Nothing is asked for or drawn before this.
    next_slot: Instant,
}

impl Pacer {
    /// A pacer that asks for the first snapshot at once.
    pub fn new(now: Instant) -> Pacer {
        Pacer {
            changed: true,
            undrawn: false,
            next_slot: now,
        }
    }

    /// The supervisor's state changed (or the clock ticked).
    pub fn changed(&mut self) {
        self.changed = true;
    }

    /// A snapshot came.
    pub fn arrived(&mut self) {
        self.undrawn = true;
    }

    /// What is due at `now`; `asking` tells whether a snapshot is already
    /// on its way (then no second one is asked for).
    pub fn due(&mut self, now: Instant, asking: bool) -> Due {
        if now < self.next_slot {
            return Due::default();
        }
        let due = Due {
            ask: self.changed && !asking,
            draw: self.undrawn,
        };
        self.undrawn = false;
        if due.ask || due.draw {
            self.next_slot = now + FRAME;
        }
        due
    }

    /// Whether the snapshot asked for is on its way; if not (the supervisor
    /// was busy), it is asked for again at the next slot.
    pub fn asked(&mut self, sent: bool) {
        if sent {
            self.changed = false;
        }
    }

    /// A key was drawn at once: the next frame waits a whole slot.
    pub fn drawn_now(&mut self, now: Instant) {
        self.undrawn = false;
        self.next_slot = now + FRAME;
    }

    /// When the loop must wake for work that waits for its slot, if any.
    pub fn wake_at(&self, asking: bool) -> Option<Instant> {
        (self.undrawn || (self.changed && !asking)).then_some(self.next_slot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `pacer` for `millis` of simulated time, one step a millisecond;
    /// `change` says at which milliseconds the state changes. A snapshot
    /// asked for comes the next millisecond. Returns the milliseconds at
    /// which it drew.
    fn run(
        pacer: &mut Pacer,
        start: Instant,
        millis: u64,
        change: impl Fn(u64) -> bool,
    ) -> Vec<u64> {
        let mut asking = false;
        let mut draws = Vec::new();
        for ms in 0..millis {
            let now = start + Duration::from_millis(ms);
            if asking {
                asking = false;
                pacer.arrived();
            }
            if change(ms) {
                pacer.changed();
            }
            let due = pacer.due(now, asking);
            if due.ask {
                asking = true;
                pacer.asked(true);
            }
            if due.draw {
                draws.push(ms);
            }
        }
        draws
    }

    #[test]
    fn a_flood_of_changes_draws_about_thirty_frames_a_second() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start);
        let draws = run(&mut pacer, start, 1000, |_| true);
        assert!(
            (25..=31).contains(&draws.len()),
            "{} frames: {draws:?}",
            draws.len()
        );
        assert!(
            draws.windows(2).all(|pair| pair[1] - pair[0] >= 33),
            "{draws:?}"
        );
    }

    #[test]
    fn nothing_changed_nothing_drawn() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start);
        // The first snapshot, drawn once.
        let first = run(&mut pacer, start, 100, |_| false);
        assert_eq!(first.len(), 1, "{first:?}");
        let later = start + Duration::from_millis(100);
        assert_eq!(run(&mut pacer, later, 5000, |_| false), Vec::<u64>::new());
        assert_eq!(pacer.wake_at(false), None, "no wake-up without work");
    }

    #[test]
    fn a_change_is_drawn_within_two_frames() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start);
        run(&mut pacer, start, 500, |_| false);
        let later = start + Duration::from_millis(500);
        let draws = run(&mut pacer, later, 200, |ms| ms == 10);
        assert_eq!(draws.len(), 1, "{draws:?}");
        assert!(draws[0] > 10 && draws[0] <= 10 + 2 * 33, "{draws:?}");
    }

    #[test]
    fn after_a_key_the_next_frame_waits_its_slot() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start);
        run(&mut pacer, start, 500, |_| false);
        let key = start + Duration::from_millis(500);
        pacer.drawn_now(key);
        pacer.changed();
        assert_eq!(
            pacer.due(key + Duration::from_millis(5), false),
            Due::default()
        );
        assert_eq!(pacer.wake_at(false), Some(key + FRAME));
        assert!(pacer.due(key + FRAME, false).ask);
    }

    #[test]
    fn a_snapshot_the_supervisor_could_not_take_is_asked_for_again() {
        let start = Instant::now();
        let mut pacer = Pacer::new(start);
        assert!(pacer.due(start, false).ask);
        pacer.asked(false);
        assert_eq!(pacer.wake_at(false), Some(start + FRAME));
        assert!(pacer.due(start + FRAME, false).ask);
    }
}
