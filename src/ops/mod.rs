//! What an operator expects of a daemon on day one: Prometheus metrics, the
//! systemd notify protocol and watchdog, a self-ping to an outside dead man's
//! switch, and secret-free logs.
//!
//! - [`config`]: the `[ops]` section.
//! - [`prometheus`]: per-daemon recorder, `GET /metrics`, HTTP and job metrics.
//! - [`liveness`]: which background loops are alive (watchdog and self-ping read it).
//! - [`sd_notify`]: READY / WATCHDOG / STOPPING.
//! - [`self_ping`]: the outbound ping while healthy.
//! - [`redact`]: masks keys, webhook secrets and DSN passwords in every log line.

pub mod config;
pub mod liveness;
pub mod prometheus;
pub mod redact;
pub mod sd_notify;
pub mod self_ping;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use tokio_util::task::TaskTracker;

use crate::state::AppState;

pub use config::OpsConfig;

/// `/metrics` (outside `/api`: scrapers need no key).
pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(prometheus::metrics_route))
}

/// Starts the job-metrics observer, the systemd notifier and the self-ping.
pub fn spawn_loops(
    state: &AppState,
    tasks: &TaskTracker,
    finished: tokio::sync::broadcast::Receiver<crate::jobs::Job>,
) {
    tasks.spawn(prometheus::observe_jobs(state.clone(), finished));
    tasks.spawn(sd_notify::run(state.clone()));
    if let Some(url) = &state.config.ops.self_ping_url {
        match reqwest::Url::parse(url) {
            Ok(url) => {
                let every = Duration::from_secs(state.config.ops.self_ping_interval_secs);
                tasks.spawn(self_ping::run(state.clone(), url, every));
            }
            Err(e) => tracing::error!(error = %e, "self-ping disabled: bad URL"),
        }
    }
}
