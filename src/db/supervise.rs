//! Keeps the embedded PostgreSQL running: if the server dies (killed, OOM, a
//! crash), it is started again, so the dead man's switch does not sit alive but
//! useless answering `/readyz` 503 (docs/operations/postgres-restarted.md).
//!
//! Only for the embedded default: with an external `DATABASE_URL` the daemon
//! cannot restart the server and keeps retrying its connections as before.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::embedded::{EmbeddedCluster, Restarted};

/// How often the server's process is checked.
pub const CHECK_EVERY: Duration = Duration::from_millis(250);
/// First and longest wait between failed restarts (a start fails while the dead
/// server's backends still hold its shared memory; they exit within a second or so).
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// What [`run`] needs.
pub struct SupervisorDeps {
    /// Shared with the code that stops the cluster at shutdown; a std mutex,
    /// taken in a blocking task while a restart waits for the server.
    pub cluster: Arc<Mutex<EmbeddedCluster>>,
    /// `heartbeat_embedded_postgres_restarts_total`.
    pub restarts: metrics::Counter,
    pub shutdown: CancellationToken,
}

/// Watches the server until shutdown, restarting it when it dies.
pub async fn run(deps: SupervisorDeps) {
    let SupervisorDeps {
        cluster,
        restarts,
        shutdown,
    } = deps;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
        let exited = cluster.lock().unwrap().server_exited();
        let Some(status) = exited else { continue };
        tracing::error!(%status, "embedded PostgreSQL exited; restarting it (PostgreSQL recovers from its WAL)");
        let mut wait = RETRY_FIRST;
        loop {
            let attempt = {
                let cluster = cluster.clone();
                tokio::task::spawn_blocking(move || cluster.lock().unwrap().restart()).await
            };
            match attempt {
                Ok(Ok(how)) => {
                    restarts.increment(1);
                    match how {
                        Restarted::Started => tracing::warn!("embedded PostgreSQL restarted"),
                        Restarted::Adopted => tracing::warn!(
                            "a PostgreSQL server already runs on the data directory; using it"
                        ),
                    }
                    break;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, retry_in = ?wait, "embedded PostgreSQL did not restart yet")
                }
                Err(e) => tracing::error!(error = %e, "restart task failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.cancelled() => return,
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
    }
}
