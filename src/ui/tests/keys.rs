//! Key handling on the view model alone: navigation, folding, screens,
//! actions, dialogs and search, without a terminal.

use super::*;
use crate::action::Action;
use crate::model::Signal;
use crate::ui::keys::{CTRL_C, Key};
use crate::ui::tree::NodeKey;
use crate::ui::view::{Confirm, Context, OutputBounds, Overlay, Screen, UiAction};

const JOBS: &str = r#"
[jobs.db]
host = "n1"
steps = ["podman start db", "wait-for-db"]

[jobs.api]
hosts = ["n1", "n2"]
steps = ["cd /srv/api", "./api"]

[jobs.once]
host = "n2"
steps = ["true"]
"#;

/// db and api run; once has exited.
fn snapshot() -> Snapshot {
    let plan = plan(&[("web", JOBS)]);
    let mut script = Script::up(&plan);
    for (n, id) in every(&plan).iter().enumerate() {
        script.spawn(id, 0, 100 + u32::try_from(n).expect("small"));
        script.step(id, 0, 1);
    }
    let once = id("web", "once", "n2");
    script.step_exit(&once, 5, 1, 0);
    script.end(&once, 6, 0);
    script.snapshot(1_000, no_lines)
}

struct Harness {
    snapshot: Snapshot,
    view: ViewModel,
    bounds: OutputBounds,
}

impl Harness {
    fn new() -> Harness {
        let snapshot = snapshot();
        let mut view = view(100, 20);
        view.settle(&snapshot);
        Harness {
            snapshot,
            view,
            bounds: OutputBounds::default(),
        }
    }

    fn press(&mut self, key: &str) -> Vec<UiAction> {
        let key = Key::parse(key).expect("key name");
        let context = Context {
            snapshot: &self.snapshot,
            output: self.bounds,
        };
        self.view.handle(key, &context)
    }

    fn presses(&mut self, keys: &[&str]) -> Vec<UiAction> {
        keys.iter().flat_map(|key| self.press(key)).collect()
    }

    fn selected(&self) -> Option<&NodeKey> {
        self.view.fleet.selected.as_ref()
    }
}

fn instance(job: &str, host: &str) -> NodeKey {
    NodeKey::Instance(id("web", job, host))
}

#[test]
fn arrows_and_vi_keys_move_within_the_rows() {
    let mut ui = Harness::new();
    // web, db@n1, api, @n1, @n2, once@n2.
    assert_eq!(ui.selected(), Some(&NodeKey::System("web".into())));
    ui.press("down");
    assert_eq!(ui.selected(), Some(&instance("db", "n1")));
    ui.presses(&["j", "j"]);
    assert_eq!(ui.selected(), Some(&instance("api", "n1")));
    ui.press("G");
    assert_eq!(ui.selected(), Some(&instance("once", "n2")));
    ui.press("down");
    assert_eq!(ui.selected(), Some(&instance("once", "n2")), "no wrapping");
    ui.press("g");
    ui.press("up");
    assert_eq!(ui.selected(), Some(&NodeKey::System("web".into())));
    ui.press("pgdn");
    assert_eq!(ui.selected(), Some(&instance("once", "n2")));
}

#[test]
fn folding_with_left_right_and_space() {
    let mut ui = Harness::new();
    ui.presses(&["down", "right"]);
    assert_eq!(
        ui.selected(),
        Some(&instance("db", "n1")),
        "→ unfolds first"
    );
    ui.press("right");
    assert_eq!(
        ui.selected(),
        Some(&NodeKey::Step(id("web", "db", "n1"), StepIndex(1))),
        "→ on an open row goes to its first child"
    );
    ui.press("h");
    assert_eq!(
        ui.selected(),
        Some(&instance("db", "n1")),
        "← on a leaf goes to the parent"
    );
    ui.press("left");
    assert_eq!(ui.view.fleet.folds.get(&instance("db", "n1")), Some(&false));
    ui.press("left");
    assert_eq!(ui.selected(), Some(&NodeKey::System("web".into())));
    ui.press("space");
    let rows = crate::ui::tree::rows(&ui.snapshot, &ui.view.fleet.folds);
    assert_eq!(rows.len(), 1, "the folded system hides everything");
    ui.press("down");
    assert_eq!(ui.selected(), Some(&NodeKey::System("web".into())));
    ui.press("enter");
    let rows = crate::ui::tree::rows(&ui.snapshot, &ui.view.fleet.folds);
    assert_eq!(rows.len(), 6, "Enter on a system unfolds it");
}

#[test]
fn enter_opens_a_job_and_esc_comes_back() {
    let mut ui = Harness::new();
    ui.presses(&["down", "enter"]);
    assert_eq!(ui.view.screen, Screen::Job(id("web", "db", "n1")));
    assert!(ui.view.output.follow, "a job opens following its output");
    ui.press("H");
    assert_eq!(ui.view.screen, Screen::Host(HostName("n1".into())));
    ui.press("esc");
    assert_eq!(ui.view.screen, Screen::Job(id("web", "db", "n1")));
    ui.press("esc");
    assert_eq!(ui.view.screen, Screen::Fleet);
    assert_eq!(
        ui.selected(),
        Some(&instance("db", "n1")),
        "the selection stays"
    );
}

#[test]
fn job_actions_use_the_shared_vocabulary() {
    let mut ui = Harness::new();
    ui.presses(&["down", "down"]);
    // On the api row: both instances.
    let actions = ui.press("R");
    let both = vec![id("web", "api", "n1"), id("web", "api", "n2")];
    assert_eq!(
        actions,
        [UiAction::Act {
            action: Action::Restart {
                targets: vec!["web.api@n1".into(), "web.api@n2".into()]
            },
            targets: both.clone(),
        }]
    );
    assert_eq!(
        ui.view.message.as_deref(),
        Some("restarting web.api@n1 and 1 more")
    );
    let actions = ui.press("s");
    assert!(
        matches!(&actions[..], [UiAction::Act { action: Action::Stop { .. }, targets }] if *targets == both)
    );
    ui.press("G");
    let actions = ui.press("s");
    assert!(
        matches!(
            &actions[..],
            [UiAction::Act {
                action: Action::Start { .. },
                ..
            }]
        ),
        "s starts a job that is done: {actions:?}"
    );
    assert!(
        ui.press("r").is_empty(),
        "lower-case r is no key by default"
    );
}

#[test]
fn the_signal_menu_offers_signals_for_running_jobs_only() {
    let mut ui = Harness::new();
    ui.press("G");
    assert!(ui.press("x").is_empty());
    assert_eq!(ui.view.overlay, None);
    assert_eq!(
        ui.view.message.as_deref(),
        Some("no process runs there to signal")
    );
    ui.presses(&["g", "down", "x"]);
    assert!(matches!(ui.view.overlay, Some(Overlay::Signal { .. })));
    assert_eq!(
        ui.press("2"),
        [UiAction::Signal {
            signal: Signal::Int,
            targets: vec![id("web", "db", "n1")],
        }]
    );
    assert_eq!(ui.view.overlay, None);
    ui.presses(&["x", "down", "down"]);
    assert_eq!(
        ui.press("enter"),
        [UiAction::Signal {
            signal: Signal::Hup,
            targets: vec![id("web", "db", "n1")],
        }]
    );
    ui.press("x");
    assert!(ui.press("esc").is_empty());
    assert_eq!(ui.view.overlay, None);
}

#[test]
fn quit_asks_first_and_counts_the_jobs_it_stops() {
    let mut ui = Harness::new();
    assert!(ui.press("q").is_empty());
    assert_eq!(
        ui.view.overlay,
        Some(Overlay::Confirm(Confirm::Quit { jobs: 3 }))
    );
    assert!(
        ui.press("x").is_empty(),
        "other keys leave the question open"
    );
    assert!(ui.press("n").is_empty());
    assert_eq!(ui.view.overlay, None);
    assert!(ui.press("Q").is_empty(), "Q asks too while jobs run");
    assert!(ui.press("esc").is_empty());
    ui.press("q");
    let down = vec![UiAction::Act {
        action: Action::Down,
        targets: vec![],
    }];
    assert_eq!(ui.press("y"), down);
    assert!(ui.view.quitting);
    // Quitting takes long: q again offers to kill what still runs.
    ui.press("q");
    assert_eq!(
        ui.view.overlay,
        Some(Overlay::Confirm(Confirm::KillAll { jobs: 3 }))
    );
    assert_eq!(ui.press("enter"), [UiAction::KillAll]);
}

#[test]
fn ctrl_c_asks_to_quit_and_a_second_one_says_yes() {
    let mut ui = Harness::new();
    ui.presses(&["down", "enter"]);
    assert!(ui.press("ctrl-c").is_empty());
    assert!(matches!(
        ui.view.overlay,
        Some(Overlay::Confirm(Confirm::Quit { .. }))
    ));
    assert_eq!(
        ui.view.handle(
            CTRL_C,
            &Context {
                snapshot: &ui.snapshot,
                output: ui.bounds,
            }
        ),
        [UiAction::Act {
            action: Action::Down,
            targets: vec![],
        }]
    );
}

#[test]
fn capital_q_quits_at_once_when_nothing_runs() {
    let mut ui = Harness::new();
    for instance in &mut ui.snapshot.instances {
        instance.done = true;
    }
    ui.snapshot.counts.not_done = 0;
    assert_eq!(
        ui.press("Q"),
        [UiAction::Act {
            action: Action::Down,
            targets: vec![],
        }]
    );
}

#[test]
fn help_opens_scrolls_and_closes() {
    let mut ui = Harness::new();
    ui.press("?");
    assert_eq!(ui.view.overlay, Some(Overlay::Help { scroll: 0 }));
    ui.presses(&["down", "j"]);
    assert_eq!(ui.view.overlay, Some(Overlay::Help { scroll: 2 }));
    let context = Context {
        snapshot: &ui.snapshot,
        output: ui.bounds,
    };
    ui.view.scroll(3, &context);
    assert_eq!(ui.view.overlay, Some(Overlay::Help { scroll: 5 }));
    assert_eq!(
        ui.selected(),
        Some(&NodeKey::System("web".into())),
        "the wheel scrolls help only"
    );
    ui.press("esc");
    assert_eq!(ui.view.overlay, None);
    assert_eq!(ui.view.screen, Screen::Fleet);
}

#[test]
fn scrolling_output_leaves_and_resumes_follow() {
    let mut ui = Harness::new();
    ui.presses(&["down", "enter"]);
    ui.bounds = OutputBounds {
        first: 0,
        next: 100,
    };
    let rows = u64::from(ui.view.body_rows());
    assert_eq!(
        ui.view.output.top_line(ui.bounds, ui.view.body_rows()),
        100 - rows
    );
    ui.press("up");
    assert!(!ui.view.output.follow);
    assert_eq!(ui.view.output.top, 100 - rows - 1);
    ui.press("pgup");
    assert_eq!(ui.view.output.top, 100 - rows - 1 - (rows - 1));
    ui.press("g");
    assert_eq!(ui.view.output.top_line(ui.bounds, ui.view.body_rows()), 0);
    ui.press("f");
    assert!(ui.view.output.follow, "f follows again");
    ui.press("f");
    assert!(!ui.view.output.follow);
    ui.press("G");
    assert!(ui.view.output.follow);
    ui.presses(&["k", "j"]);
    assert!(ui.view.output.follow, "scrolling back to the end follows");
    // The mouse wheel scrolls three lines.
    let context = Context {
        snapshot: &ui.snapshot,
        output: ui.bounds,
    };
    ui.view.scroll(-3, &context);
    assert_eq!(ui.view.output.top, 100 - rows - 3);
    ui.press("w");
    assert!(!ui.view.output.wrap);
    ui.presses(&["right", "right", "left"]);
    assert_eq!(ui.view.output.sideways, 8);
}

#[test]
fn search_in_output_asks_for_matches_and_jumps_to_them() {
    let mut ui = Harness::new();
    ui.presses(&["down", "enter"]);
    ui.bounds = OutputBounds {
        first: 10,
        next: 200,
    };
    let db = id("web", "db", "n1");
    ui.press("/");
    assert!(
        ui.presses(&["E", "r", "x", "backspace"]).is_empty(),
        "typing is not keys"
    );
    assert_eq!(ui.view.overlay, Some(Overlay::SearchInput("Er".into())));
    let top = ui.view.output.top_line(ui.bounds, ui.view.body_rows());
    assert_eq!(
        ui.press("enter"),
        [UiAction::Find {
            id: db.clone(),
            query: "Er".into(),
            from: top,
            forward: true,
        }]
    );
    ui.view.found(Some(150), ui.bounds);
    assert!(!ui.view.output.follow);
    assert_eq!(ui.view.output.current_match, Some(150));
    assert!(ui.view.output.top <= 150);
    assert!(matches!(
        &ui.press("n")[..],
        [UiAction::Find {
            from: 151,
            forward: true,
            ..
        }]
    ));
    assert!(matches!(
        &ui.press("N")[..],
        [UiAction::Find {
            from: 149,
            forward: false,
            ..
        }]
    ));
    ui.view.found(None, ui.bounds);
    assert_eq!(
        ui.view.message.as_deref(),
        Some("no more lines with \"Er\"")
    );
    assert_eq!(
        ui.view.output.current_match,
        Some(150),
        "a miss keeps the place"
    );
    ui.press("/");
    assert!(ui.press("esc").is_empty(), "Esc cancels typing");
    assert_eq!(ui.view.search.as_deref(), Some("Er"));
}

#[test]
fn search_in_the_fleet_selects_matching_rows() {
    let mut ui = Harness::new();
    ui.presses(&["/", "a", "p", "i"]);
    ui.press("enter");
    assert_eq!(
        ui.selected(),
        Some(&NodeKey::Job(id("web", "api", "n1").job))
    );
    ui.press("n");
    assert_eq!(
        ui.selected(),
        Some(&NodeKey::Job(id("web", "api", "n1").job)),
        "the only row named api"
    );
    ui.presses(&["/", "N", "2", "enter"]);
    assert_eq!(ui.selected(), Some(&instance("api", "n2")));
    ui.press("N");
    assert_eq!(
        ui.selected(),
        Some(&instance("once", "n2")),
        "N goes back, around the end"
    );
}

#[test]
fn the_selection_survives_new_snapshots_and_stays_in_view() {
    let mut ui = Harness::new();
    ui.view.resize(100, 5);
    ui.press("G");
    assert_eq!(ui.view.fleet.offset, 6 - usize::from(ui.view.body_rows()));
    let snapshot = snapshot();
    ui.view.settle(&snapshot);
    assert_eq!(ui.selected(), Some(&instance("once", "n2")));
    // A folded parent hides the selection: it lands on a row nearby.
    ui.view
        .fleet
        .folds
        .insert(NodeKey::System("web".into()), false);
    ui.view.settle(&snapshot);
    assert_eq!(ui.selected(), Some(&NodeKey::System("web".into())));
}

#[test]
fn unseen_marks_clear_when_the_job_is_looked_at() {
    let mut ui = Harness::new();
    let db = id("web", "db", "n1");
    if let Some(instance) = ui.snapshot.instances.iter_mut().find(|i| i.id == db) {
        instance.out_lines = 5;
        instance.err_lines = 1;
    }
    assert_eq!(ui.view.unseen(&db, 5, 1), (true, true));
    ui.presses(&["down", "enter"]);
    ui.view.mark_seen(&ui.snapshot);
    assert_eq!(ui.view.unseen(&db, 5, 1), (false, false));
    assert_eq!(ui.view.unseen(&db, 6, 1), (true, false));
}

#[test]
fn a_rebound_key_map_drives_the_view() {
    let keymap = crate::ui::keys::Keymap::parse(
        "restart = \"r\"\ndown = [\"n\"]\n",
        std::path::Path::new("k.toml"),
    )
    .expect("valid");
    let mut ui = Harness::new();
    ui.view.keymap = keymap;
    ui.press("n");
    assert_eq!(ui.selected(), Some(&instance("db", "n1")));
    assert!(matches!(
        &ui.press("r")[..],
        [UiAction::Act {
            action: Action::Restart { .. },
            ..
        }]
    ));
    assert!(ui.press("R").is_empty());
}
