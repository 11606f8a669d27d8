//! What an operator expects of a daemon on day one: Prometheus metrics, the
//! systemd notify protocol and watchdog, a self-ping to an outside dead man's
//! switch, and secret-free logs.
//!
//! - [`prometheus`]: per-daemon recorder, `GET /metrics`, HTTP and job metrics.
//! - [`liveness`]: which background loops are alive (watchdog and self-ping read it).
//! - [`sd_notify`]: READY / WATCHDOG / STOPPING.
//! - [`self_ping`]: the outbound ping while healthy.
//! - [`redact`]: masks keys, webhook secrets and DSN passwords in every log line.

pub mod liveness;
pub mod prometheus;
pub mod redact;
pub mod sd_notify;
pub mod self_ping;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio_util::task::TaskTracker;

use crate::config::ConfigError;
use crate::state::AppState;

/// The `[ops]` configuration section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    /// URL the daemon GETs every `self_ping_interval_secs` while healthy
    /// (`--self-ping-url`, `HEARTBEAT_SELF_PING_URL`). Unset: no self-ping.
    pub self_ping_url: Option<String>,
    /// Seconds between self-pings.
    pub self_ping_interval_secs: u64,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            self_ping_url: None,
            self_ping_interval_secs: 60,
        }
    }
}

impl OpsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.self_ping_url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| ConfigError::new("ops.self_ping_url", format!("not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::new(
                    "ops.self_ping_url",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if self.self_ping_interval_secs == 0 {
            return Err(ConfigError::new(
                "ops.self_ping_interval_secs",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

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
