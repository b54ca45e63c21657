//! The supervisor loop itself, driven against a scripted host under paused
//! time: the host is a fake of zap's own plumbing (no shell runs), so the
//! policies the loop carries out (reconnect and what it stops first, run
//! timeouts, a channel that never closes) are tested without a network
//! and without sleeps.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::sync::mpsc;

use super::*;
use crate::config::{self, SourceFile};
use crate::model::{ExitInfo, HostName, JobName};
use crate::supervisor::state::{Change, Outcome, Phase, What};
use crate::transport::consumer::{ChunkConsumer, through_channel};
use crate::transport::host::{Captured, Link};
use crate::transport::{Chunk, TransportError};

/// How one launch on the scripted host goes.
#[derive(Debug, Clone, Copy)]
enum Play {
    /// The host cannot be reached: nothing runs.
    Unreachable,
    /// The shell spawns as `pgid`, starts its first step and then...
    Runs { pgid: u32, then: Then },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Then {
    /// ...runs until a signal ends it.
    UntilSignalled,
    /// ...ignores every signal and never closes its output (a `setsid`
    /// child holds it).
    HoldsOutputOpen,
    /// ...runs until the test drops the connection.
    UntilTheConnectionDrops,
}

/// What the loop asked of the host, in order.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    Launch,
    Signal(u32, Signal),
    Capture(String),
    Connect,
}

/// A host that plays a script: a fake for the loop's plumbing.
#[derive(Default)]
struct ScriptedHost {
    plays: Mutex<VecDeque<Play>>,
    calls: Mutex<Vec<Call>>,
    /// Connection attempts that fail before one succeeds.
    failing_connects: Mutex<u32>,
    /// Refusals the next connection attempts meet, in order, first.
    refusals: Mutex<Vec<TransportError>>,
    /// Short commands that fail (the host does not answer) before one runs.
    failing_captures: Mutex<u32>,
    /// How long each short command takes.
    capture_takes: Mutex<Duration>,
    /// The output of each running shell by process group, and how it ends.
    running: Mutex<HashMap<u32, (mpsc::Sender<Chunk>, Then)>>,
}

impl ScriptedHost {
    fn new(plays: &[Play]) -> Arc<ScriptedHost> {
        Arc::new(ScriptedHost {
            plays: Mutex::new(plays.iter().copied().collect()),
            ..ScriptedHost::default()
        })
    }

    fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    fn record(&self, call: Call) {
        self.calls.lock().expect("calls").push(call);
    }

    /// Every connection drops: each shell that waits for it is lost.
    fn drop_connection(&self) {
        let mut running = self.running.lock().expect("running");
        running.retain(|_, (tx, then)| {
            if *then != Then::UntilTheConnectionDrops {
                return true;
            }
            let _ = tx.try_send(Chunk::Lost("connection reset by peer".into()));
            false
        });
    }
}

/// The marker tag of the wrapper script's run: `@@zap:<nonce>`.
fn marker_tag(script: &[u8]) -> String {
    let text = String::from_utf8_lossy(script);
    let at = text.find("@@zap:").expect("a marker in the script");
    text[at..at + "@@zap:".len() + 32].to_string()
}

impl Link for ScriptedHost {
    fn launch(
        &self,
        _command: String,
        stdin: Vec<u8>,
        _pty: bool,
        out: Box<dyn ChunkConsumer>,
    ) -> BoxFuture<'_, Result<(), TransportError>> {
        self.record(Call::Launch);
        let play = self.plays.lock().expect("plays").pop_front();
        Box::pin(async move {
            let Some(Play::Runs { pgid, then }) = play else {
                return Err(TransportError::Connect {
                    address: "n1:22".into(),
                    reason: "connection refused".into(),
                });
            };
            let tx = through_channel(out);
            let tag = marker_tag(&stdin);
            let out = format!("{tag}:pid:{pgid}:{pgid}\n{tag}:start:1\nworking\n");
            let err = format!("{tag}:start:1\n");
            let _ = tx.send(Chunk::Stdout(out.into_bytes())).await;
            let _ = tx.send(Chunk::Stderr(err.into_bytes())).await;
            self.running
                .lock()
                .expect("running")
                .insert(pgid, (tx, then));
            Ok(())
        })
    }

    fn launch_fed(
        &self,
        _command: String,
        _stdin: Vec<u8>,
        _feed: mpsc::Receiver<Vec<u8>>,
        _tx: mpsc::Sender<Chunk>,
    ) -> BoxFuture<'_, Result<(), TransportError>> {
        // No stats poller on this host: its figures are not under test.
        Box::pin(std::future::ready(Err(TransportError::Spawn(
            "no poller here".into(),
        ))))
    }

    fn signal_group(&self, pgid: u32, signal: Signal) -> BoxFuture<'_, Result<(), TransportError>> {
        self.record(Call::Signal(pgid, signal));
        let mut running = self.running.lock().expect("running");
        if let Some((_, Then::UntilSignalled)) = running.get(&pgid)
            && let Some((tx, _)) = running.remove(&pgid)
        {
            let exit = ExitInfo::Signal(signal.name().trim_start_matches("SIG").to_string());
            let _ = tx.try_send(Chunk::Exit(exit));
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn run_capture(&self, command: String) -> BoxFuture<'_, Captured> {
        self.record(Call::Capture(command));
        let mut failing = self.failing_captures.lock().expect("failing");
        if *failing > 0 {
            *failing -= 1;
            return Box::pin(std::future::ready(Err(TransportError::ConnectTimeout {
                address: "n1:22".into(),
                seconds: 10,
            })));
        }
        let takes = *self.capture_takes.lock().expect("takes");
        Box::pin(async move {
            tokio::time::sleep(takes).await;
            Ok((ExitInfo::Code(0), b"killed\n".to_vec(), Vec::new()))
        })
    }

    fn ensure_connected(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        self.record(Call::Connect);
        let mut refusals = self.refusals.lock().expect("refusals");
        if !refusals.is_empty() {
            let refusal = refusals.remove(0);
            return Box::pin(std::future::ready(Err(refusal)));
        }
        let mut failing = self.failing_connects.lock().expect("failing");
        let answer = if *failing > 0 {
            *failing -= 1;
            Err(TransportError::ConnectTimeout {
                address: "n1:22".into(),
                seconds: 10,
            })
        } else {
            Ok(())
        };
        Box::pin(std::future::ready(answer))
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }

    fn is_this_machine(&self) -> bool {
        false
    }
}

fn plan(jobs: &str) -> Plan {
    let sources = [
        SourceFile::new("hosts.toml", "[hosts.n1]\naddress = \"127.0.0.1\"\n"),
        SourceFile::new("jobs/web.toml", jobs),
    ];
    config::load_sources(Path::new("/nowhere"), &sources).expect("valid config")
}

fn ids(plan: &Plan) -> Vec<InstanceId> {
    plan.jobs
        .iter()
        .map(|job| InstanceId {
            job: JobName {
                system: "web".into(),
                job: job.name.job.clone(),
            },
            host: HostName("n1".into()),
        })
        .collect()
}

fn on(host: &Arc<ScriptedHost>) -> BTreeMap<HostName, Transport> {
    let link: Arc<dyn Link> = host.clone();
    BTreeMap::from([(HostName("n1".into()), Transport::new(link))])
}

fn options(timeout: Option<Duration>) -> Options {
    Options {
        timeout,
        run_id: "run1".into(),
        leftovers: Vec::new(),
        log_health: None,
    }
}

/// Watches the changes and acts on them, as a front end would.
struct Watcher {
    host: Arc<ScriptedHost>,
    requests: mpsc::Sender<Request>,
    spawned: Vec<u32>,
    /// Drop the connection once this many shells run.
    drop_after: usize,
    /// Shut down once this many shells ran.
    shut_down_after: usize,
    /// Every phase entered, in order.
    phases: Vec<Phase>,
}

impl Observer for Watcher {
    fn changes(&mut self, _state: &State, changes: &[Change<'_>]) {
        for change in changes {
            if let What::Phase { to, .. } = &change.what {
                self.phases.push(to.clone());
            }
            if let What::Spawned { pgid, .. } = change.what {
                self.spawned.push(pgid);
                if self.spawned.len() == self.drop_after {
                    self.host.drop_connection();
                }
                if self.spawned.len() == self.shut_down_after {
                    let reason = "zap down".to_string();
                    let _ = self.requests.try_send(Request::ShutDown { reason });
                }
            }
        }
    }
}

fn watcher(host: &Arc<ScriptedHost>) -> (Watcher, mpsc::Receiver<Request>) {
    let (requests, incoming) = mpsc::channel(8);
    let watcher = Watcher {
        host: host.clone(),
        requests,
        spawned: Vec::new(),
        drop_after: usize::MAX,
        shut_down_after: usize::MAX,
        phases: Vec::new(),
    };
    (watcher, incoming)
}

/// `zap up` of `plan` on `host` until `watcher` asks it to end.
async fn up_on_script(
    plan: &Plan,
    host: &Arc<ScriptedHost>,
    watcher: &mut Watcher,
    requests: &mut mpsc::Receiver<Request>,
) -> State {
    let state = State::new(plan, &ids(plan), Mode::Up);
    supervise(plan, state, &on(host), watcher, requests, options(None)).await
}

const THREE_ALWAYS: &str = "[jobs.a]\nhost = \"n1\"\nsteps = [\"x\"]\nrestart = \"always\"\n\
                            [jobs.b]\nhost = \"n1\"\nsteps = [\"x\"]\nrestart = \"always\"\n\
                            [jobs.c]\nhost = \"n1\"\nsteps = [\"x\"]\nrestart = \"always\"\n";

#[tokio::test(start_paused = true)]
async fn a_host_that_comes_back_has_every_lost_job_stopped_before_any_starts_again() {
    let plan = plan(THREE_ALWAYS);
    let drops = |pgid| Play::Runs {
        pgid,
        then: Then::UntilTheConnectionDrops,
    };
    let back = |pgid| Play::Runs {
        pgid,
        then: Then::UntilSignalled,
    };
    let host = ScriptedHost::new(&[
        drops(100),
        drops(101),
        drops(102),
        back(200),
        back(201),
        back(202),
    ]);
    *host.failing_connects.lock().expect("failing") = 2;
    let (mut watcher, mut requests) = watcher(&host);
    watcher.drop_after = 3;
    watcher.shut_down_after = 6;
    let state = up_on_script(&plan, &host, &mut watcher, &mut requests).await;

    let calls = host.calls();
    let fourth_launch = calls
        .iter()
        .enumerate()
        .filter(|(_, call)| **call == Call::Launch)
        .nth(3)
        .map(|(at, _)| at)
        .expect("the jobs started again");
    for pgid in [100, 101, 102] {
        let stopped = calls.iter().position(|call| {
            matches!(call, Call::Capture(command) if command.starts_with(&format!("p={pgid};")))
        });
        assert!(
            stopped.is_some_and(|at| at < fourth_launch),
            "group {pgid} stopped before the jobs ran again: {calls:#?}"
        );
    }
    let connects = calls.iter().filter(|call| **call == Call::Connect).count();
    assert_eq!(connects, 3, "two failed tries, then the host answered");
    for instance in state.instances() {
        assert_eq!(instance.restarts, 1, "{}", instance.id);
        assert!(matches!(instance.phase(), Phase::Done(Outcome::Stopped(_))));
    }
}

/// `zap run` of `jobs` on a host playing `plays`: the final state, how
/// long it took on the paused clock, and the host's record of calls.
async fn run_on_script(
    jobs: &str,
    plays: &[Play],
    timeout: Option<Duration>,
) -> (State, Duration, Vec<Call>) {
    let plan = plan(jobs);
    let host = ScriptedHost::new(plays);
    let (mut watcher, _requests) = watcher(&host);
    let began = tokio::time::Instant::now();
    let state = State::new(&plan, &ids(&plan), Mode::Run);
    let state = supervise(
        &plan,
        state,
        &on(&host),
        &mut watcher,
        &mut NoRequests,
        options(timeout),
    )
    .await;
    (state, began.elapsed(), host.calls())
}

#[tokio::test(start_paused = true)]
async fn a_run_timeout_stops_and_fails_what_still_runs() {
    let plays = [Play::Runs {
        pgid: 7,
        then: Then::UntilSignalled,
    }];
    let jobs = "[jobs.a]\nhost = \"n1\"\nsteps = [\"x\"]\n";
    let (state, took, calls) = run_on_script(jobs, &plays, Some(Duration::from_secs(5))).await;
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert!(calls.contains(&Call::Signal(7, Signal::Term)));
    match state.instances()[0].phase() {
        Phase::Done(Outcome::Failed { reason, .. }) => {
            assert_eq!(reason.as_deref(), Some("timed out after 5s"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_shell_whose_output_never_closes_still_stops_within_its_timeout_and_grace() {
    let plays = [Play::Runs {
        pgid: 7,
        then: Then::HoldsOutputOpen,
    }];
    let jobs = "[jobs.a]\nhost = \"n1\"\nsteps = [\"x\"]\nstop = { timeout = \"2s\" }\n";
    let (state, took, calls) = run_on_script(jobs, &plays, Some(Duration::from_secs(5))).await;
    let bound = Duration::from_secs(5) + Duration::from_secs(2) + super::super::state::KILL_GRACE;
    assert!(took <= bound + Duration::from_millis(100), "{took:?}");
    assert!(calls.contains(&Call::Signal(7, Signal::Term)), "{calls:?}");
    assert!(calls.contains(&Call::Signal(7, Signal::Kill)), "{calls:?}");
    assert!(matches!(
        state.instances()[0].phase(),
        Phase::Done(Outcome::Failed { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn a_host_that_cannot_be_reached_ends_the_run_as_unreachable() {
    let jobs = "[jobs.a]\nhost = \"n1\"\nsteps = [\"x\"]\n";
    let (state, _, _) = run_on_script(jobs, &[Play::Unreachable], None).await;
    assert_eq!(
        state.instances()[0].phase(),
        &Phase::Done(Outcome::Unreachable(
            "cannot connect to n1:22: connection refused".into()
        ))
    );
}

#[tokio::test(start_paused = true)]
async fn a_host_whose_key_changed_makes_its_lost_jobs_unreachable_until_it_is_mended() {
    let plan = plan("[jobs.a]\nhost = \"n1\"\nsteps = [\"x\"]\nrestart = \"always\"\n");
    let host = ScriptedHost::new(&[
        Play::Runs {
            pgid: 100,
            then: Then::UntilTheConnectionDrops,
        },
        Play::Runs {
            pgid: 200,
            then: Then::UntilSignalled,
        },
    ]);
    // The first try meets a new host key; the user mends known_hosts.
    *host.refusals.lock().expect("refusals") = vec![TransportError::HostKey(
        "the host key of n1 changed: remove the old one with ssh-keygen -R".into(),
    )];
    let (mut watcher, mut requests) = watcher(&host);
    watcher.drop_after = 1;
    watcher.shut_down_after = 2;
    let state = up_on_script(&plan, &host, &mut watcher, &mut requests).await;
    let unreachable = Phase::Done(Outcome::Unreachable(
        "reconnecting: the host key of n1 changed: remove the old one with ssh-keygen -R".into(),
    ));
    let seen = &watcher.phases;
    assert!(seen.contains(&unreachable), "{seen:#?}");
    let calls = host.calls();
    assert!(
        calls
            .iter()
            .any(|call| matches!(call, Call::Capture(c) if c.starts_with("p=100;"))),
        "what the lost run left is stopped before it runs again: {calls:#?}"
    );
    assert_eq!(state.instances()[0].restarts, 1);
}

/// A job of an earlier zap, killed, left on n1 as group 77.
fn leftover_on_n1() -> Leftover {
    Leftover {
        run: "old".into(),
        instance: "web.a@n1".into(),
        host: HostName("n1".into()),
        pid: 77,
        pgid: 77,
        marker: Some("old-1-1".into()),
    }
}

fn position_of(calls: &[Call], wanted: impl Fn(&Call) -> bool) -> Vec<usize> {
    calls
        .iter()
        .enumerate()
        .filter(|(_, call)| wanted(call))
        .map(|(at, _)| at)
        .collect()
}

fn stops_leftover(call: &Call) -> bool {
    matches!(call, Call::Capture(command) if command.starts_with("p=77;") && command.contains("ZAP_INSTANCE=old-1-1"))
}

/// What `zap up` after a killed zap did.
struct AfterKilledZap {
    state: State,
    /// Where the leftover was stopped, and where shells were launched, in
    /// the host's calls.
    stopped: Vec<usize>,
    launched: Vec<usize>,
    phases: Vec<Phase>,
}

/// `zap up` of `jobs` on n1, where a killed zap left `leftover_on_n1`;
/// `prepare` sets the host up, `asked` is requested at once; until a shell
/// ran once.
async fn up_after_a_killed_zap(
    jobs: &str,
    prepare: impl FnOnce(&ScriptedHost),
    asked: Vec<Request>,
) -> AfterKilledZap {
    let plan = plan(jobs);
    let host = ScriptedHost::new(&[Play::Runs {
        pgid: 7,
        then: Then::UntilSignalled,
    }]);
    prepare(&host);
    let (mut watcher, mut requests) = watcher(&host);
    watcher.shut_down_after = 1;
    for request in asked {
        watcher.requests.try_send(request).expect("queued");
    }
    let mut options = options(None);
    options.leftovers = vec![leftover_on_n1()];
    let state = State::new(&plan, &ids(&plan), Mode::Up);
    let state = supervise(
        &plan,
        state,
        &on(&host),
        &mut watcher,
        &mut requests,
        options,
    )
    .await;
    let calls = host.calls();
    AfterKilledZap {
        state,
        stopped: position_of(&calls, stops_leftover),
        launched: position_of(&calls, |call| *call == Call::Launch),
        phases: watcher.phases,
    }
}

#[tokio::test(start_paused = true)]
async fn an_earlier_zaps_leftovers_are_stopped_before_their_hosts_jobs_start() {
    let jobs = "[jobs.a]\nhost = \"n1\"\nsteps = [\"x\"]\n";
    let AfterKilledZap {
        stopped, launched, ..
    } = up_after_a_killed_zap(jobs, |_| {}, Vec::new()).await;
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert!(stopped[0] < launched[0], "{stopped:?} {launched:?}");
}

#[tokio::test(start_paused = true)]
async fn a_host_down_at_start_keeps_its_jobs_waiting_until_its_leftovers_are_stopped() {
    // The clean-up meets a host that does not answer; later it does.
    let jobs = "[jobs.a]\nhost = \"n1\"\nsteps = [\"x\"]\nrestart = \"always\"\n";
    let fail_once = |host: &ScriptedHost| *host.failing_captures.lock().expect("failing") = 1;
    let AfterKilledZap {
        stopped,
        launched,
        phases,
        ..
    } = up_after_a_killed_zap(jobs, fail_once, Vec::new()).await;
    assert_eq!(stopped.len(), 2, "tried at start, then when it answered");
    assert_eq!(launched.len(), 1, "{launched:?}");
    assert!(stopped[1] < launched[0], "{stopped:?} {launched:?}");
    let waiting = phases.iter().any(|phase| {
        matches!(phase, Phase::Done(Outcome::Unreachable(why))
            if why.starts_with("cannot stop what an earlier zap left on n1 yet"))
    });
    assert!(waiting, "{phases:#?}");
}

#[tokio::test(start_paused = true)]
async fn a_job_stopped_while_its_hosts_leftovers_are_cleared_never_starts() {
    let jobs =
        "[jobs.a]\nhost = \"n1\"\nsteps = [\"x\"]\n[jobs.b]\nhost = \"n1\"\nsteps = [\"x\"]\n";
    // The clean-up takes half a minute; `zap stop web.a` comes meanwhile.
    let slow = |host: &ScriptedHost| {
        *host.capture_takes.lock().expect("takes") = Duration::from_secs(30);
    };
    let a = ids(&plan(jobs))[0].clone();
    let stop = Request::Apply {
        targets: vec![a.clone()],
        event: Event::Stop {
            reason: "zap stop".into(),
            counts_as_failure: false,
        },
    };
    let run = up_after_a_killed_zap(jobs, slow, vec![stop]).await;
    assert_eq!(run.launched.len(), 1, "only b starts");
    assert_eq!(
        run.state
            .instance(&a)
            .map(|instance| instance.phase().clone()),
        Some(Phase::Done(Outcome::Stopped("zap stop".into())))
    );
}
