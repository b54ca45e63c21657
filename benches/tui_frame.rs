//! TUI frame time (issue 7, case 6): the fleet view of 1,000 job instances
//! (5 systems × 10 jobs × 20 hosts, each running step 1 of 3) drawn into a
//! 200×50 buffer, as the UI task does each frame. Two measurements:
//! `render` draws a snapshot taken once; `capture_and_render` also copies
//! the snapshot out of the supervisor's state first, as every frame does.
//!
//! `cargo bench --bench tui_frame` runs it (bench/run does, and reads
//! target/criterion/); `cargo test --bench tui_frame` only checks that it
//! runs. No hosts are needed: nothing connects.

use std::hint::black_box;
use std::path::Path;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;
use zap::config::{self, Plan, SourceFile};
use zap::model::{InstanceId, StepIndex};
use zap::supervisor::{Event, Mode, State};
use zap::transport::decode::JobEvent;
use zap::ui::Keymap;
use zap::ui::output::OutputWindow;
use zap::ui::render::Frame;
use zap::ui::snapshot::Snapshot;
use zap::ui::view::ViewModel;

const SYSTEMS: usize = 5;
const JOBS: usize = 10;
const HOSTS: usize = 20;
const WIDTH: u16 = 200;
const HEIGHT: u16 = 50;

/// The plan and a `zap up` state in which every instance runs step 1.
fn fleet() -> (Plan, State) {
    let mut hosts = String::new();
    for host in 1..=HOSTS {
        hosts.push_str(&format!(
            "[hosts.h{host}]\naddress = \"10.0.{}.{}\"\n",
            host / 250,
            host % 250 + 1
        ));
    }
    let list: Vec<String> = (1..=HOSTS).map(|host| format!("\"h{host}\"")).collect();
    let mut sources = vec![SourceFile::new("hosts.toml", hosts)];
    for system in 1..=SYSTEMS {
        let mut text = String::new();
        for job in 1..=JOBS {
            text.push_str(&format!(
                "[jobs.job{job}]\nhosts = [{}]\nsteps = [\"make fetch\", \"make build\", \"make serve\"]\n",
                list.join(", ")
            ));
        }
        sources.push(SourceFile::new(format!("jobs/system{system}.toml"), text));
    }
    let plan = match config::load_sources(Path::new("/nowhere"), &sources) {
        Ok(plan) => plan,
        Err(errors) => panic!("the bench's config is wrong: {errors}"),
    };
    let ids: Vec<InstanceId> = plan
        .jobs
        .iter()
        .flat_map(|job| {
            job.hosts.iter().map(|host| InstanceId {
                job: job.name.clone(),
                host: host.clone(),
            })
        })
        .collect();
    assert_eq!(ids.len(), SYSTEMS * JOBS * HOSTS);
    let mut state = State::new(&plan, &ids, Mode::Up);
    state.begin();
    let now = Instant::now();
    for (n, id) in ids.iter().enumerate() {
        let generation = state.instance(id).map_or(0, |instance| instance.generation);
        let pid = 1000 + u32::try_from(n).unwrap_or(0);
        for event in [
            Event::Job(JobEvent::Spawned { pid, pgid: pid }),
            Event::Job(JobEvent::StepStarted { step: StepIndex(1) }),
        ] {
            state.apply(id, generation, &event, now);
        }
    }
    (plan, state)
}

fn frame_time(c: &mut Criterion) {
    let (_plan, state) = fleet();
    let view = ViewModel::new(Keymap::default(), WIDTH, HEIGHT);
    let output = OutputWindow::default();
    let area = Rect::new(0, 0, WIDTH, HEIGHT);
    let mut buf = Buffer::empty(area);
    let lines = |_: &InstanceId| (120, 3);
    let now = Instant::now();
    let snapshot = Snapshot::capture(&state, now, lines, None);
    let rows = zap::ui::tree::rows(&snapshot, &view.fleet.folds).len();
    eprintln!(
        "tui_frame: {} instances, {rows} rows in the fleet tree",
        snapshot.instances.len()
    );

    let mut group = c.benchmark_group("fleet_1000");
    group.bench_function("render", |b| {
        b.iter(|| {
            buf.reset();
            let frame = Frame {
                snapshot: &snapshot,
                view: &view,
                output: &output,
                terminal: None,
                failures: &[],
                status: None,
            };
            (&frame).render(area, &mut buf);
            black_box(&buf);
        });
    });
    group.bench_function("capture_and_render", |b| {
        b.iter(|| {
            let snapshot = Snapshot::capture(&state, now, lines, None);
            buf.reset();
            let frame = Frame {
                snapshot: &snapshot,
                view: &view,
                output: &output,
                terminal: None,
                failures: &[],
                status: None,
            };
            (&frame).render(area, &mut buf);
            black_box(&buf);
        });
    });
    group.finish();
}

criterion_group!(benches, frame_time);
criterion_main!(benches);
