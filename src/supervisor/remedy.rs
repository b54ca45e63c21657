//! Running a fixup's remedy where it says, with the job's environment, to
//! an end within its timeout.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::fixup::Remedy;
use crate::model::ExitInfo;
use crate::transport::escape::quote;
use crate::transport::host::Transport;

/// Most of a remedy's output kept for the job's log.
const REMEDY_OUTPUT_LINES: usize = 40;

/// Runs a fixup's remedy with the job's environment, stopped (KILL) at its
/// timeout, and returns how it ended and what it printed.
pub async fn run_remedy(
    transport: &Transport,
    remedy: &Remedy,
    env: &BTreeMap<String, String>,
) -> (ExitInfo, String) {
    let mut script = String::new();
    for (name, value) in env {
        if crate::transport::script::is_env_name(name) {
            script.push_str(&format!("export {name}={}; ", quote(value)));
        }
    }
    script.push_str(&remedy.command);
    let seconds = remedy.timeout.as_secs().max(1);
    // `timeout` (coreutils, busybox) ends it on the host itself; where it is
    // missing, zap's own wait below still ends the wait.
    let command = format!(
        "if command -v timeout >/dev/null 2>&1; then exec timeout -s KILL {seconds} /bin/sh -c {script}; \
         else exec /bin/sh -c {script}; fi",
        script = quote(&script)
    );
    let wait = remedy.timeout + Duration::from_secs(10);
    match tokio::time::timeout(wait, transport.run_capture(&command)).await {
        Ok(Ok((exit, stdout, stderr))) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
            let lines: Vec<&str> = text.lines().collect();
            let kept = lines.len().saturating_sub(REMEDY_OUTPUT_LINES);
            let mut output = lines[kept..].join("\n");
            if kept > 0 {
                output = format!("({kept} earlier lines not kept)\n{output}");
            }
            let exit = match exit {
                // `timeout -s KILL` reports its kill as 137.
                ExitInfo::Code(137) => ExitInfo::Signal("KILL".into()),
                other => other,
            };
            (exit, output)
        }
        Ok(Err(error)) => (
            ExitInfo::Unknown,
            format!("could not run the remedy: {error}"),
        ),
        Err(_) => (
            ExitInfo::Unknown,
            format!("the remedy did not end within {}s", wait.as_secs()),
        ),
    }
}
