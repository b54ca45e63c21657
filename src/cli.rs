//! The command line: parses arguments, loads the plan, hands it to the
//! supervisor and front ends, and turns the outcome into an exit code.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::action::Action;
use crate::config::{self, HostKind, Plan};
use crate::control::{self, Console};
use crate::headless::Printer;
use crate::headless::outlet::{self, Outlet};
use crate::logs::logs_dir;
use crate::model::HostName;
use crate::supervisor::run;
use crate::supervisor::{Outcome, Phase, State};
use crate::transport::host::transports_for;
use crate::{demo, fixup, report, summary, targets};

pub use crate::commands::exit;

#[derive(Debug, Parser)]
#[command(
    name = "zap",
    version,
    about = "Bring up and watch flocks of commands across many machines"
)]
struct Cli {
    /// The folder holding hosts.toml and jobs/ (default: the current folder).
    #[arg(long, global = true, env = "ZAP_CONFIG", value_name = "DIR")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run jobs once: every step in order, then a per-step summary.
    Run {
        /// `system`, `system.job` or `system.job@host` (default: every autostart system).
        targets: Vec<String>,
        /// Write a JSON report of every job and step to FILE.
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
        /// Stop and fail jobs still running after this long ("30s", "5m").
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg)]
        timeout: Option<Duration>,
    },
    /// Check the config; with --connect also connect to every host in use.
    Check {
        #[arg(long)]
        connect: bool,
    },
    /// Start jobs and keep them running until Ctrl+C or `zap down`.
    Up {
        /// `system`, `system.job` or `system.job@host` (default: every autostart system).
        targets: Vec<String>,
        /// Prefixed log lines instead of the terminal UI.
        #[arg(long)]
        headless: bool,
    },
    /// Every job of the running zap: state, step, last exit, pid, restarts.
    Status {
        #[arg(long)]
        json: bool,
        /// How long to wait for the running zap's answer.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg, default_value = "10s")]
        timeout: Duration,
    },
    /// Stop jobs of the running zap (their whole process group) and start them again.
    Restart {
        #[arg(required = true)]
        targets: Vec<String>,
        /// How long to wait for the running zap's answer.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg, default_value = "10s")]
        timeout: Duration,
    },
    /// Stop jobs of the running zap and keep them stopped.
    Stop {
        #[arg(required = true)]
        targets: Vec<String>,
        /// How long to wait for the running zap's answer.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg, default_value = "10s")]
        timeout: Duration,
    },
    /// Start stopped or failed jobs of the running zap.
    Start {
        #[arg(required = true)]
        targets: Vec<String>,
        /// How long to wait for the running zap's answer.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg, default_value = "10s")]
        timeout: Duration,
    },
    /// A job's output, from the running zap or from .zap/logs.
    Logs {
        target: String,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// Only the lines of this step.
        #[arg(long)]
        step: Option<u32>,
        /// How long to wait for the running zap's answer.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg, default_value = "10s")]
        timeout: Duration,
    },
    /// Stop the running zap and all its jobs.
    Down {
        /// How long to wait for the running zap's answer.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_arg, default_value = "10s")]
        timeout: Duration,
    },
    /// Fixup packs: list them, or run their test cases.
    Fixups {
        #[command(subcommand)]
        command: FixupsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum FixupsCommand {
    /// Every pack (built in and jobs/fixups/) with its rules.
    List,
    /// Run the test cases of every pack, or of PACK.
    Test { pack: Option<String> },
}

fn parse_duration_arg(text: &str) -> Result<Duration, String> {
    config::parse_duration(text)
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(if error.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    let dir = cli.config.clone().unwrap_or_else(|| PathBuf::from("."));
    // One thread for the supervisor and every connection: zap's work per
    // SSH packet is small, and with a pool each packet woke another thread
    // (bench case 4: 20.1–20.8% of a core, 16.2–17.8% on one thread; fan-out
    // and throughput unchanged). The UI has a thread of its own, blocking
    // reads go to tokio's blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("zap: cannot start the async runtime: {error}");
            return ExitCode::from(exit::USAGE);
        }
    };
    // Commands for the running zap need no config of their own.
    if let Some(code) = runtime.block_on(control_command(&dir, &cli.command)) {
        return ExitCode::from(code);
    }
    let plan = match load_plan(&dir) {
        Ok(plan) => plan,
        Err(message) => {
            eprint!("{message}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let code = match cli.command {
        Command::Run {
            targets,
            report,
            timeout,
        } => runtime.block_on(run_command(&plan, &targets, report.as_deref(), timeout)),
        Command::Check { connect } => runtime.block_on(check_command(&plan, connect)),
        Command::Up { targets, headless } => {
            runtime.block_on(up_command(&dir, &plan, &targets, headless))
        }
        Command::Fixups { command } => {
            let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
            match command {
                FixupsCommand::List => fixup::list_command(&plan, &mut out),
                FixupsCommand::Test { pack } => {
                    fixup::test_command(&plan, pack.as_deref(), &mut out, &mut err)
                }
            }
        }
        _ => exit::USAGE,
    };
    ExitCode::from(code)
}

/// Runs the commands that talk to a running zap; `None` for the others.
async fn control_command(dir: &Path, command: &Command) -> Option<u8> {
    let colour = std::io::stdout().is_terminal();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    let answer_within = match command {
        Command::Status { timeout, .. }
        | Command::Restart { timeout, .. }
        | Command::Stop { timeout, .. }
        | Command::Start { timeout, .. }
        | Command::Logs { timeout, .. }
        | Command::Down { timeout } => *timeout,
        _ => return None,
    };
    let mut console = Console {
        out: &mut out,
        err: &mut err,
        colour,
        answer_within,
    };
    let targets_of = |targets: &Vec<String>| targets.clone();
    Some(match command {
        Command::Status { json, .. } => control::commands::status(dir, *json, &mut console).await,
        Command::Restart { targets, .. } => {
            let action = Action::Restart {
                targets: targets_of(targets),
            };
            control::commands::act(dir, action, &mut console).await
        }
        Command::Stop { targets, .. } => {
            let action = Action::Stop {
                targets: targets_of(targets),
            };
            control::commands::act(dir, action, &mut console).await
        }
        Command::Start { targets, .. } => {
            let action = Action::Start {
                targets: targets_of(targets),
            };
            control::commands::act(dir, action, &mut console).await
        }
        Command::Down { .. } => control::commands::act(dir, Action::Down, &mut console).await,
        Command::Logs {
            target,
            follow,
            step,
            ..
        } => {
            let stored = || {
                let plan = config::load(dir).map_err(|errors| errors.to_string())?;
                let ids = targets::resolve(&plan, target)?;
                control::commands::read_stored(dir, &ids, *step)
            };
            control::commands::logs(dir, target, *follow, *step, &mut console, stored).await
        }
        _ => return None,
    })
}

async fn up_command(dir: &Path, plan: &Plan, target_names: &[String], headless: bool) -> u8 {
    let selected = match targets::select(plan, target_names) {
        Ok(selected) if selected.is_empty() => {
            eprintln!("zap: nothing to start (no target given and no system has autostart = true)");
            return exit::USAGE;
        }
        Ok(selected) => selected,
        Err(message) => {
            eprintln!("zap: {message}");
            return exit::USAGE;
        }
    };
    // The terminal UI needs a terminal on both ends; else prefixed lines.
    let terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    if headless || !terminal {
        let colour = std::io::stdout().is_terminal();
        let out = Outlet::stdout(Some(format!("all are in {}", logs_dir(dir).display())));
        let mut printer = Printer::new(out, colour, &selected);
        let code = crate::commands::up::up(dir, plan, selected, &mut printer, None).await;
        printer.into_inner().close(Some(outlet::CLOSE_WITHIN));
        return code;
    }
    let keymap = match crate::ui::Keymap::load_user() {
        Ok(keymap) => keymap,
        Err(error) => {
            eprintln!("zap: {error}");
            return exit::USAGE;
        }
    };
    let (mut observer, tui) = crate::ui::Tui::new(keymap, &selected);
    crate::commands::up::up(dir, plan, selected, &mut observer, Some(tui)).await
}

/// The config in `dir`, or the built-in demo when `dir` holds no config.
fn load_plan(dir: &Path) -> Result<Plan, String> {
    if config::has_config(dir) {
        return config::load(dir).map_err(|errors| errors.to_string());
    }
    eprintln!(
        "zap: no hosts.toml or jobs/ in {}: using the built-in demo",
        dir.display()
    );
    config::load_sources(dir, &demo::sources()).map_err(|errors| errors.to_string())
}

async fn run_command(
    plan: &Plan,
    target_names: &[String],
    report_path: Option<&Path>,
    timeout: Option<Duration>,
) -> u8 {
    let selected = match targets::select(plan, target_names) {
        Ok(selected) if selected.is_empty() => {
            eprintln!("zap: nothing to run (no target given and no system has autostart = true)");
            return exit::USAGE;
        }
        Ok(selected) => selected,
        Err(message) => {
            eprintln!("zap: {message}");
            return exit::USAGE;
        }
    };
    let hosts: Vec<HostName> = selected.iter().map(|id| id.host.clone()).collect();
    let transports = match transports_for(plan, &hosts) {
        Ok(transports) => transports,
        Err(error) => {
            eprintln!("zap: {error}");
            return exit::USAGE;
        }
    };
    let colour = std::io::stdout().is_terminal();
    let mut printer = Printer::new(Outlet::stdout(None), colour, &selected);
    let state = run::run(plan, &selected, &transports, &mut printer, timeout).await;
    let mut out = printer.into_inner();
    let _ = out.write_all(summary::render(&state).as_bytes());
    // The jobs are done: wait for the reader as any filter would.
    out.close(None);
    if let Some(path) = report_path
        && let Err(error) = write_report(&state, path)
    {
        eprintln!(
            "zap: cannot write the report to {}: {error}",
            path.display()
        );
        return exit::USAGE;
    }
    exit_code(&state)
}

fn write_report(state: &State, path: &Path) -> std::io::Result<()> {
    let json =
        serde_json::to_string_pretty(&report::build(state)).map_err(std::io::Error::other)?;
    std::fs::write(path, json + "\n")
}

/// 3 if a host could not be reached, else 1 if any job did not succeed.
fn exit_code(state: &State) -> u8 {
    let phases = state.instances().iter().map(|instance| instance.phase());
    let mut code = exit::OK;
    for phase in phases {
        match phase {
            Phase::Done(Outcome::Ok) => {}
            Phase::Done(Outcome::Unreachable(_)) => return exit::UNREACHABLE,
            _ => code = exit::JOB_FAILED,
        }
    }
    code
}

async fn check_command(plan: &Plan, connect: bool) -> u8 {
    let jobs = plan.jobs.len();
    let hosts_in_use: Vec<HostName> = {
        let mut hosts: Vec<HostName> = plan.jobs.iter().flat_map(|job| job.hosts.clone()).collect();
        hosts.sort();
        hosts.dedup();
        hosts
    };
    // Every fixup pack proves itself with its own test cases.
    let failures = fixup::check_packs(plan);
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("{failure}");
        }
        eprintln!("{} fixup pack test cases failed", failures.len());
        return exit::USAGE;
    }
    println!(
        "config ok: {} hosts, {} systems, {jobs} jobs",
        plan.hosts.len(),
        plan.systems.len()
    );
    if !connect {
        return exit::OK;
    }
    let transports = match transports_for(plan, &hosts_in_use) {
        Ok(transports) => transports,
        Err(error) => {
            eprintln!("zap: {error}");
            return exit::USAGE;
        }
    };
    let mut checks = tokio::task::JoinSet::new();
    for name in &hosts_in_use {
        let Some(transport) = transports.get(name).cloned() else {
            continue;
        };
        let is_ssh = matches!(
            plan.hosts.get(name).map(|host| &host.kind),
            Some(HostKind::Ssh(_))
        );
        let name = name.clone();
        checks.spawn(async move { (name, is_ssh, transport.ensure_connected().await) });
    }
    let mut results = checks.join_all().await;
    results.sort_by(|a, b| a.0.cmp(&b.0));
    let mut code = exit::OK;
    for (name, is_ssh, result) in results {
        match (result, is_ssh) {
            (Ok(()), true) => println!("{name}: connected and authenticated"),
            (Ok(()), false) => println!("{name}: local"),
            (Err(error), _) => {
                println!("{name}: {error}");
                code = exit::UNREACHABLE;
            }
        }
    }
    for transport in transports.values() {
        transport.close().await;
    }
    code
}
