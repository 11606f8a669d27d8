//! The refresh work behind the `recompute` and `benchmarks` lanes, and the cockpit
//! API that reads its results (docs/refresh.md).
//!
//! - [`sources`]: ingest from `[[sources]]` into `heartbeat.event`, cursor by cursor.
//! - [`definitions`]: `sql/metrics/<id>.sql` files and their metadata header.
//! - [`compute`]: registry sync and incremental, backfilling compute, all in SQL.
//! - [`backfill`]: the buckets a requested range recomputes per metric (jobs and dry runs).
//! - [`config`]: the `[refresh]` section.
//! - [`benchmarks`]: μ/σ of `rolling_stat` metrics over a rolling window.
//! - [`bodies`]: the [`crate::jobs::JobBody`] implementations the lanes run.
//! - [`cockpit`]: the queries behind the cockpit API.
//! - [`routes`]: `GET /api/metrics` and `GET /api/metrics/{id}/values`.

pub mod backfill;
pub mod benchmarks;
pub mod bodies;
pub mod cockpit;
pub mod compute;
pub mod config;
pub mod definitions;
pub mod routes;
pub mod sources;

pub use bodies::{BenchmarksBody, RecomputeBody};
pub use config::RefreshConfig;
pub use routes::routes;

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
