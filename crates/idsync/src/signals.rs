//! SIGTERM (systemd, Kubernetes) and SIGINT (Ctrl-C) ask idsync to stop: runs under way end
//! after the operations in flight, are recorded, and show as `interrupted`. The drain is
//! bounded: after [`DRAIN`], or at a second signal, the process exits anyway (the run is then
//! marked interrupted at the next start).

use idsync_engine::Runtime;
use std::time::Duration;

/// How long a stop waits for runs to end after their operations in flight.
pub const DRAIN: Duration = Duration::from_secs(10);

/// A signal that asks idsync to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
        }
    }

    /// The exit code of a process stopped by this signal (128 + its number).
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Interrupt => 130,
            Signal::Terminate => 143,
        }
    }
}

/// The process was asked to stop while a command ran.
#[derive(Debug, thiserror::Error)]
#[error("stopped by {}: {}", signal.name(), if *drained { "the run ended after the operations in flight and shows as interrupted in `idsync runs`; the next run carries on" } else { "the run did not end within the drain time; it shows as interrupted at the next start" })]
pub struct Stopped {
    pub signal: Signal,
    /// Whether the run under way ended (recorded as interrupted) before the process exits.
    pub drained: bool,
}

/// Waits for SIGINT or SIGTERM. Listening starts when this is made, so that a signal that
/// arrives before the wait is not lost (and no longer kills the process outright).
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn listen() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    pub async fn recv(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => Signal::Terminate,
                _ = self.int.recv() => Signal::Interrupt,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Interrupt
        }
    }
}

/// Run `work` (a command that runs flows); on SIGTERM or SIGINT ask the runtime to stop and
/// wait for `work` to end, at most [`DRAIN`] or until a second signal.
pub async fn until_stopped<T>(
    rt: &Runtime,
    work: impl std::future::Future<Output = Result<T, idsync_engine::EngineError>>,
) -> anyhow::Result<T> {
    let mut signals = Signals::listen()?;
    tokio::pin!(work);
    let signal = tokio::select! {
        r = &mut work => return Ok(r?),
        s = signals.recv() => s,
    };
    tracing::warn!(
        signal = signal.name(),
        drain_s = DRAIN.as_secs(),
        "stopping: the run ends after the operations in flight"
    );
    rt.shutdown();
    let drained = tokio::select! {
        r = &mut work => Some(r),
        _ = tokio::time::sleep(DRAIN) => None,
        _ = signals.recv() => None,
    };
    match drained {
        // The run finished before it saw the stop.
        Some(Ok(v)) => Ok(v),
        Some(Err(idsync_engine::EngineError::Interrupted { .. })) => Err(Stopped {
            signal,
            drained: true,
        }
        .into()),
        Some(Err(e)) => Err(e.into()),
        None => Err(Stopped {
            signal,
            drained: false,
        }
        .into()),
    }
}
