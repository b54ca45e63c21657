//! Screens drawn into a `TestBackend`: insta snapshots of what a user sees,
//! and cell assertions for the colours of states.

use ratatui::style::Color;

use super::*;
use crate::logs::{LogLine, Ring};
use crate::ui::output::OutputWindow;
use crate::ui::tree::NodeKey;
use crate::ui::view::{Confirm, Overlay, Screen};

const WEB: &str = r#"
[system]
description = "the web stack"

[jobs.db]
host = "n1"
steps = ["podman start db", "wait-for-db"]
ready = { log = "accepting" }

[jobs.api]
hosts = ["n1", "n2"]
after = ["db"]
steps = ["cd /srv/api", "make", "./api --port 8080"]

[jobs.build]
host = "n1"
steps = ["cd /srv/web", "make", "make install"]
"#;

const OPS: &str = r#"
[jobs.backup]
host = "n2"
steps = ["backup.sh /srv"]

[jobs.metrics]
host = "n1"
steps = ["node-exporter"]
"#;

/// WEB, with a fixup rule for build.
const WEB_WITH_FIXUP: &str = r#"
[jobs.db]
host = "n1"
steps = ["podman start db", "wait-for-db"]
ready = { log = "accepting" }

[jobs.api]
hosts = ["n1", "n2"]
after = ["db"]
steps = ["cd /srv/api", "./api --port 8080"]

[jobs.build]
host = "n1"
steps = ["cd /srv/web", "podman run --name web1 web"]

[[jobs.build.fixup]]
when = 'the container name "(?P<name>[^"]+)" is already in use'
run = "podman rm -f {name}"
"#;

/// A fleet mid-life: db ready, api running on n1 and lost on n2, build
/// failed at step 2, backup done, metrics stopped.
fn fleet() -> Script {
    fleet_of(WEB)
}

fn fleet_of(web: &str) -> Script {
    let plan = plan(&[("web", web), ("ops", OPS)]);
    let mut script = Script::up(&plan);
    let db = id("web", "db", "n1");
    script.spawn(&db, 0, 1001);
    script.steps_ok(&db, 0, 1);
    script.step(&db, 10, 2);
    script.line(&db, 500, 2, "accepting connections");
    for (host, pid) in [("n1", 2001), ("n2", 2002)] {
        let api = id("web", "api", host);
        script.spawn(&api, 600, pid);
        let steps = u32::try_from(script.state.instance(&api).map_or(1, |i| i.steps.len()))
            .expect("few steps");
        script.steps_ok(&api, 600, steps - 1);
        script.step(&api, 620, steps);
    }
    script.apply(
        &id("web", "api", "n2"),
        5_000,
        Event::HostLost("keepalive timeout".into()),
    );
    let build = id("web", "build", "n1");
    script.spawn(&build, 0, 3001);
    script.steps_ok(&build, 0, 1);
    script.step(&build, 10, 2);
    let error = r#"Error: the container name "web1" is already in use"#;
    script.line(&build, 800, 2, error);
    script.step_exit(&build, 822, 2, 2);
    script.end(&build, 823, 2);
    let backup = id("ops", "backup", "n2");
    script.spawn(&backup, 0, 4001);
    script.steps_ok(&backup, 0, 1);
    script.end(&backup, 1_500, 0);
    let metrics = id("ops", "metrics", "n1");
    script.spawn(&metrics, 0, 5001);
    script.step(&metrics, 0, 1);
    script.apply(
        &metrics,
        2_000,
        Event::Stop {
            reason: "zap stop".into(),
            counts_as_failure: false,
        },
    );
    script.job(
        &metrics,
        2_100,
        JobEvent::Ended {
            exit: ExitInfo::Signal("TERM".into()),
        },
    );
    script
}

/// api@n1 has unseen output; build has unseen stderr.
fn fleet_lines(id: &InstanceId) -> (u64, u64) {
    match (id.job.job.as_str(), id.host.0.as_str()) {
        ("api", "n1") => (12, 0),
        ("build", _) => (40, 3),
        _ => (0, 0),
    }
}

fn fleet_snapshot() -> Snapshot {
    fleet().snapshot(65_000, fleet_lines)
}

/// The cell of the first `symbol` on the row whose text holds `row_text`.
fn cell_style(
    terminal: &Terminal<TestBackend>,
    row_text: &str,
    symbol: &str,
) -> ratatui::style::Style {
    let buffer = terminal.backend().buffer();
    let area = buffer.area;
    for y in 0..area.height {
        let row: String = (0..area.width).map(|x| buffer[(x, y)].symbol()).collect();
        if !row.contains(row_text) {
            continue;
        }
        for x in 0..area.width {
            if buffer[(x, y)].symbol() == symbol {
                return buffer[(x, y)].style();
            }
        }
    }
    panic!(
        "no {symbol:?} on a row with {row_text:?}:\n{}",
        terminal.backend()
    );
}

#[test]
fn fleet_view_with_a_failed_step_a_lost_host_and_unseen_marks() {
    let snapshot = fleet_snapshot();
    let mut view = view(110, 19);
    // The failed job unfolded: its steps, the failing one marked.
    view.fleet
        .folds
        .insert(NodeKey::Instance(id("web", "build", "n1")), true);
    view.settle(&snapshot);
    let terminal = draw(&snapshot, &view, &OutputWindow::default(), &[]);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn states_have_their_colours() {
    let snapshot = fleet_snapshot();
    let mut view = view(110, 16);
    view.settle(&snapshot);
    let terminal = draw(&snapshot, &view, &OutputWindow::default(), &[]);
    assert_eq!(cell_style(&terminal, "build@n1", "✗").fg, Some(Color::Red));
    assert_eq!(cell_style(&terminal, "db@n1", "●").fg, Some(Color::Green));
    assert_eq!(cell_style(&terminal, "@n1", "▶").fg, Some(Color::Cyan));
    assert_eq!(cell_style(&terminal, "@n2", "⊗").fg, Some(Color::LightRed));
    assert_eq!(
        cell_style(&terminal, "backup@n2", "✓").fg,
        Some(Color::Green)
    );
    assert_eq!(
        cell_style(&terminal, "metrics@n1", "■").fg,
        Some(Color::DarkGray)
    );
    // Unseen output and unseen stderr.
    assert_eq!(cell_style(&terminal, "@n1 •", "•").fg, Some(Color::Blue));
    assert_eq!(cell_style(&terminal, "build@n1", "!").fg, Some(Color::Red));
    // The header counts what failed in red.
    assert_eq!(cell_style(&terminal, "jobs:", "1").fg, Some(Color::Red));
}

#[test]
fn a_fixing_job_is_magenta_and_says_its_remedy() {
    let script = fleet_of(WEB_WITH_FIXUP);
    let build = id("web", "build", "n1");
    assert_eq!(
        script
            .state
            .instance(&build)
            .map(|instance| instance.kind().name()),
        Some("fixing")
    );
    let snapshot = script.snapshot(65_000, fleet_lines);
    assert_eq!(snapshot.counts.fixing, 1);
    let mut view = view(110, 16);
    view.settle(&snapshot);
    let terminal = draw(&snapshot, &view, &OutputWindow::default(), &[]);
    insta::assert_snapshot!(terminal.backend());
    assert_eq!(
        cell_style(&terminal, "build@n1", "✚").fg,
        Some(Color::Magenta)
    );
}

#[test]
fn a_60_column_terminal_drops_columns_instead_of_wrapping() {
    let snapshot = fleet_snapshot();
    let mut view = view(60, 16);
    view.settle(&snapshot);
    let terminal = draw(&snapshot, &view, &OutputWindow::default(), &[]);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn two_hundred_jobs_scroll_with_the_selection() {
    let mut systems = Vec::new();
    for system in 0..10 {
        let mut text = String::new();
        for job in 0..20 {
            text.push_str(&format!(
                "[jobs.job{job:02}]\nhost = \"n{}\"\nsteps = [\"worker --id {job}\"]\n",
                1 + job % 2
            ));
        }
        systems.push((format!("sys{system}"), text));
    }
    let borrowed: Vec<(&str, &str)> = systems
        .iter()
        .map(|(name, text)| (name.as_str(), text.as_str()))
        .collect();
    let plan = plan(&borrowed);
    let mut script = Script::up(&plan);
    for (n, id) in every(&plan).iter().enumerate() {
        let pid = 10_000 + u32::try_from(n).expect("small");
        script.spawn(id, 0, pid);
        script.step(id, 0, 1);
    }
    let snapshot = script.snapshot(3_600_000, no_lines);
    assert_eq!(snapshot.counts.instances, 200);
    let mut view = view(90, 20);
    view.settle(&snapshot);
    for _ in 0..150 {
        view.handle(
            crate::ui::keys::Key::char('j'),
            &crate::ui::view::Context {
                snapshot: &snapshot,
                output: Default::default(),
            },
        );
    }
    let terminal = draw(&snapshot, &view, &OutputWindow::default(), &[]);
    insta::assert_snapshot!(terminal.backend());
}

fn build_output() -> Ring {
    let mut ring = Ring::new(100);
    let step = |n| Some(StepIndex(n));
    let lines = [
        LogLine::zap(None, "started: pid 3001, process group 3001"),
        LogLine::zap(step(1), "step 1/3: cd /srv/web"),
        LogLine::zap(step(1), "step 1 ok in 10ms"),
        LogLine::zap(step(2), "step 2/3: make"),
        LogLine::output(
            Stream::Stdout,
            step(2),
            "\x1b[32mCC\x1b[0m main.o".into(),
            LineCut::Whole,
        ),
        LogLine::output(
            Stream::Stdout,
            step(2),
            "\x1b[1;33mwarning:\x1b[0m unused\tvariable".into(),
            LineCut::Whole,
        ),
        LogLine::output(
            Stream::Stderr,
            step(2),
            "make: *** [Makefile:4: all] Error 2".into(),
            LineCut::Whole,
        ),
        LogLine::zap(step(2), "step 2 failed: exit 2 in 812ms"),
        LogLine::zap(None, "failed at step 2: exit 2"),
    ];
    for line in lines {
        ring.push(line);
    }
    ring
}

#[test]
fn job_view_shows_steps_colours_stderr_and_the_fleet_strip() {
    let snapshot = fleet_snapshot();
    let build = id("web", "build", "n1");
    let mut view = view(80, 14);
    view.screen = Screen::Job(build.clone());
    view.search = Some("error".into());
    let ring = build_output();
    let output = OutputWindow::copy(&ring, &view.output, view.body_rows());
    let failures = [Failure {
        id: build.clone(),
        at: std::time::Instant::now(),
        what: "failed at step 2: exit 2".into(),
    }];
    let terminal = draw(&snapshot, &view, &output, &failures);
    insta::assert_snapshot!(terminal.backend());
    assert_eq!(cell_style(&terminal, "main.o", "C").fg, Some(Color::Green));
    assert_eq!(cell_style(&terminal, "Makefile", "!").fg, Some(Color::Red));
    assert_eq!(
        cell_style(&terminal, "Makefile", "E").bg,
        Some(Color::Yellow)
    );
    assert_eq!(
        cell_style(&terminal, "step 2 failed", "s").fg,
        Some(Color::Red)
    );
}

/// `printf '\033[31mred\nstill red\033[0m\nplain\n'` and kin, as the job
/// view draws them: a colour left on carries to the same stream's next
/// lines, not to the other stream's, and ends where a step starts;
/// cursor moves, titles and `\r` move nothing.
#[test]
fn job_view_carries_colours_across_lines_as_a_terminal_does() {
    let mut ring = Ring::new(100);
    let step = |n| Some(StepIndex(n));
    let out = |stream, n, text: &str| LogLine::output(stream, step(n), text.into(), LineCut::Whole);
    let lines = [
        LogLine::zap(step(1), "step 1/2: ./paint"),
        out(Stream::Stdout, 1, "\x1b[31mred"),
        out(Stream::Stderr, 1, "an error, plain"),
        out(Stream::Stdout, 1, "still red\x1b[0m"),
        out(Stream::Stdout, 1, "plain"),
        out(
            Stream::Stdout,
            1,
            "\x1b]0;a title\x07\x1b[2J\x1b[Hcursor moves\x1b[1;34m left blue",
        ),
        out(Stream::Stdout, 1, "10%\r55%\rbar 100%"),
        LogLine::zap(step(1), "step 1 ok in 5ms"),
        LogLine::zap(step(2), "step 2/2: ./more"),
        out(Stream::Stdout, 2, "a new step, plain"),
    ];
    for line in lines {
        ring.push(line);
    }
    let snapshot = fleet_snapshot();
    let mut view = view(60, 16);
    view.screen = Screen::Job(id("web", "build", "n1"));
    let output = OutputWindow::copy(&ring, &view.output, view.body_rows());
    let terminal = draw(&snapshot, &view, &output, &[]);
    insta::assert_snapshot!(terminal.backend());
    // Cells without a colour of their own have the terminal's (Reset).
    let fg = |row: &str, piece: &str| cell_style(&terminal, row, piece).fg;
    assert_eq!(fg("  red", "r"), Some(Color::Red));
    assert_eq!(fg("still red", "s"), Some(Color::Red));
    assert_eq!(fg("an error", "a"), Some(Color::Reset));
    assert_eq!(fg("  plain", "p"), Some(Color::Reset));
    assert_eq!(fg("cursor moves", "c"), Some(Color::Reset));
    assert_eq!(fg("cursor moves", "b"), Some(Color::Blue));
    assert_eq!(fg("bar 100%", "b"), Some(Color::Blue));
    assert_eq!(fg("a new step", "a"), Some(Color::Reset));
}

#[test]
fn job_view_unwrapped_and_scrolled_sideways() {
    let snapshot = fleet_snapshot();
    let mut view = view(40, 10);
    view.screen = Screen::Job(id("web", "build", "n1"));
    view.output.wrap = false;
    view.output.sideways = 8;
    view.output.follow = false;
    view.output.top = 3;
    let output = OutputWindow::copy(&build_output(), &view.output, view.body_rows());
    let terminal = draw(&snapshot, &view, &output, &[]);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn help_lists_every_key_from_the_key_map() {
    let snapshot = fleet_snapshot();
    let mut view = view(100, 34);
    view.overlay = Some(Overlay::Help { scroll: 0 });
    let terminal = draw(&snapshot, &view, &OutputWindow::default(), &[]);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn quitting_asks_how_many_jobs_it_stops() {
    let snapshot = fleet_snapshot();
    let mut view = view(70, 12);
    view.settle(&snapshot);
    view.overlay = Some(Overlay::Confirm(Confirm::Quit {
        jobs: snapshot.counts.not_done,
    }));
    let terminal = draw(&snapshot, &view, &OutputWindow::default(), &[]);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn host_view_lists_the_hosts_jobs() {
    let snapshot = fleet_snapshot();
    let mut view = view(70, 10);
    view.screen = Screen::Host(HostName("n1".into()));
    let terminal = draw(&snapshot, &view, &OutputWindow::default(), &[]);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn tiny_terminals_do_not_panic() {
    let snapshot = fleet_snapshot();
    let ring = build_output();
    for (width, height) in [(1, 1), (5, 2), (10, 3), (20, 4), (3, 40)] {
        for screen in [
            Screen::Fleet,
            Screen::Job(id("web", "build", "n1")),
            Screen::Host(HostName("n1".into())),
        ] {
            for overlay in [
                None,
                Some(Overlay::Help { scroll: 3 }),
                Some(Overlay::Confirm(Confirm::KillAll { jobs: 2 })),
                Some(Overlay::SearchInput("x".into())),
            ] {
                let mut view = view(width, height);
                view.screen = screen.clone();
                view.overlay = overlay;
                let output = OutputWindow::copy(&ring, &view.output, view.body_rows());
                draw(&snapshot, &view, &output, &[]);
            }
        }
    }
}

#[test]
fn cpu_memory_and_processes_come_from_the_stats_poll() {
    use crate::stats::{HostStats, ProcessStats};
    let mut script = fleet();
    let process = |pid, ppid, comm: &str, cpu, rss| ProcessStats {
        pid,
        ppid,
        pgid: if pid == 2001 || ppid == 2001 || ppid == 2002 {
            2001
        } else {
            pid
        },
        sid: 0,
        state: 'S',
        comm: comm.into(),
        cpu_percent: cpu,
        rss_bytes: rss,
    };
    script.state.record_stats(HostStats {
        host: HostName("n1".into()),
        at: script.at(64_000),
        load: Some([0.52, 0.4, 0.31]),
        cpu_percent: Some(37.5),
        cores: Some(4),
        mem_used: Some(3 << 30),
        mem_total: Some(8 << 30),
        unavailable: None,
        processes: vec![
            process(1, 0, "init", Some(0.0), 4 << 20),
            process(1001, 1, "sh", Some(0.0), 2 << 20),
            process(1002, 1001, "postgres", Some(12.5), 120 << 20),
            process(2001, 1, "sh", Some(0.0), 2 << 20),
            process(2002, 2001, "api", Some(48.0), 64 << 20),
            process(2003, 2002, "api-worker", None, 30 << 20),
        ],
    });
    let n1 = HostName("n1".into());
    let snapshot = Snapshot::capture(&script.state, script.at(65_000), fleet_lines, Some(&n1));
    let mut fleet_view = view(110, 12);
    fleet_view.settle(&snapshot);
    let terminal = draw(&snapshot, &fleet_view, &OutputWindow::default(), &[]);
    insta::assert_snapshot!("stats_in_the_fleet", terminal.backend());
    let mut host_view = view(80, 14);
    host_view.screen = Screen::Host(n1);
    let terminal = draw(&snapshot, &host_view, &OutputWindow::default(), &[]);
    insta::assert_snapshot!("stats_in_the_host_view", terminal.backend());
}

#[test]
fn a_pty_job_followed_live_is_drawn_as_its_terminal() {
    let snapshot = fleet_snapshot();
    let mut view = view(50, 9);
    let id = id("web", "build", "n1");
    view.screen = Screen::Job(id.clone());
    let mut ring = Ring::new(100);
    let out = |text: &str| LogLine::output(Stream::Stdout, None, text.into(), LineCut::Whole);
    ring.push(LogLine::zap(None, "started: pid 7, process group 7"));
    ring.push(out("pulling web:latest"));
    ring.push(out("layer 1: 10%"));
    ring.push(out("layer 2: 0%"));
    // The program goes up two lines and redraws them, in colour.
    ring.push(out("\x1b[2A\x1b[2K\x1b[32mlayer 1: done\x1b[0m"));
    ring.push(out("\x1b[2Klayer 2: 40%"));
    let mut pty = crate::ui::pty::PtyView::new(id, view.body_rows(), 50);
    pty.feed(ring.since(pty.next()));
    let backend = TestBackend::new(view.width, view.height);
    let mut terminal = Terminal::new(backend).expect("test terminal");
    let frame = Frame {
        snapshot: &snapshot,
        view: &view,
        output: &OutputWindow::default(),
        failures: &[],
        status: None,
        terminal: Some(pty.screen()),
    };
    terminal
        .draw(|target| target.render_widget(&frame, target.area()))
        .expect("draw");
    insta::assert_snapshot!(terminal.backend());
    // vt100 keeps the 16 colours as indices: 2 is green.
    assert_eq!(
        cell_style(&terminal, "layer 1: done", "d").fg,
        Some(Color::Indexed(2))
    );
}

#[test]
fn a_disk_that_fails_the_logs_is_said_in_the_header_in_red() {
    let mut snapshot = fleet_snapshot();
    snapshot.log_trouble = Some("No space left on device (os error 28)".into());
    let mut view = view(140, 12);
    view.settle(&snapshot);
    let terminal = draw(&snapshot, &view, &OutputWindow::default(), &[]);
    let header: String = (0..140)
        .map(|x| terminal.backend().buffer()[(x, 0)].symbol().to_string())
        .collect();
    assert!(
        header.contains("logs not written to disk: No space left on device"),
        "{header}"
    );
    // "k" of "disk": the header has no other.
    assert_eq!(header.matches('k').count(), 1, "{header}");
    assert_eq!(cell_style(&terminal, "logs not", "k").fg, Some(Color::Red));
}
