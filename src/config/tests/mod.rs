//! Loading whole config folders: one case per kind of mistake (with its file,
//! line, column, key path and value), and the plans that good folders give.

mod errors;
mod plans;

use std::path::Path;

use super::*;
use crate::model::{HostName, JobName};

const HOME: &str = "/home/ada";
const DIR: &str = "/srv/cfg";

fn load_files(files: &[(&str, &str)]) -> Result<Plan, ConfigErrors> {
    let sources: Vec<SourceFile> = files
        .iter()
        .map(|(path, text)| SourceFile::new(*path, *text))
        .collect();
    load_with_home(Path::new(DIR), &sources, Some(Path::new(HOME)))
}

fn plan(files: &[(&str, &str)]) -> Plan {
    match load_files(files) {
        Ok(plan) => plan,
        Err(errors) => panic!("expected a plan, got:\n{errors}"),
    }
}

fn errors(files: &[(&str, &str)]) -> Vec<Diagnostic> {
    match load_files(files) {
        Ok(_) => panic!("expected errors, got a plan"),
        Err(errors) => errors.diagnostics().to_vec(),
    }
}

/// The one diagnostic that `files` give.
fn only_error(files: &[(&str, &str)]) -> Diagnostic {
    let mut all = errors(files);
    assert_eq!(
        all.len(),
        1,
        "expected one error, got:\n{}",
        ConfigErrors::new(all.clone())
    );
    all.remove(0)
}

/// Checks where a diagnostic points and what it says.
#[track_caller]
fn assert_diag(
    diagnostic: &Diagnostic,
    (file, line, column): (&str, usize, usize),
    key_path: &str,
    value: Option<&str>,
    message: &str,
) {
    assert_eq!(
        (
            diagnostic.file.as_path(),
            diagnostic.line,
            diagnostic.column
        ),
        (Path::new(file), line, column),
        "{diagnostic}"
    );
    assert_eq!(diagnostic.key_path, key_path, "{diagnostic}");
    assert_eq!(diagnostic.value.as_deref(), value, "{diagnostic}");
    assert_eq!(diagnostic.message, message, "{diagnostic}");
}

fn job<'p>(plan: &'p Plan, system: &str, job: &str) -> &'p Job {
    let name = JobName {
        system: system.to_string(),
        job: job.to_string(),
    };
    match plan.job(&name) {
        Some(job) => job,
        None => panic!("no job {name}"),
    }
}

fn ssh<'p>(plan: &'p Plan, host: &str) -> &'p SshHost {
    match plan
        .hosts
        .get(&HostName(host.to_string()))
        .map(|host| &host.kind)
    {
        Some(HostKind::Ssh(ssh)) => ssh,
        other => panic!("{host} is not an ssh host: {other:?}"),
    }
}

fn host_names(job: &Job) -> Vec<&str> {
    job.hosts.iter().map(|host| host.0.as_str()).collect()
}

const ONE_JOB: &str = "[jobs.build]\nhost = \"local\"\nsteps = [\"make\"]\n";
/// A user's fixup pack, as small as a valid one gets.
const VM_PACK: &str = "name = \"vm\"\ndescription = \"Start the VM.\"\n[[rule]]\nname = \"down\"\nwhen = \"down\"\nrun = \"virsh start nico\"\n";
