//! The handles every HTTP handler shares. Background loops get a deps struct of
//! the few handles they use instead, built by `background`.

use std::sync::Arc;

use deadpool_postgres::Pool;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Cheap to clone: one reference count. Every middleware and extractor clones the
/// state per request, so a struct of a dozen handles (one of them a
/// `CancellationToken`, whose clone takes a lock) showed up at 7 % of the request
/// path in the gate benchmark; fields are reached through `Deref`.
#[derive(Clone)]
pub struct AppState(Arc<StateInner>);

impl AppState {
    pub fn new(inner: StateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = StateInner;
    fn deref(&self) -> &StateInner {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct StateInner {
    /// Pooled connections for request handlers and job bodies. Session-level state
    /// (advisory locks) must never be taken on these: a returned connection keeps it.
    pub pool: Pool,
    /// Where the database is, for the few places that need a connection outside the
    /// pool (migrations, lane locks).
    pub database_url: Arc<str>,
    pub config: Arc<Config>,
    /// The single-flight jobs engine: the one gate for every job request.
    pub jobs: crate::jobs::Engine,
    /// The deployed metric ids, so a recompute request is validated without
    /// reading the definitions directory each time.
    pub metric_catalog: crate::refresh::definitions::MetricCatalog,
    /// The cron table's per-entry counters (fired, absorbed, missed, caught up).
    pub schedule: crate::schedule::counters::ScheduleCounters,
    /// Flips to true once migrations are applied (and the ping history fitted).
    /// `background` waits on it once before starting any loop, so a daemon started
    /// before its database does nothing until the schema is there; `/readyz`
    /// reads it too.
    pub migrated: watch::Receiver<bool>,
    /// This daemon's Prometheus recorder (one per daemon, not process-global).
    pub metrics: crate::ops::prometheus::Metrics,
    /// Loops the watchdog and self-ping watch; each beats on every pass.
    pub liveness: crate::ops::liveness::Liveness,
    /// Cancelled when the daemon begins to shut down.
    pub shutdown: CancellationToken,
    /// The group-commit ping writer: every ping, HTTP or from the daemon's own
    /// jobs, goes through it so pings arriving together share one commit.
    pub pings: crate::monitor::ping::PingWriter,
    /// Sends alerts: `POST /api/channels/{id}/test` sends through it, and the
    /// delivery worker gets a clone.
    pub notifier: crate::notify::outbox::Deliverer,
    /// healthchecks.io check UUIDs already resolved to their heartbeat's token, so
    /// `/ping/<uuid>` costs no lookup on top of its ping's batch.
    pub hc_uuids: crate::hc::ping::UuidTokens,
}
