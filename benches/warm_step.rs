//! Warm step latency, driven by `bench/run`: one job instance run again and
//! again on a connection zap already holds, through the same path `zap run`
//! and `zap up` take for each job (`supervisor::instance::run_instance`:
//! open a channel, start the wrapper shell, decode markers, read the exit).
//!
//!   warm_step CONFIG_DIR SYSTEM.JOB@HOST
//!
//! It connects once, then reads batch sizes from stdin, one per line; for
//! each it runs that many jobs back to back and prints the mean wall time
//! per job in nanoseconds. `bench/run` interleaves these batches with
//! OpenSSH ControlMaster batches, so both sides see the same machine load.
//! Not a test and not run by `cargo bench` on its own (no arguments: it
//! says how to run it and exits 0).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use tokio::sync::mpsc;
use zap::model::ExitInfo;
use zap::supervisor::Event;
use zap::supervisor::instance::{RunContext, run_instance};
use zap::transport::decode::JobEvent;
use zap::transport::host::{Transport, transports_for};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`; anything but our two arguments means
    // we were not started by bench/run.
    let [dir, target] = args.as_slice() else {
        eprintln!("warm_step: run through bench/run (it starts the sshd hosts this needs)");
        return ExitCode::SUCCESS;
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("warm_step: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(PathBuf::from(dir), target)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("warm_step: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(dir: PathBuf, target: &str) -> Result<(), String> {
    let plan = zap::config::load(&dir).map_err(|errors| errors.to_string())?;
    let selected = zap::targets::select(&plan, &[target.to_string()])?;
    let [id] = selected.as_slice() else {
        return Err(format!(
            "{target} names {} instances, not one",
            selected.len()
        ));
    };
    let job = plan
        .job(&id.job)
        .ok_or_else(|| format!("no job {}", id.job))?
        .clone();
    let transports =
        transports_for(&plan, std::iter::once(&id.host)).map_err(|error| error.to_string())?;
    let transport = transports
        .get(&id.host)
        .ok_or_else(|| format!("no transport for {}", id.host))?
        .clone();
    transport
        .ensure_connected()
        .await
        .map_err(|error| error.to_string())?;
    let context = RunContext {
        run_id: zap::supervisor::run::new_run_id(),
    };
    // One warm-up job: the first channel on a connection costs more.
    once(id, &job, &transport, &context, 0).await?;

    let mut generation = 1;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    while let Some(Ok(line)) = lines.next() {
        let count: u64 = line
            .trim()
            .parse()
            .map_err(|_| format!("not a batch size: {line:?}"))?;
        let start = Instant::now();
        for _ in 0..count {
            once(id, &job, &transport, &context, generation).await?;
            generation += 1;
        }
        let nanos = start.elapsed().as_nanos() / u128::from(count.max(1));
        let mut out = std::io::stdout().lock();
        writeln!(out, "{nanos}").map_err(|error| error.to_string())?;
        out.flush().map_err(|error| error.to_string())?;
    }
    transport.close().await;
    Ok(())
}

/// Runs the job once to its end; an exit other than 0 is an error.
async fn once(
    id: &zap::model::InstanceId,
    job: &zap::config::Job,
    transport: &Transport,
    context: &RunContext,
    generation: u64,
) -> Result<(), String> {
    let (tx, mut rx) = mpsc::channel(64);
    let run = run_instance(
        id.clone(),
        generation,
        job.clone(),
        transport.clone(),
        context.clone(),
        tx,
    );
    let watch = async {
        let mut exit = None;
        while let Some((_, _, batch)) = rx.recv().await {
            for event in batch {
                match event {
                    Event::Job(JobEvent::Ended { exit: ended }) => exit = Some(ended),
                    Event::Unreachable(reason) | Event::LaunchFailed(reason) => {
                        return Err(reason);
                    }
                    Event::HostLost(reason) => return Err(format!("host lost: {reason}")),
                    _ => {}
                }
            }
        }
        match exit {
            Some(ExitInfo::Code(0)) => Ok(()),
            other => Err(format!("the job ended with {other:?}")),
        }
    };
    let ((), result) = tokio::join!(run, watch);
    result
}
