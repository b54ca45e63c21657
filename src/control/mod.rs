//! The running instance's Unix control socket, and the commands that talk to it.
