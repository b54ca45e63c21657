//! `State::apply` driven by scripted events: no shells, no network, no sleeps.

use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::config::{self, SourceFile};
use crate::model::Signal;
use crate::model::{HostName, Stream};
use crate::model::{JobName, StepIndex};
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

/// Most tests look only at effects: applies an owned event, keeps those.
trait Feed {
    fn feed(&mut self, id: &InstanceId, generation: u64, event: Event, now: Instant)
    -> Vec<Effect>;
}

impl Feed for State {
    fn feed(
        &mut self,
        id: &InstanceId,
        generation: u64,
        event: Event,
        now: Instant,
    ) -> Vec<Effect> {
        self.apply(id, generation, &event, now).effects
    }
}

fn job(event: JobEvent) -> Event {
    Event::Job(event)
}

fn start(job: &str) -> Effect {
    Effect::Start {
        id: id(job),
        generation: 1,
    }
}

fn step(n: u32) -> StepIndex {
    StepIndex(n)
}

const THREE_STEPS: &str = "[jobs.a]\nhost = \"local\"\nsteps = [\"one\", \"two\", \"three\"]\n";

#[test]
fn a_failing_step_fails_the_job_and_skips_the_rest() {
    let plan = plan(THREE_STEPS);
    let mut state = State::new(&plan, &all(&plan), Mode::Run);
    assert_eq!(state.begin().effects, [start("a")]);
    let t0 = Instant::now();
    let a = id("a");
    state.feed(&a, 1, job(JobEvent::Spawned { pid: 42, pgid: 42 }), t0);
    state.feed(&a, 1, job(JobEvent::StepStarted { step: step(1) }), t0);
    state.feed(
        &a,
        1,
        job(JobEvent::StepExited {
            step: step(1),
            code: 0,
        }),
        t0 + Duration::from_millis(5),
    );
    state.feed(
        &a,
        1,
        job(JobEvent::StepStarted { step: step(2) }),
        t0 + Duration::from_millis(5),
    );
    state.feed(
        &a,
        1,
        job(JobEvent::StepExited {
            step: step(2),
            code: 2,
        }),
        t0 + Duration::from_millis(50),
    );
    state.feed(
        &a,
        1,
        job(JobEvent::Ended {
            exit: ExitInfo::Code(2),
        }),
        t0 + Duration::from_millis(51),
    );
    let instance = state.instance(&a).expect("instance");
    assert_eq!(instance.pid, Some(42));
    assert_eq!(
        instance.phase(),
        &Phase::Done(Outcome::Failed {
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
    let mut state = State::new(&plan, &all(&plan), Mode::Run);
    state.begin();
    let (a, now) = (id("a"), Instant::now());
    state.feed(&a, 1, job(JobEvent::Spawned { pid: 7, pgid: 7 }), now);
    state.feed(&a, 1, job(JobEvent::StepStarted { step: step(1) }), now);
    // `exit 3` inside step 1: no exit marker, the shell's status says it.
    state.feed(
        &a,
        1,
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
        instance.phase(),
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
        let mut state = State::new(&plan, &all(&plan), Mode::Run);
        state.begin();
        let (a, now) = (id("a"), Instant::now());
        state.feed(&a, 1, job(JobEvent::StepStarted { step: step(1) }), now);
        state.feed(&a, 1, job(JobEvent::Ended { exit }), now);
        let instance = state.instance(&a).expect("instance");
        assert_eq!(instance.steps[0].status, expected);
        assert!(!matches!(instance.phase(), Phase::Done(Outcome::Ok)));
    }
}

#[test]
fn a_job_waits_for_what_it_comes_after_and_starts_when_it_is_ready() {
    let plan = plan(
        "[jobs.db]\nhost = \"local\"\nsteps = [\"x\"]\nready = { log = \"accepting\" }\n\
         [jobs.app]\nhost = \"local\"\nafter = [\"db\"]\nsteps = [\"y\"]\n",
    );
    let mut state = State::new(&plan, &all(&plan), Mode::Run);
    assert_eq!(state.begin().effects, [start("db")]);
    let app = state.instance(&id("app")).expect("app");
    assert_eq!(
        app.phase(),
        &Phase::Waiting {
            on: vec![id("db").job],
            reason: "waiting for web.db".into()
        }
    );
    let now = Instant::now();
    let line = |text: &str| {
        job(JobEvent::Line {
            stream: Stream::Stdout,
            step: Some(step(1)),
            text: text.into(),
            cut: LineCut::Whole,
        })
    };
    assert!(state.feed(&id("db"), 1, line("starting"), now).is_empty());
    assert_eq!(
        state.feed(&id("db"), 1, line("accepting connections"), now),
        [start("app")]
    );
}

#[test]
fn a_dependency_that_fails_leaves_its_dependents_unstarted_with_the_reason() {
    let plan = plan(
        "[jobs.db]\nhost = \"local\"\nsteps = [\"x\"]\n\
         [jobs.app]\nhost = \"local\"\nafter = [\"db\"]\nsteps = [\"y\"]\n",
    );
    let mut state = State::new(&plan, &all(&plan), Mode::Run);
    state.begin();
    let effects = state.feed(
        &id("db"),
        1,
        Event::Unreachable("no route".into()),
        Instant::now(),
    );
    assert!(effects.is_empty());
    let app = state.instance(&id("app")).expect("app");
    assert_eq!(
        app.phase(),
        &Phase::Done(Outcome::DependencyFailed(id("db").job))
    );
    assert_eq!(app.steps[0].status, StepStatus::Skipped);
}

#[test]
fn a_stop_for_a_timeout_fails_the_job_and_a_ctrl_c_only_stops_it() {
    for (counts_as_failure, failed) in [(true, true), (false, false)] {
        let plan = plan(THREE_STEPS);
        let mut state = State::new(&plan, &all(&plan), Mode::Run);
        state.begin();
        let (a, now) = (id("a"), Instant::now());
        state.feed(&a, 1, job(JobEvent::Spawned { pid: 9, pgid: 9 }), now);
        state.feed(&a, 1, job(JobEvent::StepStarted { step: step(1) }), now);
        let stop = Event::Stop {
            reason: "why".into(),
            counts_as_failure,
        };
        state.feed(&a, 1, stop, now);
        assert!(state.instance(&a).is_some_and(Instance::stop_requested));
        state.feed(
            &a,
            1,
            job(JobEvent::Ended {
                exit: ExitInfo::Signal("TERM".into()),
            }),
            now,
        );
        let instance = state.instance(&a).expect("instance");
        assert_eq!(instance.steps[0].status, StepStatus::Killed("TERM".into()));
        match &instance.phase() {
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
    let mut state = State::new(&plan, &all(&plan), Mode::Run);
    state.begin();
    let (a, now) = (id("a"), Instant::now());
    state.feed(&a, 1, job(JobEvent::StepStarted { step: step(1) }), now);
    state.feed(
        &a,
        1,
        job(JobEvent::StepExited {
            step: step(1),
            code: 0,
        }),
        now,
    );
    let stop = Event::Stop {
        reason: "timed out".into(),
        counts_as_failure: true,
    };
    state.feed(&a, 1, stop, now);
    state.feed(
        &a,
        1,
        job(JobEvent::Ended {
            exit: ExitInfo::Code(0),
        }),
        now,
    );
    assert_eq!(
        state.instance(&a).map(|i| i.phase()),
        Some(&Phase::Done(Outcome::Ok))
    );
}

// ---- zap up: policies, backoff, dependencies, stop order ----

fn up(jobs: &str) -> (Plan, State) {
    let plan = plan(jobs);
    let state = State::new(&plan, &all(&plan), Mode::Up);
    (plan, state)
}

/// Runs instance `name`'s current generation to an end with `code`.
fn run_to_end(state: &mut State, name: &str, code: i32, at: Instant) -> Vec<Effect> {
    let a = id(name);
    let generation = state.instance(&a).expect("instance").generation;
    state.feed(
        &a,
        generation,
        job(JobEvent::Spawned {
            pid: 100,
            pgid: 100,
        }),
        at,
    );
    state.feed(
        &a,
        generation,
        job(JobEvent::StepStarted { step: step(1) }),
        at,
    );
    state.feed(
        &a,
        generation,
        job(JobEvent::StepExited {
            step: step(1),
            code,
        }),
        at,
    );
    state.feed(
        &a,
        generation,
        job(JobEvent::Ended {
            exit: ExitInfo::Code(code),
        }),
        at,
    )
}

fn wakes(effects: &[Effect]) -> Vec<(Duration, Wake)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Wake { after, why, .. } => Some((*after, *why)),
            _ => None,
        })
        .collect()
}

fn wake_now(state: &mut State, name: &str, why: Wake, at: Instant) -> Vec<Effect> {
    let generation = state.instance(&id(name)).expect("instance").generation;
    state.feed(&id(name), generation, Event::Wake(why), at)
}

const FLAKY: &str = "[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\nrestart = \"on-failure\"\n\
                     backoff = { initial = \"1s\", max = \"4s\" }\n";

#[test]
fn on_failure_restarts_with_doubling_capped_backoff() {
    let (_, mut state) = up(FLAKY);
    state.begin();
    let mut now = Instant::now();
    let mut delays = Vec::new();
    for _ in 0..4 {
        let effects = run_to_end(&mut state, "a", 1, now);
        let (delay, why) = wakes(&effects)[0];
        assert_eq!(why, Wake::BackoffOver);
        delays.push(delay.as_secs());
        assert!(matches!(
            state.instance(&id("a")).map(|i| i.phase()),
            Some(Phase::Backoff { .. })
        ));
        now += delay;
        let effects = wake_now(&mut state, "a", Wake::BackoffOver, now);
        assert!(matches!(effects[0], Effect::Start { .. }), "{effects:?}");
    }
    assert_eq!(delays, [1, 2, 4, 4]);
    assert_eq!(state.instance(&id("a")).map(|i| i.restarts), Some(4));
}

#[test]
fn the_last_exit_stays_visible_but_is_not_the_current_state() {
    let (_, mut state) = up(FLAKY);
    state.begin();
    let now = Instant::now();
    run_to_end(&mut state, "a", 3, now);
    wake_now(
        &mut state,
        "a",
        Wake::BackoffOver,
        now + Duration::from_secs(1),
    );
    let a = id("a");
    let generation = state.instance(&a).expect("a").generation;
    state.feed(
        &a,
        generation,
        job(JobEvent::Spawned { pid: 5, pgid: 5 }),
        now,
    );
    let instance = state.instance(&a).expect("a");
    assert_eq!(instance.phase(), &Phase::Running);
    assert_eq!(
        instance.last_run,
        Some(LastRun {
            step: Some(step(1)),
            exit: ExitInfo::Code(3)
        })
    );
    assert!(
        instance
            .steps
            .iter()
            .all(|step| step.status == StepStatus::Pending)
    );
}

#[test]
fn a_job_that_stayed_up_a_minute_starts_its_backoff_over() {
    let (_, mut state) = up(FLAKY);
    state.begin();
    let mut now = Instant::now();
    for _ in 0..3 {
        run_to_end(&mut state, "a", 1, now);
        now += Duration::from_secs(5);
        wake_now(&mut state, "a", Wake::BackoffOver, now);
    }
    let a = id("a");
    let generation = state.instance(&a).expect("a").generation;
    state.feed(
        &a,
        generation,
        job(JobEvent::Spawned { pid: 1, pgid: 1 }),
        now,
    );
    now += BACKOFF_RESET_AFTER;
    let effects = state.feed(
        &a,
        generation,
        job(JobEvent::Ended {
            exit: ExitInfo::Code(1),
        }),
        now,
    );
    assert_eq!(wakes(&effects)[0].0, Duration::from_secs(1));
}

#[test]
fn max_restarts_then_failed_with_the_reason() {
    let (_, mut state) = up(&format!("{FLAKY}max_restarts = 2\n"));
    state.begin();
    let mut now = Instant::now();
    for _ in 0..2 {
        run_to_end(&mut state, "a", 1, now);
        now += Duration::from_secs(10);
        wake_now(&mut state, "a", Wake::BackoffOver, now);
    }
    let effects = run_to_end(&mut state, "a", 1, now);
    assert!(effects.is_empty(), "{effects:?}");
    match state.instance(&id("a")).expect("a").phase() {
        Phase::Done(Outcome::Failed {
            reason: Some(reason),
            ..
        }) => {
            assert_eq!(reason, "gave up after 2 restarts (max_restarts)");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn policies_never_and_always() {
    let (_, mut state) = up("[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\n");
    state.begin();
    run_to_end(&mut state, "a", 1, Instant::now());
    assert!(matches!(
        state.instance(&id("a")).map(|i| i.phase()),
        Some(Phase::Done(Outcome::Failed { .. }))
    ));

    let (_, mut state) = up("[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\nrestart = \"always\"\n");
    state.begin();
    let effects = run_to_end(&mut state, "a", 0, Instant::now());
    assert_eq!(
        wakes(&effects)[0].1,
        Wake::BackoffOver,
        "a clean exit restarts too"
    );

    let (_, mut state) =
        up("[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\nrestart = \"on-failure\"\n");
    state.begin();
    let effects = run_to_end(&mut state, "a", 0, Instant::now());
    assert!(effects.is_empty());
    assert_eq!(
        state.instance(&id("a")).map(|i| i.phase()),
        Some(&Phase::Done(Outcome::Ok))
    );
}

#[test]
fn restart_on_output_stops_the_group_and_starts_again_after_the_backoff() {
    let (_, mut state) = up(
        "[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\nmax_restarts = 2\n\
         backoff = { initial = \"1s\", max = \"8s\" }\n",
    );
    state.begin();
    let mut now = Instant::now();
    let a = id("a");
    let mut delays = Vec::new();
    for generation in 1..=3 {
        let pid = 70 + u32::try_from(generation).expect("small");
        state.feed(
            &a,
            generation,
            job(JobEvent::Spawned { pid, pgid: pid }),
            now,
        );
        let line = job(JobEvent::Line {
            stream: Stream::Stdout,
            step: Some(step(1)),
            text: "config changed %restart".into(),
            cut: LineCut::Whole,
        });
        let effects = state.feed(&a, generation, line, now);
        assert!(effects.contains(&Effect::Signal {
            id: a.clone(),
            pgid: pid,
            signal: Signal::Term
        }));
        let ended = job(JobEvent::Ended {
            exit: ExitInfo::Signal("TERM".into()),
        });
        let effects = state.feed(&a, generation, ended, now);
        let Some(Phase::Backoff { until }) = state.instance(&a).map(|i| i.phase().clone()) else {
            break;
        };
        assert_eq!(
            wakes(&effects),
            [(until.duration_since(now), Wake::BackoffOver)]
        );
        delays.push(until.duration_since(now));
        now = until;
        state.feed(&a, generation, Event::Wake(Wake::BackoffOver), now);
    }
    assert_eq!(delays, [Duration::from_secs(1), Duration::from_secs(2)]);
    match state.instance(&a).map(|i| i.phase()) {
        Some(Phase::Done(Outcome::Failed { reason, .. })) => assert_eq!(
            reason.as_deref(),
            Some("gave up after 2 restarts (max_restarts)")
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_start_asked_while_stopping_starts_once_the_stop_is_over() {
    let (_, mut state) = up("[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\n");
    state.begin();
    let (a, now) = (id("a"), Instant::now());
    state.feed(&a, 1, job(JobEvent::Spawned { pid: 9, pgid: 9 }), now);
    let stop = Event::Stop {
        reason: "zap stop".into(),
        counts_as_failure: false,
    };
    state.feed(&a, 1, stop, now);
    assert!(state.feed(&a, 1, Event::Start, now).is_empty());
    let ended = job(JobEvent::Ended {
        exit: ExitInfo::Signal("TERM".into()),
    });
    let effects = state.feed(&a, 1, ended, now);
    assert_eq!(
        effects,
        [Effect::Start {
            id: a.clone(),
            generation: 2
        }]
    );
}

#[test]
fn a_stop_that_is_ignored_ends_in_kill_after_the_grace() {
    let (_, mut state) = up(
        "[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\nstop = { signal = \"INT\", timeout = \"3s\" }\n",
    );
    state.begin();
    let (a, now) = (id("a"), Instant::now());
    state.feed(&a, 1, job(JobEvent::Spawned { pid: 8, pgid: 8 }), now);
    let stop = Event::Stop {
        reason: "zap stop".into(),
        counts_as_failure: false,
    };
    let effects = state.feed(&a, 1, stop, now);
    assert!(effects.contains(&Effect::Signal {
        id: a.clone(),
        pgid: 8,
        signal: Signal::Int
    }));
    assert_eq!(
        wakes(&effects),
        [(Duration::from_secs(3), Wake::StopGraceOver)]
    );
    let effects = wake_now(
        &mut state,
        "a",
        Wake::StopGraceOver,
        now + Duration::from_secs(3),
    );
    assert_eq!(
        effects,
        [
            Effect::Signal {
                id: a.clone(),
                pgid: 8,
                signal: Signal::Kill
            },
            Effect::SignalMarked {
                id: a.clone(),
                generation: 1,
                signal: Signal::Kill,
                spare: None
            },
            Effect::Wake {
                id: a.clone(),
                generation: 1,
                after: KILL_GRACE,
                why: Wake::KillGraceOver
            }
        ]
    );
    state.feed(
        &a,
        1,
        job(JobEvent::Ended {
            exit: ExitInfo::Signal("KILL".into()),
        }),
        now,
    );
    assert_eq!(
        state.instance(&a).map(|i| i.phase()),
        Some(&Phase::Done(Outcome::Stopped("zap stop".into())))
    );
    // The grace's timer, late, finds the job stopped: nothing happens.
    let late = wake_now(&mut state, "a", Wake::KillGraceOver, now + KILL_GRACE);
    assert!(late.is_empty());
}

#[test]
fn a_stop_ends_after_kill_and_its_grace_though_a_child_holds_the_output_open() {
    let (_, mut state) =
        up("[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\nstop = { timeout = \"2s\" }\n");
    state.begin();
    let (a, now) = (id("a"), Instant::now());
    state.feed(&a, 1, job(JobEvent::Spawned { pid: 8, pgid: 8 }), now);
    state.feed(&a, 1, job(JobEvent::StepStarted { step: step(1) }), now);
    let stop = Event::Stop {
        reason: "zap stop".into(),
        counts_as_failure: false,
    };
    state.feed(&a, 1, stop, now);
    let grace = now + Duration::from_secs(2);
    wake_now(&mut state, "a", Wake::StopGraceOver, grace);
    // No Ended ever comes: a `setsid` child keeps the channel open.
    let applied = state.apply(&a, 1, &Event::Wake(Wake::KillGraceOver), grace + KILL_GRACE);
    assert!(applied.effects.is_empty());
    assert!(
        applied
            .changes
            .iter()
            .any(|change| change.what == What::ShellGone { pid: 8, pgid: 8 })
    );
    let instance = state.instance(&a).expect("a");
    assert_eq!(
        instance.phase(),
        &Phase::Done(Outcome::Stopped("zap stop".into()))
    );
    assert_eq!(instance.steps[0].status, StepStatus::Killed("KILL".into()));
}

#[test]
fn restart_every_schedules_a_restart() {
    let (_, mut state) =
        up("[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\nrestart_every = \"12h\"\n");
    state.begin();
    let (a, now) = (id("a"), Instant::now());
    let effects = state.feed(&a, 1, job(JobEvent::Spawned { pid: 9, pgid: 9 }), now);
    assert_eq!(
        wakes(&effects),
        [(Duration::from_secs(12 * 3600), Wake::ScheduledRestart)]
    );
    let effects = wake_now(&mut state, "a", Wake::ScheduledRestart, now);
    assert!(effects.contains(&Effect::Signal {
        id: a.clone(),
        pgid: 9,
        signal: Signal::Term
    }));
}

#[test]
fn events_of_an_older_run_are_ignored() {
    let (_, mut state) = up(FLAKY);
    state.begin();
    let now = Instant::now();
    run_to_end(&mut state, "a", 1, now);
    wake_now(
        &mut state,
        "a",
        Wake::BackoffOver,
        now + Duration::from_secs(1),
    );
    let a = id("a");
    // A late line or timer from run 1 while run 2 starts.
    let effects = state.feed(&a, 1, Event::Wake(Wake::StopGraceOver), now);
    assert!(effects.is_empty());
    state.feed(
        &a,
        1,
        job(JobEvent::Ended {
            exit: ExitInfo::Code(9),
        }),
        now,
    );
    assert_eq!(
        state.instance(&a).map(|i| i.phase()),
        Some(&Phase::Starting)
    );
}

const DB_AND_APP: &str = "[jobs.db]\nhost = \"local\"\nsteps = [\"x\"]\nready = { log = \"ready\" }\n\
                          restart = \"on-failure\"\n\
                          [jobs.app]\nhost = \"local\"\nafter = [\"db\"]\nsteps = [\"y\"]\n";

fn say(state: &mut State, name: &str, text: &str) -> Vec<Effect> {
    let generation = state.instance(&id(name)).expect("instance").generation;
    let line = job(JobEvent::Line {
        stream: Stream::Stdout,
        step: Some(step(1)),
        text: text.into(),
        cut: LineCut::Whole,
    });
    state.feed(&id(name), generation, line, Instant::now())
}

#[test]
fn a_failed_dependency_leaves_dependents_waiting_with_the_reason() {
    let (_, mut state) = up(DB_AND_APP);
    state.begin();
    run_to_end(&mut state, "db", 1, Instant::now());
    let app = state.instance(&id("app")).expect("app");
    assert!(matches!(
        app.phase(),
        Phase::Waiting { reason, .. } if reason == "waiting for web.db, which is restarting"
    ));
}

#[test]
fn a_dependency_restarting_does_not_touch_its_running_dependents() {
    let (_, mut state) = up(DB_AND_APP);
    state.begin();
    let now = Instant::now();
    state.feed(
        &id("db"),
        1,
        job(JobEvent::Spawned { pid: 1, pgid: 1 }),
        now,
    );
    let effects = say(&mut state, "db", "ready");
    assert_eq!(
        effects,
        [Effect::Start {
            id: id("app"),
            generation: 1
        }]
    );
    state.feed(
        &id("app"),
        1,
        job(JobEvent::Spawned { pid: 2, pgid: 2 }),
        now,
    );
    let effects = state.feed(
        &id("db"),
        1,
        job(JobEvent::Ended {
            exit: ExitInfo::Code(1),
        }),
        now,
    );
    assert!(
        effects
            .iter()
            .all(|effect| !matches!(effect, Effect::Signal { .. })),
        "{effects:?}"
    );
    assert_eq!(
        state.instance(&id("app")).map(|i| i.phase()),
        Some(&Phase::Running)
    );
}

#[test]
fn shutting_down_stops_dependents_before_what_they_depend_on() {
    let (_, mut state) = up(DB_AND_APP);
    state.begin();
    let now = Instant::now();
    state.feed(
        &id("db"),
        1,
        job(JobEvent::Spawned { pid: 1, pgid: 1 }),
        now,
    );
    say(&mut state, "db", "ready");
    state.feed(
        &id("app"),
        1,
        job(JobEvent::Spawned { pid: 2, pgid: 2 }),
        now,
    );
    let effects = state.shut_down("stopped by Ctrl+C", false, now).effects;
    let signalled: Vec<u32> = effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Signal { pgid, .. } => Some(*pgid),
            _ => None,
        })
        .collect();
    assert_eq!(signalled, [2], "only the dependent first");
    let effects = state.feed(
        &id("app"),
        1,
        job(JobEvent::Ended {
            exit: ExitInfo::Signal("TERM".into()),
        }),
        now,
    );
    assert!(effects.contains(&Effect::Signal {
        id: id("db"),
        pgid: 1,
        signal: Signal::Term
    }));
    assert!(!state.all_done());
    state.feed(
        &id("db"),
        1,
        job(JobEvent::Ended {
            exit: ExitInfo::Signal("TERM".into()),
        }),
        now,
    );
    assert!(state.all_done());
    assert_eq!(
        state.instance(&id("db")).map(|i| i.phase()),
        Some(&Phase::Done(Outcome::Stopped("stopped by Ctrl+C".into())))
    );
}

#[test]
fn a_lost_host_makes_its_jobs_lost_until_it_is_back() {
    let (_, mut state) =
        up("[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\nrestart = \"on-failure\"\n");
    state.begin();
    let (a, now) = (id("a"), Instant::now());
    state.feed(&a, 1, job(JobEvent::Spawned { pid: 3, pgid: 3 }), now);
    state.feed(&a, 1, Event::HostLost("keepalive timeout".into()), now);
    let instance = state.instance(&a).expect("a");
    assert_eq!(
        instance.phase(),
        &Phase::Lost {
            reason: "keepalive timeout".into()
        }
    );
    let effects = state.feed(&a, 1, Event::HostBack, now);
    assert_eq!(
        effects,
        [Effect::Start {
            id: a.clone(),
            generation: 2
        }]
    );
}

#[test]
fn a_probe_decides_readiness_and_is_retried_until_it_passes() {
    let (_, mut state) = up(
        "[jobs.web]\nhost = \"local\"\nsteps = [\"x\"]\nready = { probe = \"curl -fs localhost\", every = \"2s\" }\n\
         [jobs.check]\nhost = \"local\"\nafter = [\"web\"]\nsteps = [\"y\"]\n",
    );
    state.begin();
    let (web, now) = (id("web"), Instant::now());
    let effects = state.feed(&web, 1, job(JobEvent::Spawned { pid: 4, pgid: 4 }), now);
    assert!(effects.contains(&Effect::Probe {
        id: web.clone(),
        generation: 1,
        command: "curl -fs localhost".into()
    }));
    let effects = state.feed(&web, 1, Event::ProbeDone(false), now);
    assert_eq!(wakes(&effects), [(Duration::from_secs(2), Wake::Probe)]);
    let effects = wake_now(&mut state, "web", Wake::Probe, now);
    assert!(matches!(effects[0], Effect::Probe { .. }));
    let effects = state.feed(&web, 1, Event::ProbeDone(true), now);
    assert_eq!(
        effects,
        [Effect::Start {
            id: id("check"),
            generation: 1
        }]
    );
}

// ---- fixups ----

const HEALABLE: &str = "[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\n\
                        [[jobs.a.fixup]]\nwhen = 'name \"(?P<name>[^\"]+)\" is in use'\nrun = \"podman rm -f {name}\"\n\
                        max = 2\n";

fn remedies(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Remedy { remedy, .. } => Some(remedy.command.clone()),
            _ => None,
        })
        .collect()
}

/// Starts the current run of `a` and has it print `text` on stderr.
fn print_in_run(state: &mut State, text: &str, at: Instant) -> Vec<Effect> {
    let a = id("a");
    let generation = state.instance(&a).expect("a").generation;
    state.feed(
        &a,
        generation,
        job(JobEvent::Spawned { pid: 50, pgid: 50 }),
        at,
    );
    let line = job(JobEvent::Line {
        stream: Stream::Stderr,
        step: Some(step(1)),
        text: text.into(),
        cut: LineCut::Whole,
    });
    state.feed(&a, generation, line, at)
}

fn end_run(state: &mut State, exit: ExitInfo, at: Instant) -> Vec<Effect> {
    let a = id("a");
    let generation = state.instance(&a).expect("a").generation;
    state.feed(&a, generation, job(JobEvent::Ended { exit }), at)
}

fn remedy_done(state: &mut State, code: i32, at: Instant) -> Vec<Effect> {
    let a = id("a");
    let generation = state.instance(&a).expect("a").generation;
    let done = Event::RemedyDone {
        exit: ExitInfo::Code(code),
        output: String::new(),
    };
    state.feed(&a, generation, done, at)
}

#[test]
fn a_matching_line_stops_the_job_runs_the_remedy_then_starts_it_again() {
    for mode in [Mode::Run, Mode::Up] {
        let plan = plan(HEALABLE);
        let mut state = State::new(&plan, &all(&plan), mode);
        state.begin();
        let now = Instant::now();
        let effects = print_in_run(&mut state, "Error: name \"web 1\" is in use", now);
        assert!(
            effects.contains(&Effect::Signal {
                id: id("a"),
                pgid: 50,
                signal: Signal::Term
            }),
            "the job is stopped before the remedy runs: {effects:?}"
        );
        assert!(
            remedies(&effects).is_empty(),
            "the remedy never races the job"
        );
        let effects = end_run(&mut state, ExitInfo::Signal("TERM".into()), now);
        assert_eq!(remedies(&effects), ["podman rm -f 'web 1'"]);
        assert!(matches!(
            state.instance(&id("a")).map(|i| i.phase()),
            Some(Phase::Fixing { .. })
        ));
        let effects = remedy_done(&mut state, 0, now);
        assert_eq!(
            effects,
            [Effect::Start {
                id: id("a"),
                generation: 2
            }]
        );
        let instance = state.instance(&id("a")).expect("a");
        assert_eq!(
            instance.fixups,
            [FixupRecord {
                rule: "job/1".into(),
                command: "podman rm -f 'web 1'".into(),
                exit: Some(ExitInfo::Code(0)),
                healed: true,
            }]
        );
        assert_eq!(instance.restarts, 1);
    }
}

#[test]
fn after_max_attempts_the_job_fails_with_the_fixup_named() {
    let (_, mut state) = up(HEALABLE);
    state.begin();
    let now = Instant::now();
    for _ in 0..2 {
        print_in_run(&mut state, "name \"db\" is in use", now);
        end_run(&mut state, ExitInfo::Signal("TERM".into()), now);
        remedy_done(&mut state, 1, now);
    }
    let effects = print_in_run(&mut state, "name \"db\" is in use", now);
    assert!(
        effects
            .iter()
            .any(|effect| matches!(effect, Effect::Signal { .. }))
    );
    end_run(&mut state, ExitInfo::Signal("TERM".into()), now);
    let instance = state.instance(&id("a")).expect("a");
    match &instance.phase() {
        Phase::Done(Outcome::Failed {
            reason: Some(reason),
            ..
        }) => {
            assert_eq!(reason, "fixup job/1 did not heal it after 2 tries");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        instance.fixups.iter().all(|fixup| !fixup.healed),
        "ok_exit is [0]"
    );
}

#[test]
fn a_rule_with_an_exit_code_fires_when_the_job_ends_with_it() {
    let (_, mut state) = up("[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\n\
         [[jobs.a.fixup]]\nwhen = 'already exists'\nexit = [125]\nrun = \"cleanup\"\n");
    state.begin();
    let now = Instant::now();
    let effects = print_in_run(&mut state, "Error: already exists", now);
    assert!(effects.is_empty(), "waits for the exit code: {effects:?}");
    let effects = end_run(&mut state, ExitInfo::Code(125), now);
    assert_eq!(remedies(&effects), ["cleanup"]);
}

#[test]
fn a_cooldown_delays_the_next_remedy() {
    let (_, mut state) = up(&format!("{HEALABLE}cooldown = \"30s\"\n"));
    state.begin();
    let now = Instant::now();
    print_in_run(&mut state, "name \"db\" is in use", now);
    end_run(&mut state, ExitInfo::Signal("TERM".into()), now);
    remedy_done(&mut state, 0, now);
    print_in_run(&mut state, "name \"db\" is in use", now);
    let effects = end_run(
        &mut state,
        ExitInfo::Signal("TERM".into()),
        now + Duration::from_secs(10),
    );
    assert!(remedies(&effects).is_empty());
    assert_eq!(
        wakes(&effects),
        [(Duration::from_secs(20), Wake::RemedyDue)]
    );
    let effects = wake_now(
        &mut state,
        "a",
        Wake::RemedyDue,
        now + Duration::from_secs(30),
    );
    assert_eq!(remedies(&effects), ["podman rm -f db"]);
}

/// Job `a` of `jobs` under `zap up`, spawned and then lost with its host
/// ("keepalive timeout").
fn lost_with_its_host(jobs: &str) -> (State, InstanceId, Instant) {
    let (_, mut state) = up(jobs);
    state.begin();
    let (a, now) = (id("a"), Instant::now());
    state.feed(&a, 1, job(JobEvent::Spawned { pid: 3, pgid: 3 }), now);
    state.feed(&a, 1, Event::HostLost("keepalive timeout".into()), now);
    (state, a, now)
}

#[test]
fn a_job_lost_with_its_host_under_restart_never_stays_down_with_the_reason() {
    let (mut state, a, now) = lost_with_its_host("[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\n");
    assert_eq!(
        state.instance(&a).map(|i| i.phase()),
        Some(&Phase::Lost {
            reason: "keepalive timeout".into()
        })
    );
    let effects = state.feed(&a, 1, Event::HostBack, now);
    assert!(effects.is_empty());
    match state.instance(&a).expect("a").phase() {
        Phase::Done(Outcome::Failed {
            reason: Some(reason),
            ..
        }) => {
            assert!(
                reason.starts_with("lost with its host (keepalive timeout)"),
                "{reason}"
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_second_interrupt_kills_every_live_group_at_once() {
    let (_, mut state) = up(DB_AND_APP);
    state.begin();
    let now = Instant::now();
    state.feed(
        &id("db"),
        1,
        job(JobEvent::Spawned { pid: 5, pgid: 5 }),
        now,
    );
    state.feed(
        &id("db"),
        1,
        job(JobEvent::Line {
            stream: Stream::Stdout,
            step: Some(step(1)),
            text: "ready".into(),
            cut: LineCut::Whole,
        }),
        now,
    );
    state.feed(
        &id("app"),
        1,
        job(JobEvent::Spawned { pid: 6, pgid: 6 }),
        now,
    );
    let (first, stopped) = state.interrupt("stopped by Ctrl+C", now);
    assert_eq!(first, Interrupt::StopsInOrder);
    // In order: the dependent first, what it depends on once it is gone.
    let signalled: Vec<u32> = stopped
        .effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Signal { pgid, .. } => Some(*pgid),
            _ => None,
        })
        .collect();
    assert_eq!(signalled, [6]);
    let (again, killed) = state.interrupt("stopped by Ctrl+C", now);
    assert_eq!(again, Interrupt::KillsNow);
    assert_eq!(
        killed.effects,
        [
            Effect::Signal {
                id: id("db"),
                pgid: 5,
                signal: Signal::Kill
            },
            Effect::SignalMarked {
                id: id("db"),
                generation: 1,
                signal: Signal::Kill,
                spare: None
            },
            Effect::Signal {
                id: id("app"),
                pgid: 6,
                signal: Signal::Kill
            },
            Effect::SignalMarked {
                id: id("app"),
                generation: 1,
                signal: Signal::Kill,
                spare: None
            }
        ]
    );
}

#[test]
fn a_failed_reconnect_keeps_why_the_job_was_lost_and_says_the_latest_answer() {
    let (mut state, a, now) =
        lost_with_its_host("[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\nrestart = \"always\"\n");
    for latest in ["connection refused", "timed out after 10s"] {
        let event = Event::StillLost(format!("reconnecting: {latest}"));
        state.feed(&a, 1, event, now);
        assert_eq!(
            state.instance(&a).map(|i| i.phase()),
            Some(&Phase::Lost {
                reason: format!("keepalive timeout; reconnecting: {latest}")
            })
        );
    }
    let refused = Event::Refused("reconnecting: the host key changed".into());
    state.feed(&a, 1, refused, now);
    assert_eq!(
        state.instance(&a).map(|i| i.kind()),
        Some(StateKind::Unreachable)
    );
    // Mended: the host answers, the job starts again.
    let effects = state.feed(&a, 1, Event::HostBack, now);
    assert_eq!(
        effects,
        [Effect::Start {
            id: a.clone(),
            generation: 2
        }]
    );
}

/// Instance "a" spawned as pid 8 and its only step exited with `code`,
/// and the effects of that exit.
fn last_step_exits(jobs: &str, code: i32) -> (State, InstanceId, Instant, Vec<Effect>) {
    let (_, mut state) = up(jobs);
    state.begin();
    let (a, now) = (id("a"), Instant::now());
    state.feed(&a, 1, job(JobEvent::Spawned { pid: 8, pgid: 8 }), now);
    state.feed(&a, 1, job(JobEvent::StepStarted { step: step(1) }), now);
    let exited = job(JobEvent::StepExited {
        step: step(1),
        code,
    });
    let effects = state.feed(&a, 1, exited, now);
    (state, a, now, effects)
}

fn marked(effects: &[Effect]) -> Vec<(Signal, Option<u32>)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::SignalMarked { signal, spare, .. } => Some((*signal, *spare)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_stop_reaches_every_marked_process_unless_the_scope_is_the_group() {
    let stop = || Event::Stop {
        reason: "zap stop".into(),
        counts_as_failure: false,
    };
    let (_, mut tree) = up("[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\n");
    tree.begin();
    let (a, now) = (id("a"), Instant::now());
    tree.feed(&a, 1, job(JobEvent::Spawned { pid: 8, pgid: 8 }), now);
    let effects = tree.feed(&a, 1, stop(), now);
    assert_eq!(marked(&effects), [(Signal::Term, None)]);
    let (_, mut group) =
        up("[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\nstop = { scope = \"group\" }\n");
    group.begin();
    group.feed(&a, 1, job(JobEvent::Spawned { pid: 8, pgid: 8 }), now);
    let effects = group.feed(&a, 1, stop(), now);
    assert!(marked(&effects).is_empty(), "{effects:?}");
    assert!(effects.contains(&Effect::Signal {
        id: a.clone(),
        pgid: 8,
        signal: Signal::Term
    }));
}

#[test]
fn what_an_ended_shell_left_behind_gets_term_then_kill_and_the_run_ends_regardless() {
    let jobs = "[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\nstop = { timeout = \"3s\" }\n";
    let (mut state, a, now, effects) = last_step_exits(jobs, 0);
    // The shell itself is spared: it is ending, and its exit code is told.
    assert_eq!(marked(&effects), [(Signal::Term, Some(8))]);
    assert_eq!(
        wakes(&effects),
        [(Duration::from_secs(3), Wake::ShellEnding)]
    );
    // The output is still open after the stop timeout: KILL, then a grace.
    let later = now + Duration::from_secs(3);
    let effects = wake_now(&mut state, "a", Wake::ShellEnding, later);
    assert_eq!(marked(&effects), [(Signal::Kill, Some(8))]);
    assert_eq!(wakes(&effects), [(KILL_GRACE, Wake::LeftBehindKilled)]);
    let applied = state.apply(
        &a,
        1,
        &Event::Wake(Wake::LeftBehindKilled),
        later + KILL_GRACE,
    );
    assert!(
        applied
            .changes
            .iter()
            .any(|change| change.what == What::ShellGone { pid: 8, pgid: 8 })
    );
    let instance = state.instance(&a).expect("a");
    assert_eq!(instance.phase(), &Phase::Done(Outcome::Ok));
    // The run took as long as its steps, not as long as zap waited.
    assert_eq!(instance.ended, Some(now));
}

#[test]
fn a_failing_last_step_held_open_still_fails_with_its_code() {
    let jobs = "[jobs.a]\nhost = \"local\"\nsteps = [\"x\", \"y\"]\n";
    let (mut state, a, now, effects) = last_step_exits(jobs, 3);
    assert_eq!(marked(&effects), [(Signal::Term, Some(8))]);
    wake_now(
        &mut state,
        "a",
        Wake::ShellEnding,
        now + Duration::from_secs(10),
    );
    wake_now(
        &mut state,
        "a",
        Wake::LeftBehindKilled,
        now + Duration::from_secs(15),
    );
    let instance = state.instance(&a).expect("a");
    assert!(
        matches!(
            instance
                .last_run
                .as_ref()
                .map(|last| (&last.step, &last.exit)),
            Some((Some(StepIndex(1)), ExitInfo::Code(3)))
        ),
        "{:?}",
        instance.last_run
    );
}

#[test]
fn under_scope_group_an_ended_shell_leaves_its_daemon_and_the_run_ends_after_a_grace() {
    let jobs = "[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\nstop = { scope = \"group\" }\n";
    let (mut state, a, now, effects) = last_step_exits(jobs, 0);
    assert!(marked(&effects).is_empty(), "{effects:?}");
    assert_eq!(wakes(&effects), [(KILL_GRACE, Wake::ShellEnding)]);
    let effects = wake_now(&mut state, "a", Wake::ShellEnding, now + KILL_GRACE);
    assert!(marked(&effects).is_empty(), "{effects:?}");
    assert_eq!(
        state.instance(&a).map(|i| i.phase()),
        Some(&Phase::Done(Outcome::Ok))
    );
}

#[test]
fn a_shell_whose_output_closes_in_time_ends_as_usual_and_the_late_timer_does_nothing() {
    let jobs = "[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\n";
    let (mut state, a, now, _) = last_step_exits(jobs, 0);
    state.feed(
        &a,
        1,
        job(JobEvent::Ended {
            exit: ExitInfo::Code(0),
        }),
        now,
    );
    assert_eq!(
        state.instance(&a).map(|i| i.phase()),
        Some(&Phase::Done(Outcome::Ok))
    );
    let late = wake_now(
        &mut state,
        "a",
        Wake::ShellEnding,
        now + Duration::from_secs(10),
    );
    assert!(late.is_empty(), "{late:?}");
}

#[test]
fn a_start_of_what_runs_and_a_stop_of_what_ended_have_nothing_to_do() {
    let (_, mut state) = up("[jobs.a]\nhost = \"local\"\nsteps = [\"x\"]\n");
    state.begin();
    let (a, now) = (id("a"), Instant::now());
    let stop = Event::Stop {
        reason: "zap stop".into(),
        counts_as_failure: false,
    };
    let instance = |state: &State| state.instance(&a).expect("a").clone();
    assert!(instance(&state).has_nothing_to_do(&Event::Start), "pending");
    state.feed(&a, 1, job(JobEvent::Spawned { pid: 8, pgid: 8 }), now);
    assert!(instance(&state).has_nothing_to_do(&Event::Start), "running");
    assert!(!instance(&state).has_nothing_to_do(&stop));
    state.feed(&a, 1, stop.clone(), now);
    // Stopping: a start is carried out once the stop is over.
    assert!(!instance(&state).has_nothing_to_do(&Event::Start));
    let ended = job(JobEvent::Ended {
        exit: ExitInfo::Signal("TERM".into()),
    });
    state.feed(&a, 1, ended, now);
    assert!(instance(&state).has_nothing_to_do(&stop), "stopped");
    assert!(!instance(&state).has_nothing_to_do(&Event::Start));
    assert!(!instance(&state).has_nothing_to_do(&Event::Restart { reason: "R".into() }));
}
