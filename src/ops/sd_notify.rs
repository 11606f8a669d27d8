//! systemd integration for `Type=notify` units: READY=1 once the schema is
//! migrated (this loop is started then, by `background`, after the listener is bound), WATCHDOG=1 at half the
//! unit's `WatchdogSec` but only while every watched loop is alive, STOPPING=1 when
//! shutdown begins.
//!
//! Withholding WATCHDOG=1 is the point: a daemon whose scheduler or deadline loop
//! has stalled still answers HTTP, so only the watchdog turns "silently stuck" into
//! "restarted by systemd". Outside systemd (`NOTIFY_SOCKET` unset) every send is a
//! no-op.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use super::liveness::Liveness;

/// What the notifier needs.
pub struct LoopDeps {
    /// Whose stalls withhold the watchdog.
    pub liveness: Liveness,
    pub shutdown: CancellationToken,
}

/// Sends `states`, logging (not failing) when the socket refuses.
fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Runs for the daemon's lifetime.
pub async fn run(deps: LoopDeps) {
    send(&[NotifyState::Ready, NotifyState::Status("serving")]);
    tracing::info!("ready");
    let Some(timeout) = sd_notify::watchdog_enabled() else {
        deps.shutdown.cancelled().await;
        send(&[NotifyState::Stopping]);
        return;
    };
    // Half the timeout, as sd_watchdog_enabled(3) recommends.
    let every = (timeout / 2).max(Duration::from_millis(50));
    tracing::info!(?timeout, "systemd watchdog on");
    let mut tick = tokio::time::interval(every);
    let mut was_healthy = true;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = deps.shutdown.cancelled() => break,
        }
        let stalled = deps.liveness.stalled();
        if stalled.is_empty() {
            send(&[NotifyState::Watchdog]);
            if !was_healthy {
                tracing::info!("all watched loops beat again; watchdog resumed");
            }
            was_healthy = true;
        } else if was_healthy {
            let names: Vec<&str> = stalled.iter().map(|s| s.name).collect();
            tracing::error!(stalled = ?names, "watched loops stalled; withholding the watchdog so systemd restarts the daemon");
            was_healthy = false;
        }
    }
    send(&[NotifyState::Stopping]);
}
