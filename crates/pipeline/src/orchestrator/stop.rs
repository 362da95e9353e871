//! SIGTERM and SIGINT (Ctrl-C): noticed once, kept, and seen by whoever asks.

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::OrchestratorError;

/// The signal that asked the orchestrator to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM (`kill`, systemd, docker stop).
    Term,
    /// SIGINT (Ctrl-C).
    Int,
}

impl StopSignal {
    /// `SIGTERM` or `SIGINT`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Term => "SIGTERM",
            Self::Int => "SIGINT",
        }
    }

    /// The shell's convention for a process ended by this signal: 128 + its number.
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Term => 143,
            Self::Int => 130,
        }
    }
}

/// A handle on the stop request: cheap to clone, every clone sees the same request.
#[derive(Debug, Clone)]
pub struct Stop {
    requested: watch::Receiver<Option<StopSignal>>,
}

impl Stop {
    /// Listen for SIGTERM and SIGINT from now on (inside a tokio runtime). From here on these
    /// signals no longer end the process: the orchestrator decides how to stop.
    pub fn install() -> Result<Self, OrchestratorError> {
        let listen = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|source| OrchestratorError::Signals {
                signal: name,
                source,
            })
        };
        let mut term = listen(SignalKind::terminate(), "SIGTERM")?;
        let mut int = listen(SignalKind::interrupt(), "SIGINT")?;
        let (tx, requested) = watch::channel(None);
        tokio::spawn(async move {
            let first = tokio::select! {
                _ = term.recv() => StopSignal::Term,
                _ = int.recv() => StopSignal::Int,
            };
            tracing::info!(signal = first.name(), "received {}, stopping", first.name());
            tx.send_replace(Some(first));
            // Keep the handlers installed (a second signal is ignored) while anyone listens.
            tx.closed().await;
        });
        Ok(Self { requested })
    }

    /// The signal received so far, if any.
    pub fn requested(&self) -> Option<StopSignal> {
        *self.requested.borrow()
    }

    /// Resolves when a stop signal has been received (at once if one already was).
    pub async fn wait(&mut self) -> StopSignal {
        match self.requested.wait_for(Option::is_some).await {
            Ok(signal) => signal.expect("wait_for returns a Some"),
            // The listener is gone (the runtime is shutting down): nothing will come.
            Err(_) => std::future::pending().await,
        }
    }
}
