//! zap brings up and watches flocks of commands on many hosts.
//!
//! Data flows one way, from the core to the front ends; the core never
//! imports a front end.
//!
//! The core:
//! - `model`: the nouns every layer shares (hosts, jobs, instances, exits);
//! - `config`: `hosts.toml` + `jobs/*.toml` → a typed [`config::Plan`];
//! - `transport`: starts a job's wrapper shell locally or over SSH and
//!   decodes its output into lines, steps and exit codes;
//! - `supervisor`: the state of every job instance and the loop that owns
//!   it; `State::apply` returns effects and typed changes;
//! - `fixup`: output patterns that name a known failure, and their remedies;
//! - `stats`: CPU and memory per job and host, from the hosts' process tables;
//! - `logs`: the ring of recent lines and the files under `.zap/logs/`;
//! - `words`: zap's words for a state and for each change, written once;
//! - `action`: the one vocabulary of requests (keys, socket, help);
//! - `targets`: which instances a TARGET names;
//! - `demo`: the built-in demo config.
//!
//! The front ends, and the layer that wires them:
//! - `headless`: prefixed lines for `zap run` and `zap up --headless`;
//! - `logbook`: each job's recent lines in memory, its files on disk, `zap logs -f`;
//! - `harmless`: job output made safe for a terminal (escapes shown, not obeyed);
//! - `ui`: the terminal UI of `zap up`;
//! - `control`: the control socket and the commands that talk to it;
//! - `status`, `summary`, `report`: `zap status`, the end-of-run summary and
//!   the JSON report, pure functions of the state;
//! - `commands`: each command's wiring of core and front ends, exit codes;
//! - `cli`: the command line.

pub mod action;
pub mod cli;
pub mod commands;
pub mod config;
pub mod control;
pub mod demo;
pub mod fixup;
pub mod harmless;
pub mod headless;
pub mod logbook;
pub mod logs;
pub mod model;
pub mod report;
pub mod stats;
pub mod status;
pub mod summary;
pub mod supervisor;
pub mod targets;
pub mod transport;
pub mod ui;
pub mod words;
