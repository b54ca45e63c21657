//! The commands layer: each command wires the core (config, supervisor,
//! transport, logs) to its front ends (terminal UI, headless lines, control
//! socket) and turns the result into an exit code. The core never imports
//! from here.

pub mod exit;
pub mod up;
