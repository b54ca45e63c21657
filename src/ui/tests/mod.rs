//! The UI without a terminal: key handling on the view model, and screens
//! drawn into ratatui's `TestBackend`, snapshotted with insta. States are
//! made as the supervisor makes them: a config loaded with
//! `config::load_sources`, then scripted events through `State::apply`.

mod keys;
mod render;

use std::path::Path;
use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::keys::Keymap;
use super::news::Failure;
use super::output::OutputWindow;
use super::render::Frame;
use super::snapshot::Snapshot;
use super::view::ViewModel;
use crate::config::{self, Plan, SourceFile};
use crate::model::{ExitInfo, HostName, InstanceId, JobName, StepIndex, Stream};
use crate::supervisor::{Event, Mode, State};
use crate::transport::decode::{JobEvent, LineCut};

const HOSTS: &str = "[hosts.n1]\naddress = \"10.0.0.1\"\n[hosts.n2]\naddress = \"10.0.0.2\"\n";

pub fn plan(systems: &[(&str, &str)]) -> Plan {
    let mut sources = vec![SourceFile::new("hosts.toml", HOSTS)];
    for (name, text) in systems {
        sources.push(SourceFile::new(format!("jobs/{name}.toml"), *text));
    }
    config::load_sources(Path::new("/nowhere"), &sources).expect("valid config")
}

pub fn id(system: &str, job: &str, host: &str) -> InstanceId {
    InstanceId {
        job: JobName {
            system: system.into(),
            job: job.into(),
        },
        host: HostName(host.into()),
    }
}

/// Every instance of every job, in plan order.
pub fn every(plan: &Plan) -> Vec<InstanceId> {
    plan.jobs
        .iter()
        .flat_map(|job| {
            job.hosts.iter().map(|host| InstanceId {
                job: job.name.clone(),
                host: host.clone(),
            })
        })
        .collect()
}

/// A `zap up` state with events applied at chosen times from `t0`.
pub struct Script {
    pub state: State,
    pub t0: Instant,
}

impl Script {
    pub fn up(plan: &Plan) -> Script {
        let mut state = State::new(plan, &every(plan), Mode::Up);
        state.begin();
        Script {
            state,
            t0: Instant::now(),
        }
    }

    pub fn at(&self, millis: u64) -> Instant {
        self.t0 + Duration::from_millis(millis)
    }

    pub fn apply(&mut self, id: &InstanceId, millis: u64, event: Event) {
        let generation = self.state.instance(id).map_or(0, |i| i.generation);
        let at = self.at(millis);
        self.state.apply(id, generation, &event, at);
    }

    pub fn job(&mut self, id: &InstanceId, millis: u64, event: JobEvent) {
        self.apply(id, millis, Event::Job(event));
    }

    pub fn spawn(&mut self, id: &InstanceId, millis: u64, pid: u32) {
        self.job(id, millis, JobEvent::Spawned { pid, pgid: pid });
    }

    pub fn step(&mut self, id: &InstanceId, millis: u64, step: u32) {
        self.job(
            id,
            millis,
            JobEvent::StepStarted {
                step: StepIndex(step),
            },
        );
    }

    pub fn step_exit(&mut self, id: &InstanceId, millis: u64, step: u32, code: i32) {
        self.job(
            id,
            millis,
            JobEvent::StepExited {
                step: StepIndex(step),
                code,
            },
        );
    }

    pub fn end(&mut self, id: &InstanceId, millis: u64, code: i32) {
        self.job(
            id,
            millis,
            JobEvent::Ended {
                exit: ExitInfo::Code(code),
            },
        );
    }

    pub fn line(&mut self, id: &InstanceId, millis: u64, step: u32, text: &str) {
        self.job(
            id,
            millis,
            JobEvent::Line {
                stream: Stream::Stdout,
                step: Some(StepIndex(step)),
                text: text.into(),
                cut: LineCut::Whole,
            },
        );
    }

    /// Runs steps `1..=steps` of `id` to exit 0, 10 ms each, from `millis`.
    pub fn steps_ok(&mut self, id: &InstanceId, millis: u64, steps: u32) {
        for step in 1..=steps {
            let start = millis + u64::from(step - 1) * 10;
            self.step(id, start, step);
            self.step_exit(id, start + 10, step, 0);
        }
    }

    /// The snapshot at `millis`, every instance with the line counts given.
    pub fn snapshot(&self, millis: u64, lines: impl Fn(&InstanceId) -> (u64, u64)) -> Snapshot {
        Snapshot::capture(&self.state, self.at(millis), lines, None)
    }
}

/// No lines seen anywhere.
pub fn no_lines(_: &InstanceId) -> (u64, u64) {
    (0, 0)
}

pub fn view(width: u16, height: u16) -> ViewModel {
    ViewModel::new(Keymap::default(), width, height)
}

/// What a frame draws on a `width`×`height` terminal.
pub fn draw(
    snapshot: &Snapshot,
    view: &ViewModel,
    output: &OutputWindow,
    failures: &[Failure],
) -> Terminal<TestBackend> {
    let backend = TestBackend::new(view.width, view.height);
    let mut terminal = Terminal::new(backend).expect("test terminal");
    let frame = Frame {
        snapshot,
        view,
        output,
        failures,
        status: None,
        terminal: None,
    };
    terminal
        .draw(|target| target.render_widget(&frame, target.area()))
        .expect("draw");
    terminal
}
