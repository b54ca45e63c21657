//! The signals that stop zap itself: Ctrl+C, SIGTERM, SIGHUP.

/// SIGINT, SIGTERM and SIGHUP (the terminal closed), listened to for the
/// whole run so none is missed between two turns of the loop.
pub struct StopSignals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
    hangup: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    /// Starts listening: from here on none of the three is missed.
    pub fn listen() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        StopSignals {
            interrupt: signal(SignalKind::interrupt()).ok(),
            terminate: signal(SignalKind::terminate()).ok(),
            hangup: signal(SignalKind::hangup()).ok(),
        }
    }

    pub async fn next(&mut self) -> &'static str {
        async fn wait(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    if signal.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = wait(&mut self.interrupt) => "stopped by Ctrl+C",
            () = wait(&mut self.terminate) => "stopped by SIGTERM",
            () = wait(&mut self.hangup) => "stopped by SIGHUP",
        }
    }
}
