//! `zap up`: supervise the chosen jobs until Ctrl+C, SIGTERM or `zap down`,
//! with the control socket, the logs and the record of what runs.

use std::path::Path;
use std::time::Instant;

use tokio::sync::mpsc;

use crate::action::Action;
use crate::config::Plan;
use crate::control::path::state_dir;
use crate::control::protocol::Reply;
use crate::control::{self, Server};
use crate::logbook::LogBook;
use crate::logs::{LogHealth, LogWriter, Rotation, logs_dir};
use crate::model::{HostName, InstanceId, StepIndex};
use crate::supervisor::engine::{self, Observer, Observers, Options, Request, request_for_action};
use crate::supervisor::ledger::Ledger;
use crate::supervisor::run::new_run_id;
use crate::supervisor::state::{Mode, State};
use crate::transport::host::transports_for;
use crate::{status, targets, words};

/// Runs `zap up` for `selected` in config folder `dir`; returns the exit code.
/// With `ui`, the terminal UI shows the run (`observer` is then its own).
pub async fn up(
    dir: &Path,
    plan: &Plan,
    selected: Vec<InstanceId>,
    observer: &mut dyn Observer,
    ui: Option<crate::ui::Tui>,
) -> u8 {
    let server = match Server::bind_for(dir).await {
        Ok(server) => server,
        Err(error) => {
            eprintln!("zap: {error}");
            return super::exit::USAGE;
        }
    };
    let ledger_path = state_dir(dir).join("state");
    let leftovers = Ledger::leftovers(&ledger_path).unwrap_or_else(|error| {
        eprintln!("zap: cannot read {}: {error}", ledger_path.display());
        Vec::new()
    });
    let mut hosts: Vec<HostName> = selected.iter().map(|id| id.host.clone()).collect();
    hosts.extend(
        leftovers
            .iter()
            .filter(|leftover| plan.hosts.contains_key(&leftover.host))
            .map(|leftover| leftover.host.clone()),
    );
    let transports = match transports_for(plan, &hosts) {
        Ok(transports) => transports,
        Err(error) => {
            eprintln!("zap: {error}");
            return super::exit::USAGE;
        }
    };
    let run_id = new_run_id();
    // Until the supervisor has stopped them (host by host, before that
    // host's jobs start), the leftovers stay in the ledger.
    let mut ledger = match Ledger::create(&ledger_path, &run_id, &leftovers) {
        Ok(ledger) => ledger,
        Err(error) => {
            eprintln!("zap: cannot write {}: {error}", ledger_path.display());
            return super::exit::USAGE;
        }
    };
    // The writer thread tells the supervisor at once when the disk fails
    // and when it works again.
    let (health_tx, health_rx) = mpsc::unbounded_channel();
    let on_health = move |health| {
        let _ = health_tx.send(health);
    };
    let writer = LogWriter::start_with(logs_dir(dir), Rotation::default(), on_health)
        .map_err(|error| eprintln!("zap: job output is not written to disk: {error}"))
        .ok();
    let mut logbook = LogBook::new(plan, &selected, writer);

    let (control_tx, control_rx) = mpsc::channel(64);
    let server_task = tokio::spawn(server.run(control_tx));
    let (engine_tx, mut engine_rx) = mpsc::channel(64);
    let ui = match ui.map(|ui| ui.start(engine_tx.clone(), logbook.clone())) {
        Some(Ok(running)) => Some(running),
        Some(Err(error)) => {
            eprintln!("zap: cannot open the terminal UI: {error}");
            let reason = "the terminal UI could not open".to_string();
            let _ = engine_tx.try_send(Request::ShutDown { reason });
            None
        }
        None => None,
    };
    let handler = tokio::spawn(answer_control(
        control_rx,
        engine_tx,
        plan.clone(),
        selected.clone(),
        logbook.clone(),
    ));

    let state = State::new(plan, &selected, Mode::Up);
    let options = Options {
        timeout: None,
        run_id,
        leftovers,
        log_health: Some(health_rx),
    };
    let mut observers = Observers(vec![observer, &mut ledger, &mut logbook]);
    engine::supervise(
        plan,
        state,
        &transports,
        &mut observers,
        &mut engine_rx,
        options,
    )
    .await;
    drop(observers);
    let mut code = super::exit::OK;
    if let Some(ui) = ui
        && !ui.finish().await
    {
        eprintln!("zap: the terminal UI failed; every job was stopped");
        code = super::exit::INTERNAL;
    }

    handler.abort();
    drop(engine_rx);
    let _ = server_task.await;
    for error in logbook.close() {
        eprintln!("zap: {error}");
    }
    if let Err(error) = ledger.remove() {
        eprintln!("zap: cannot remove {}: {error}", ledger_path.display());
    }
    code
}

/// Turns the control socket's requests into the supervisor's, answering
/// those it can alone (logs) without bothering the loop.
async fn answer_control(
    mut requests: mpsc::Receiver<control::Request>,
    engine: mpsc::Sender<Request>,
    plan: Plan,
    selected: Vec<InstanceId>,
    logbook: LogBook,
) {
    while let Some(control::Request { action, reply }) = requests.recv().await {
        let targets_of = |names: &[String]| -> Result<Vec<InstanceId>, String> {
            let mut ids = Vec::new();
            for name in names {
                let found: Vec<InstanceId> = targets::resolve(&plan, name)?
                    .into_iter()
                    .filter(|id| selected.contains(id))
                    .collect();
                if found.is_empty() {
                    return Err(format!("{name} is not run by this zap"));
                }
                ids.extend(found);
            }
            Ok(ids)
        };
        let (verb, names) = match &action {
            Action::Status => {
                let look = Box::new(move |state: &State| {
                    // Said above the table (on stderr, like every message).
                    if let Some(trouble) = state.log_trouble() {
                        let health = LogHealth::Failing(trouble.to_string());
                        reply.send(Reply::Done {
                            message: words::log_health(&health),
                        });
                    }
                    let instances = status::snapshot(state, Instant::now());
                    reply.send(Reply::Status { instances });
                });
                let _ = engine.send(Request::Inspect(look)).await;
                continue;
            }
            Action::Logs {
                target,
                follow,
                step,
            } => {
                match targets_of(std::slice::from_ref(target)) {
                    Ok(ids) => logbook.serve(ids, step.map(StepIndex), *follow, Box::new(reply)),
                    Err(message) => {
                        reply.send(Reply::Error { message });
                    }
                }
                continue;
            }
            Action::Down => ("stopping every job, then zap", Vec::new()),
            Action::Restart { targets } => ("restarting", targets.clone()),
            Action::Stop { targets } => ("stopping", targets.clone()),
            Action::Start { targets } => ("starting", targets.clone()),
        };
        let ids = match targets_of(&names) {
            Ok(ids) => ids,
            Err(message) => {
                reply.send(Reply::Error { message });
                continue;
            }
        };
        // What zap status and the job's log show as the reason: the command.
        let reason = match &action {
            Action::Restart { .. } => "zap restart",
            Action::Stop { .. } => "zap stop",
            _ => "zap down",
        };
        let Some(request) = request_for_action(&action, ids.clone(), reason.to_string()) else {
            continue;
        };
        // The answer says what the state will do with it: a start of what
        // runs, a stop of what ended, is refused by name (non-zero exit).
        let event = match &request {
            Request::Apply { event, .. } => Some(event.clone()),
            _ => None,
        };
        let answer = Box::new(move |state: &State| {
            let mut acted = Vec::new();
            let mut idle = Vec::new();
            for id in &ids {
                match (state.instance(id), &event) {
                    (Some(instance), Some(event)) if instance.has_nothing_to_do(event) => {
                        idle.push(words::nothing_to_do(instance));
                    }
                    _ => acted.push(id.to_string()),
                }
            }
            let done = format!("{verb} {}", acted.join(", "))
                .trim_end()
                .to_string();
            reply.send(if idle.is_empty() {
                Reply::Done { message: done }
            } else if acted.is_empty() {
                Reply::Error {
                    message: idle.join("; "),
                }
            } else {
                Reply::Error {
                    message: format!("{done}; {}", idle.join("; ")),
                }
            });
        });
        let _ = engine.send(Request::Inspect(answer)).await;
        let _ = engine.send(request).await;
    }
}
