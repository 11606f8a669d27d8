//! The refresh work behind the `recompute` and `benchmarks` lanes, and the cockpit
//! API that reads its results (docs/refresh.md).
//!
//! - [`sources`]: ingest from `[[sources]]` into `heartbeat.event`, cursor by cursor.
//! - [`definitions`]: `sql/metrics/<id>.sql` files and their metadata header.
//! - [`compute`]: registry sync and incremental, backfilling compute, all in SQL.
//! - [`benchmarks`]: μ/σ of `rolling_stat` metrics over a rolling window.
//! - [`bodies`]: the [`crate::jobs::JobBody`] implementations the lanes run.
//! - [`cockpit`]: `GET /api/metrics` and `GET /api/metrics/{id}/values`.

pub mod benchmarks;
pub mod bodies;
pub mod cockpit;
pub mod compute;
pub mod definitions;
pub mod sources;

use serde::Deserialize;

pub use bodies::{BenchmarksBody, RecomputeBody};
pub use cockpit::routes;

use crate::config::ConfigError;

/// The `[refresh]` section.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RefreshConfig {
    /// How far back compute ever reaches, days: a new or changed metric is computed
    /// from its first event but not before this horizon.
    pub history_days: u32,
    /// The rolling window μ and σ are taken over, days.
    pub benchmark_window_days: u32,
    /// Fewer non-null points than this in the window: μ, σ, z and band are null.
    pub benchmark_min_points: u32,
    /// Largest series `GET /api/metrics/{id}/values` returns, in buckets; a wider
    /// range is refused with 422.
    pub max_series_points: u32,
    /// More separate runs of buckets than this in one compute are merged into one
    /// span (recomputing the untouched buckets between them, harmlessly), so late
    /// events scattered over months cost one query, not thousands.
    pub max_runs_per_metric: u32,
    /// Metrics computed at once (each on its own connection and transaction).
    pub compute_concurrency: u32,
}

impl Default for RefreshConfig {
    fn default() -> Self {
        Self {
            history_days: 400,
            benchmark_window_days: 28,
            benchmark_min_points: 8,
            max_series_points: 5000,
            max_runs_per_metric: 64,
            compute_concurrency: 4,
        }
    }
}

impl RefreshConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("refresh.history_days", self.history_days),
            ("refresh.benchmark_window_days", self.benchmark_window_days),
            ("refresh.benchmark_min_points", self.benchmark_min_points),
            ("refresh.max_series_points", self.max_series_points),
            ("refresh.max_runs_per_metric", self.max_runs_per_metric),
            ("refresh.compute_concurrency", self.compute_concurrency),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ConfigError::new(field, "must be at least 1"));
            }
        }
        if self.benchmark_min_points < 2 {
            return Err(ConfigError::new(
                "refresh.benchmark_min_points",
                "must be at least 2 (σ needs two points)",
            ));
        }
        Ok(())
    }
}

/// The sources a recompute ingests: the configured ones, plus the implicit `demo`
/// source in demo mode (unless one is declared already).
pub fn effective_sources(config: &crate::config::Config) -> Vec<sources::SourceConfig> {
    let mut list = config.sources.clone();
    let has_demo = list
        .iter()
        .any(|s| matches!(s, sources::SourceConfig::Demo(_)));
    if config.demo_enabled() && !has_demo {
        list.push(sources::SourceConfig::Demo(
            sources::demo::DemoConfig::default(),
        ));
    }
    list
}
