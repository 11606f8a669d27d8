//! What an operator expects of a daemon on day one: Prometheus metrics, the
//! systemd notify protocol and watchdog, a self-ping to an outside dead man's
//! switch, and secret-free logs.
//!
//! - [`config`]: the `[ops]` section.
//! - [`prometheus`]: the per-daemon recorder, and what a scrape renders.
//! - [`routes`]: `GET /metrics` and the middleware that counts HTTP requests.
//! - [`liveness`]: which background loops are alive (watchdog and self-ping read it).
//! - [`sd_notify`]: READY / WATCHDOG / STOPPING.
//! - [`self_ping`]: the outbound ping while healthy.
//! - [`redact`]: masks keys, webhook secrets and DSN passwords in every log line.
//! - [`table_rows`]: row-count estimates and the process's RSS for `/metrics`.

pub mod config;
pub mod liveness;
pub mod prometheus;
pub mod redact;
pub mod routes;
pub mod sd_notify;
pub mod self_ping;
pub mod table_rows;

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use routes::routes;

pub use config::OpsConfig;

/// What the ops loops need, handed over by `background` (never the app state).
pub struct LoopDeps {
    pub config: OpsConfig,
    pub metrics: prometheus::Metrics,
    pub liveness: liveness::Liveness,
    /// The self-ping checks the database answers before it pings.
    pub pool: Pool,
    pub shutdown: CancellationToken,
}

/// Starts the recorder's upkeep timer, the job-metrics observer, the systemd
/// notifier and the self-ping.
pub fn spawn_loops(
    deps: LoopDeps,
    tasks: &TaskTracker,
    finished: tokio::sync::broadcast::Receiver<crate::jobs::Job>,
) {
    tasks.spawn(prometheus::upkeep_loop(prometheus::UpkeepDeps {
        metrics: deps.metrics.clone(),
        shutdown: deps.shutdown.clone(),
    }));
    tasks.spawn(prometheus::observe_jobs(
        prometheus::JobObserverDeps {
            metrics: deps.metrics,
            shutdown: deps.shutdown.clone(),
        },
        finished,
    ));
    tasks.spawn(sd_notify::run(sd_notify::LoopDeps {
        liveness: deps.liveness.clone(),
        shutdown: deps.shutdown.clone(),
    }));
    if let Some(url) = &deps.config.self_ping_url {
        match reqwest::Url::parse(url) {
            Ok(url) => {
                tasks.spawn(self_ping::run(self_ping::LoopDeps {
                    url,
                    every: Duration::from_secs(deps.config.self_ping_interval_secs),
                    liveness: deps.liveness,
                    pool: deps.pool,
                    shutdown: deps.shutdown,
                }));
            }
            Err(e) => tracing::error!(error = %e, "self-ping disabled: bad URL"),
        }
    }
}
