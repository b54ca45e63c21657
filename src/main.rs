//! The `zap` binary: all of it lives in the library.

fn main() -> std::process::ExitCode {
    zap::cli::main()
}
