//! zap brings up and watches flocks of commands on many hosts.
//!
//! Data flows one way:
//! - `config`: `hosts.toml` + `jobs/*.toml` → a typed [`config::Plan`];
//! - `transport`: starts a job's wrapper shell locally or over SSH and decodes
//!   its output into lines, steps and exit codes;
//! - `supervisor`: the one place that owns the state of every job instance;
//! - front ends read that state: `headless` (prefixed lines), `summary`,
//!   `report` (JSON);
//! - `cli`: the command line that ties them together.

pub mod action;
pub mod cli;
pub mod config;
pub mod control;
pub mod demo;
pub mod fixup;
pub mod headless;
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
