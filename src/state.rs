//! Shared state every handler and background loop reads.

use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct AppState {
    /// Pooled connections for request handlers and job bodies. Session-level state
    /// (advisory locks) must never be taken on these: a returned connection keeps it.
    pub pool: Pool,
    /// Where the database is, for the few places that need a connection outside the
    /// pool (migrations, lane locks).
    pub database_url: Arc<str>,
    pub config: Arc<Config>,
    /// The single-flight jobs engine: the one gate for every job request.
    pub jobs: crate::jobs::Engine,
    /// The cron table's per-entry counters (fired, absorbed, missed, caught up).
    pub schedule: crate::schedule::ScheduleCounters,
    /// Flips to true once migrations are applied; background loops wait on it so a
    /// daemon started before its database does nothing until the schema is there.
    pub migrated: watch::Receiver<bool>,
    /// Cancelled when the daemon begins to shut down.
    pub shutdown: CancellationToken,
    /// The group-commit ping writer: every ping, HTTP or from the daemon's own
    /// jobs, goes through it so pings arriving together share one commit.
    pub pings: crate::monitor::ping::PingWriter,
}

impl AppState {
    /// Waits until migrations are applied, or shutdown begins (returns false).
    pub async fn wait_migrated(&self) -> bool {
        let mut rx = self.migrated.clone();
        tokio::select! {
            res = rx.wait_for(|done| *done) => res.is_ok(),
            _ = self.shutdown.cancelled() => false,
        }
    }
}
