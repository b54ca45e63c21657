//! `State::apply` driven by scripted events: no shells, no network, no sleeps.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::config::{self, SourceFile};
use crate::model::{HostName, Stream};
use crate::transport::decode::LineCut;

fn plan(jobs: &str) -> Plan {
    let sources = [SourceFile::new("jobs/web.toml", jobs)];
    config::load_sources(Path::new("/nowhere"), &sources).expect("valid config")
}

fn id(job: &str) -> InstanceId {
    InstanceId {
        job: JobName {
            system: "web".into(),
            job: job.into(),
        },
        host: HostName("local".into()),
    }
}

fn all(plan: &Plan) -> Vec<InstanceId> {
    plan.jobs.iter().map(|job| id(&job.name.job)).collect()
}

fn job(event: JobEvent) -> Event {
    Event::Job(event)
}

fn step(n: u32) -> StepIndex {
    StepIndex(n)
}

const THREE_STEPS: &str = "[jobs.a]\nhost = \"local\"\nsteps = [\"one\", \"two\", \"three\"]\n";

#[test]
fn a_failing_step_fails_the_job_and_skips_the_rest() {
    let plan = plan(THREE_STEPS);
    let mut state = State::new(&plan, &all(&plan));
    assert_eq!(state.begin(), [Effect::Start(id("a"))]);
    let t0 = Instant::now();
    let a = id("a");
    state.apply(&a, job(JobEvent::Spawned { pid: 42, pgid: 42 }), t0);
    state.apply(&a, job(JobEvent::StepStarted { step: step(1) }), t0);
    state.apply(
        &a,
        job(JobEvent::StepExited {
            step: step(1),
            code: 0,
        }),
        t0 + Duration::from_millis(5),
    );
    state.apply(
        &a,
        job(JobEvent::StepStarted { step: step(2) }),
        t0 + Duration::from_millis(5),
    );
    state.apply(
        &a,
        job(JobEvent::StepExited {
            step: step(2),
            code: 2,
        }),
        t0 + Duration::from_millis(50),
    );
    state.apply(
        &a,
        job(JobEvent::Ended {
            exit: ExitInfo::Code(2),
        }),
        t0 + Duration::from_millis(51),
    );
    let instance = state.instance(&a).expect("instance");
    assert_eq!(instance.pid, Some(42));
    assert_eq!(
        instance.phase,
        Phase::Done(Outcome::Failed {
            step: Some(step(2)),
            exit: ExitInfo::Code(2),
            reason: None
        })
    );
    let statuses: Vec<&StepStatus> = instance.steps.iter().map(|step| &step.status).collect();
    assert_eq!(
        statuses,
        [
            &StepStatus::Ok,
            &StepStatus::Failed(ExitInfo::Code(2)),
            &StepStatus::Skipped
        ]
    );
    assert_eq!(
        instance.steps[1].duration(),
        Some(Duration::from_millis(45))
    );
    assert!(state.all_done());
}

#[test]
fn a_shell_that_dies_mid_step_blames_that_step() {
    let plan = plan(THREE_STEPS);
    let mut state = State::new(&plan, &all(&plan));
    state.begin();
    let (a, now) = (id("a"), Instant::now());
    state.apply(&a, job(JobEvent::Spawned { pid: 7, pgid: 7 }), now);
    state.apply(&a, job(JobEvent::StepStarted { step: step(1) }), now);
    // `exit 3` inside step 1: no exit marker, the shell's status says it.
    state.apply(
        &a,
        job(JobEvent::Ended {
            exit: ExitInfo::Code(3),
        }),
        now,
    );
    let instance = state.instance(&a).expect("instance");
    assert_eq!(
        instance.steps[0].status,
        StepStatus::Failed(ExitInfo::Code(3))
    );
    assert!(matches!(
        instance.phase,
        Phase::Done(Outcome::Failed {
            step: Some(StepIndex(1)),
            ..
        })
    ));
}

#[test]
fn a_signal_death_is_killed_and_an_unknown_end_is_never_success() {
    for (exit, expected) in [
        (
            ExitInfo::Signal("KILL".into()),
            StepStatus::Killed("KILL".into()),
        ),
        (ExitInfo::Unknown, StepStatus::Failed(ExitInfo::Unknown)),
    ] {
        let plan = plan(THREE_STEPS);
        let mut state = State::new(&plan, &all(&plan));
        state.begin();
        let (a, now) = (id("a"), Instant::now());
        state.apply(&a, job(JobEvent::StepStarted { step: step(1) }), now);
        state.apply(&a, job(JobEvent::Ended { exit }), now);
        let instance = state.instance(&a).expect("instance");
        assert_eq!(instance.steps[0].status, expected);
        assert!(!matches!(instance.phase, Phase::Done(Outcome::Ok)));
    }
}

#[test]
fn a_job_waits_for_what_it_comes_after_and_starts_when_it_is_ready() {
    let plan = plan(
        "[jobs.db]\nhost = \"local\"\nsteps = [\"x\"]\nready = { log = \"accepting\" }\n\
         [jobs.app]\nhost = \"local\"\nafter = [\"db\"]\nsteps = [\"y\"]\n",
    );
    let mut state = State::new(&plan, &all(&plan));
    assert_eq!(state.begin(), [Effect::Start(id("db"))]);
    let app = state.instance(&id("app")).expect("app");
    assert_eq!(app.phase, Phase::Waiting(vec![id("db").job]));
    let now = Instant::now();
    let line = |text: &str| {
        job(JobEvent::Line {
            stream: Stream::Stdout,
            step: Some(step(1)),
            text: text.into(),
            cut: LineCut::Whole,
        })
    };
    assert!(state.apply(&id("db"), line("starting"), now).is_empty());
    assert_eq!(
        state.apply(&id("db"), line("accepting connections"), now),
        [Effect::Start(id("app"))]
    );
}

#[test]
fn a_dependency_that_fails_leaves_its_dependents_unstarted_with_the_reason() {
    let plan = plan(
        "[jobs.db]\nhost = \"local\"\nsteps = [\"x\"]\n\
         [jobs.app]\nhost = \"local\"\nafter = [\"db\"]\nsteps = [\"y\"]\n",
    );
    let mut state = State::new(&plan, &all(&plan));
    state.begin();
    let effects = state.apply(
        &id("db"),
        Event::Unreachable("no route".into()),
        Instant::now(),
    );
    assert!(effects.is_empty());
    let app = state.instance(&id("app")).expect("app");
    assert_eq!(
        app.phase,
        Phase::Done(Outcome::DependencyFailed(id("db").job))
    );
    assert_eq!(app.steps[0].status, StepStatus::Skipped);
}

#[test]
fn a_stop_for_a_timeout_fails_the_job_and_a_ctrl_c_only_stops_it() {
    for (counts_as_failure, failed) in [(true, true), (false, false)] {
        let plan = plan(THREE_STEPS);
        let mut state = State::new(&plan, &all(&plan));
        state.begin();
        let (a, now) = (id("a"), Instant::now());
        state.apply(&a, job(JobEvent::Spawned { pid: 9, pgid: 9 }), now);
        state.apply(&a, job(JobEvent::StepStarted { step: step(1) }), now);
        let stop = Event::StopRequested {
            reason: "why".into(),
            counts_as_failure,
        };
        state.apply(&a, stop, now);
        assert!(state.instance(&a).is_some_and(Instance::stop_requested));
        state.apply(
            &a,
            job(JobEvent::Ended {
                exit: ExitInfo::Signal("TERM".into()),
            }),
            now,
        );
        let instance = state.instance(&a).expect("instance");
        assert_eq!(instance.steps[0].status, StepStatus::Killed("TERM".into()));
        match &instance.phase {
            Phase::Done(Outcome::Failed { reason, .. }) => {
                assert!(failed);
                assert_eq!(reason.as_deref(), Some("why"));
            }
            Phase::Done(Outcome::Stopped(reason)) => {
                assert!(!failed);
                assert_eq!(reason, "why");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_job_that_finishes_as_it_is_being_stopped_still_counts_as_ok() {
    let plan = plan("[jobs.a]\nhost = \"local\"\nsteps = [\"one\"]\n");
    let mut state = State::new(&plan, &all(&plan));
    state.begin();
    let (a, now) = (id("a"), Instant::now());
    state.apply(&a, job(JobEvent::StepStarted { step: step(1) }), now);
    state.apply(
        &a,
        job(JobEvent::StepExited {
            step: step(1),
            code: 0,
        }),
        now,
    );
    let stop = Event::StopRequested {
        reason: "timed out".into(),
        counts_as_failure: true,
    };
    state.apply(&a, stop, now);
    state.apply(
        &a,
        job(JobEvent::Ended {
            exit: ExitInfo::Code(0),
        }),
        now,
    );
    assert_eq!(
        state.instance(&a).map(|i| &i.phase),
        Some(&Phase::Done(Outcome::Ok))
    );
}
