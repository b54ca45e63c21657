//! The lifecycle rules of one instance: what follows a spawn, an output
//! line, the end of a run (restart policy, backoff, `max_restarts`), a lost
//! host, a timer, a restart request and a fixup.

use std::time::Instant;

use super::change::{Applied, What};
use super::event::{Effect, Mode, Wake};
use super::instance::{FixupRecord, Instance, StepStatus};
use super::phase::{AfterEnd, Outcome, Phase};
use super::{BACKOFF_RESET_AFTER, KILL_GRACE, State};
use crate::config::{Ready, RestartPolicy, StopScope};
use crate::fixup::{Decision, Remedy};
use crate::model::{ExitInfo, Signal, Stream};

impl State {
    /// The shell of instance `position` runs (its pid and group are known).
    pub(super) fn spawned(&mut self, position: usize, out: &mut Applied<'_>) {
        let mode = self.mode;
        let instance = &mut self.instances[position];
        match instance.phase() {
            Phase::Starting => {
                instance.enter(Phase::Running, out);
                let generation = instance.generation;
                if let Some(every) = instance.job.restart_every
                    && mode == Mode::Up
                {
                    out.effects.push(Effect::Wake {
                        id: instance.id.clone(),
                        generation,
                        after: every,
                        why: Wake::ScheduledRestart,
                    });
                }
                if let Ready::Probe { command, .. } = &instance.job.ready {
                    out.effects.push(Effect::Probe {
                        id: instance.id.clone(),
                        generation,
                        command: command.clone(),
                    });
                }
            }
            // Asked to stop while its shell was starting: now it has a
            // process group to signal.
            Phase::Stopping { .. } => instance.signal_to_stop(instance.job.stop.signal, out),
            _ => {}
        }
    }

    /// An output line: fixups, `ready = { log }` and `restart_on` watch it.
    /// Returns whether it changed anything beyond the line itself.
    pub(super) fn line(
        &mut self,
        position: usize,
        text: &str,
        stream: Stream,
        mode: Mode,
        now: Instant,
        out: &mut Applied<'_>,
    ) -> bool {
        let instance = &mut self.instances[position];
        let running = *instance.phase() == Phase::Running;
        if running && let Some(remedy) = instance.matcher.line(text, stream) {
            let then = fixup_decision(instance, remedy, now);
            instance.request_stop(then, out);
            return true;
        }
        let mut changed = false;
        if let Ready::Log(pattern) = &instance.job.ready
            && !instance.ready
            && pattern.is_match(text)
        {
            instance.become_ready(out);
            changed = true;
        }
        if mode == Mode::Up && running && instance.job.restart_on.is_match(text) {
            let reason = format!("output matched restart_on: {text}");
            let paced = true;
            instance.request_stop(AfterEnd::Restart { reason, paced }, out);
            changed = true;
        }
        changed
    }

    /// The connection under a live instance died.
    pub(super) fn host_lost(
        &mut self,
        position: usize,
        reason: &str,
        now: Instant,
        out: &mut Applied<'_>,
    ) {
        let keeps_going = self.mode == Mode::Up && self.shutting_down.is_none();
        let instance = &mut self.instances[position];
        if !instance.is_live() {
            return;
        }
        let then = match instance.phase() {
            Phase::Stopping { then } => Some(then.clone()),
            _ => None,
        };
        instance.close_run(now, ExitInfo::Unknown);
        let phase = match then {
            Some(AfterEnd::Stop { reason, .. }) => Phase::Done(Outcome::Stopped(reason)),
            _ if keeps_going => Phase::Lost {
                reason: reason.to_string(),
            },
            _ => Phase::Done(Outcome::Unreachable(format!("connection lost: {reason}"))),
        };
        instance.enter(phase, out);
    }

    /// Decides what follows a run that ended with `outcome`; `fix` is what a
    /// fixup asked for when the shell ended on its own.
    pub(super) fn after_run(
        &mut self,
        position: usize,
        outcome: Outcome,
        fix: Option<AfterEnd>,
        now: Instant,
        out: &mut Applied<'_>,
    ) {
        let mode = self.mode;
        let shutting_down = self.shutting_down.is_some();
        let then = match self.instances[position].phase() {
            Phase::Stopping { then } => Some(then.clone()),
            _ => fix,
        };
        let keep_pgids = match then {
            Some(AfterEnd::Fix { .. }) => self.live_groups_on(position),
            _ => Vec::new(),
        };
        let instance = &mut self.instances[position];
        let stayed_up = instance
            .launched
            .is_some_and(|launched| now.saturating_duration_since(launched) >= BACKOFF_RESET_AFTER);
        if stayed_up {
            instance.failures_in_a_row = 0;
            instance.attempts.reset();
        }
        let failed = !matches!(outcome, Outcome::Ok);
        let phase = match (then, outcome) {
            (Some(AfterEnd::Fix { remedy }), _) if !shutting_down => {
                begin_fixing(instance, remedy, keep_pgids, now, out);
                return;
            }
            (Some(AfterEnd::Fail { reason }), outcome) => {
                let (step, exit) = match outcome {
                    Outcome::Failed { step, exit, .. } => (step, exit),
                    _ => (None, ExitInfo::Unknown),
                };
                Phase::Done(Outcome::Failed {
                    step,
                    exit,
                    reason: Some(reason),
                })
            }
            (Some(AfterEnd::Stop { .. }), Outcome::Ok) if mode == Mode::Run => {
                Phase::Done(Outcome::Ok)
            }
            (
                Some(AfterEnd::Stop {
                    reason,
                    counts_as_failure: true,
                }),
                Outcome::Failed { step, exit, .. },
            ) => Phase::Done(Outcome::Failed {
                step,
                exit,
                reason: Some(reason),
            }),
            (Some(AfterEnd::Stop { reason, .. }), _) => Phase::Done(Outcome::Stopped(reason)),
            (Some(AfterEnd::Restart { paced: false, .. }), _) if !shutting_down => Phase::Pending,
            (Some(AfterEnd::Restart { paced: true, .. }), outcome) if !shutting_down => {
                backoff_or_give_up(instance, outcome, true, now, out)
            }
            (_, outcome) if mode == Mode::Run || shutting_down => Phase::Done(outcome),
            (_, outcome) => restart_by_policy(instance, outcome, failed, now, out),
        };
        instance.enter(phase, out);
    }

    /// Instance `position`'s shell ran its last step (or a failing one) and
    /// is ending by itself. Its output closes once everything holding it is
    /// gone: under `scope = "tree"` what the job left behind (a `setsid`,
    /// `nohup … &` or daemon child) is stopped now, TERM then KILL, as a
    /// stop would; under `"group"` it is left running. Either way the run
    /// ends in bounded time even if something zap cannot see holds the
    /// output.
    pub(super) fn shell_ending(&mut self, position: usize, out: &mut Applied<'_>) {
        let instance = &self.instances[position];
        if *instance.phase() != Phase::Running {
            return;
        }
        let after = match instance.job.stop.scope {
            StopScope::Tree => {
                out.effects.push(Effect::SignalMarked {
                    id: instance.id.clone(),
                    generation: instance.generation,
                    signal: instance.job.stop.signal,
                    spare: instance.pid,
                });
                instance.job.stop.timeout
            }
            StopScope::Group => KILL_GRACE,
        };
        out.effects.push(Effect::Wake {
            id: instance.id.clone(),
            generation: instance.generation,
            after,
            why: Wake::ShellEnding,
        });
    }

    /// Ends a run whose shell ended by itself while its output stays open:
    /// the steps' own codes say how it went.
    fn end_held_open_run(&mut self, position: usize, now: Instant, out: &mut Applied<'_>) {
        let instance = &mut self.instances[position];
        let exit = instance
            .steps
            .iter()
            .find_map(|step| match &step.status {
                StepStatus::Failed(exit) => Some(exit.clone()),
                _ => None,
            })
            .unwrap_or(ExitInfo::Code(0));
        // As for a shell whose output closed: an exit-code fixup may apply.
        let then = instance
            .matcher
            .exit(&exit)
            .map(|remedy| fixup_decision(instance, remedy, now));
        // The run ended with its last step, not when zap stopped waiting.
        let ended = instance.steps.iter().filter_map(|step| step.ended).max();
        let outcome = instance.close_run(ended.unwrap_or(now), exit);
        if let (Some(pid), Some(pgid)) = (instance.pid, instance.pgid) {
            out.change(position, What::ShellGone { pid, pgid });
        }
        self.after_run(position, outcome, then, now, out);
    }

    pub(super) fn wake(&mut self, position: usize, why: Wake, now: Instant, out: &mut Applied<'_>) {
        let keep_pgids = match why {
            Wake::RemedyDue => self.live_groups_on(position),
            _ => Vec::new(),
        };
        let instance = &mut self.instances[position];
        match why {
            Wake::BackoffOver => {
                if matches!(instance.phase(), Phase::Backoff { until } if *until <= now) {
                    instance.enter(Phase::Pending, out);
                }
            }
            Wake::StopGraceOver => {
                if let Phase::Stopping { .. } = instance.phase() {
                    instance.signal_to_stop(Signal::Kill, out);
                    out.effects.push(Effect::Wake {
                        id: instance.id.clone(),
                        generation: instance.generation,
                        after: KILL_GRACE,
                        why: Wake::KillGraceOver,
                    });
                }
            }
            Wake::KillGraceOver => {
                if let Phase::Stopping { .. } = instance.phase() {
                    // Whatever keeps the output open is not the job's shell,
                    // which KILL ended: a stop ends within its timeout and
                    // this grace, whatever the job's children hold.
                    let outcome = instance.close_run(now, ExitInfo::Signal("KILL".into()));
                    if let (Some(pid), Some(pgid)) = (instance.pid, instance.pgid) {
                        out.change(position, What::ShellGone { pid, pgid });
                    }
                    self.after_run(position, outcome, None, now, out);
                }
            }
            Wake::ShellEnding if *instance.phase() == Phase::Running => {
                if instance.job.stop.scope == StopScope::Group {
                    return self.end_held_open_run(position, now, out);
                }
                out.effects.push(Effect::SignalMarked {
                    id: instance.id.clone(),
                    generation: instance.generation,
                    signal: Signal::Kill,
                    spare: instance.pid,
                });
                out.effects.push(Effect::Wake {
                    id: instance.id.clone(),
                    generation: instance.generation,
                    after: KILL_GRACE,
                    why: Wake::LeftBehindKilled,
                });
            }
            Wake::LeftBehindKilled if *instance.phase() == Phase::Running => {
                self.end_held_open_run(position, now, out);
            }
            Wake::ShellEnding | Wake::LeftBehindKilled => {}
            Wake::ScheduledRestart => {
                if *instance.phase() == Phase::Running {
                    let reason = "scheduled restart (restart_every)".to_string();
                    let paced = false;
                    instance.request_stop(AfterEnd::Restart { reason, paced }, out);
                }
            }
            Wake::RemedyDue => {
                if let Phase::Fixing {
                    remedy,
                    running: false,
                } = instance.phase()
                {
                    let remedy = remedy.clone();
                    begin_fixing(instance, remedy, keep_pgids, now, out);
                }
            }
            Wake::Probe => {
                if *instance.phase() == Phase::Running
                    && !instance.ready
                    && let Ready::Probe { command, .. } = &instance.job.ready
                {
                    out.effects.push(Effect::Probe {
                        id: instance.id.clone(),
                        generation: instance.generation,
                        command: command.clone(),
                    });
                }
            }
        }
    }

    /// `zap restart`, R: stop it if it runs, then start it again.
    pub(super) fn restart(&mut self, position: usize, reason: &str, out: &mut Applied<'_>) {
        let instance = &mut self.instances[position];
        instance.attempts.reset();
        let then = AfterEnd::Restart {
            reason: reason.to_string(),
            paced: false,
        };
        match instance.phase() {
            Phase::Starting | Phase::Running => instance.request_stop(then, out),
            Phase::Stopping { .. } => instance.stop_then(then),
            Phase::Pending | Phase::Waiting { .. } | Phase::Lost { .. } | Phase::Fixing { .. } => {}
            Phase::Backoff { .. } | Phase::Done(_) => {
                instance.failures_in_a_row = 0;
                instance.policy_restarts = 0;
                instance.enter(Phase::Pending, out);
            }
        }
    }

    /// A fixup's remedy ended: healed or not, the job gets its next try (a
    /// remedy that did not help shows again as the same failure, until the
    /// rule's `max` is spent).
    pub(super) fn remedy_done<'e>(
        &mut self,
        position: usize,
        exit: &'e ExitInfo,
        output: &'e str,
        now: Instant,
        out: &mut Applied<'e>,
    ) {
        let instance = &mut self.instances[position];
        let fixing = matches!(instance.phase(), Phase::Fixing { .. });
        let healed = match instance.phase() {
            Phase::Fixing {
                remedy,
                running: true,
            } => {
                let remedy = remedy.clone();
                instance.attempts.finished(&remedy, now);
                remedy.healed(exit)
            }
            _ => false,
        };
        if let Some(record) = instance.fixups.last_mut()
            && record.exit.is_none()
        {
            record.exit = Some(exit.clone());
            record.healed = healed;
            let rule = record.rule.clone();
            out.change(
                position,
                What::FixupEnded {
                    rule,
                    exit,
                    healed,
                    output,
                },
            );
        }
        if fixing {
            instance.enter(Phase::Pending, out);
        }
    }
}

/// The restart policy's answer to a run that ended by itself in `zap up`:
/// done, given up (`max_restarts`), or a backoff before the next start.
fn restart_by_policy(
    instance: &mut Instance,
    outcome: Outcome,
    failed: bool,
    now: Instant,
    out: &mut Applied<'_>,
) -> Phase {
    let restarts = match instance.job.restart {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => failed,
        RestartPolicy::Never => false,
    };
    if !restarts {
        return Phase::Done(outcome);
    }
    backoff_or_give_up(instance, outcome, failed, now, out)
}

/// A restart the job brought about (by failing, ending, or asking with
/// `restart_on`): after a backoff, doubling while it counts as a failure,
/// and no more than `max_restarts` of them.
fn backoff_or_give_up(
    instance: &mut Instance,
    outcome: Outcome,
    failed: bool,
    now: Instant,
    out: &mut Applied<'_>,
) -> Phase {
    let limit = instance.job.max_restarts;
    if limit.is_some_and(|limit| instance.policy_restarts >= limit) {
        let (step, exit) = match outcome {
            Outcome::Failed { step, exit, .. } => (step, exit),
            _ => (None, ExitInfo::Code(0)),
        };
        return Phase::Done(Outcome::Failed {
            step,
            exit,
            reason: Some(format!(
                "gave up after {} restarts (max_restarts)",
                instance.policy_restarts
            )),
        });
    }
    instance.policy_restarts += 1;
    if failed {
        instance.failures_in_a_row += 1;
    } else {
        instance.failures_in_a_row = 0;
    }
    let delay = if failed {
        instance.backoff_delay()
    } else {
        instance.job.backoff.initial
    };
    out.effects.push(Effect::Wake {
        id: instance.id.clone(),
        generation: instance.generation,
        after: delay,
        why: Wake::BackoffOver,
    });
    Phase::Backoff { until: now + delay }
}

/// What a matching fixup asks for: its remedy, or giving up when the rule's
/// `max` attempts are spent.
pub(super) fn fixup_decision(instance: &Instance, remedy: Remedy, now: Instant) -> AfterEnd {
    match instance.attempts.decide(&remedy, now) {
        Decision::GiveUp { reason } => AfterEnd::Fail { reason },
        Decision::Run { .. } | Decision::Wait { .. } => AfterEnd::Fix {
            remedy: Box::new(remedy),
        },
    }
}

/// The job's shell is gone: run the remedy now, or once its rule's cooldown
/// is over.
fn begin_fixing(
    instance: &mut Instance,
    remedy: Box<Remedy>,
    keep_pgids: Vec<u32>,
    now: Instant,
    out: &mut Applied<'_>,
) {
    match instance.attempts.decide(&remedy, now) {
        Decision::Run { .. } => {
            instance.attempts.started(&remedy, now);
            instance.fixups.push(FixupRecord {
                rule: remedy.rule.clone(),
                command: remedy.command.clone(),
                exit: None,
                healed: false,
            });
            instance.enter(
                Phase::Fixing {
                    remedy: remedy.clone(),
                    running: true,
                },
                out,
            );
            out.effects.push(Effect::Remedy {
                id: instance.id.clone(),
                generation: instance.generation,
                remedy,
                keep_pgids,
            });
        }
        Decision::Wait { until } => {
            out.effects.push(Effect::Wake {
                id: instance.id.clone(),
                generation: instance.generation,
                after: until.saturating_duration_since(now),
                why: Wake::RemedyDue,
            });
            instance.enter(
                Phase::Fixing {
                    remedy,
                    running: false,
                },
                out,
            );
        }
        Decision::GiveUp { reason } => {
            let outcome = Outcome::Failed {
                step: instance.last_run.as_ref().and_then(|last| last.step),
                exit: instance
                    .last_run
                    .as_ref()
                    .map_or(ExitInfo::Unknown, |last| last.exit.clone()),
                reason: Some(reason),
            };
            instance.enter(Phase::Done(outcome), out);
        }
    }
}
