//! The job bodies the `recompute` and `benchmarks` lanes run.
//!
//! A recompute is phase `ingest` (every source, in config order) then phase
//! `compute` (registry sync, then each metric in scope). Failing sources and bad
//! metric files are named in their phase's detail as they happen; the others
//! still run, and the job then ends failed, listing them.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::Duration;
use futures::future::BoxFuture;
use futures::stream::{self, StreamExt};
use serde_json::json;

use super::compute::{self, ComputeWindow, MetricReport, MetricWork};
use super::definitions::{self, DefinitionError, MetricCatalog, MetricId};
use super::sources::{self, SourceConfig};
use super::RefreshConfig;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::jobs::{JobBody, JobContext, JobError};

/// Ingest, then compute.
pub struct RecomputeBody {
    sources: Vec<SourceConfig>,
    metrics_dir: PathBuf,
    refresh: RefreshConfig,
    clock: SharedClock,
    /// Told the ids found each time the definitions are loaded, so request
    /// validation sees what compute sees.
    catalog: Option<MetricCatalog>,
}

impl RecomputeBody {
    pub fn new(config: &Config) -> Self {
        Self {
            sources: super::effective_sources(config),
            metrics_dir: definitions::metrics_dir(&config.definitions_dir()),
            refresh: config.refresh.clone(),
            clock: crate::clock::system(),
            catalog: None,
        }
    }

    /// The same body reading time from `clock` (tests move time with it).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The same body keeping `catalog` up to date with every load of the definitions.
    pub fn with_catalog(mut self, catalog: MetricCatalog) -> Self {
        self.catalog = Some(catalog);
        self
    }

    async fn run_phases(
        sources: Vec<SourceConfig>,
        metrics_dir: PathBuf,
        refresh: RefreshConfig,
        clock: SharedClock,
        catalog: Option<MetricCatalog>,
        ctx: JobContext,
    ) -> Result<serde_json::Value, JobError> {
        ctx.begin_phase("ingest", sources.len() as u64);
        let ingest = sources::ingest_all(&ctx, &sources, clock.now()).await?;
        let failed_sources: Vec<String> = ingest
            .iter()
            .filter(|r| r.status == "failed")
            .map(|r| format!("{} ({})", r.source, r.error.as_deref().unwrap_or("")))
            .collect();

        let (defs, bad_files) = definitions::load_dir(&metrics_dir);
        let on_disk: BTreeSet<String> = defs
            .iter()
            .map(|d| d.id.to_string())
            .chain(bad_files.iter().filter_map(|e| {
                let stem = e.file.strip_suffix(".sql")?;
                definitions::MetricId::parse(stem)
                    .ok()
                    .map(|id| id.to_string())
            }))
            .collect();
        if let Some(catalog) = &catalog {
            catalog.replace(on_disk.clone());
        }
        let scope = ctx.scope().clone();
        let work_of = |id: &str| MetricWork {
            incremental: scope.metric_ids().is_none_or(|ids| ids.contains(id)),
            ranges: scope.ranges().and_then(|r| r.get(id)).cloned(),
        };
        let in_scope: Vec<_> = defs
            .iter()
            .filter(|d| scope.includes_metric(d.id.as_str()))
            .collect();
        let history = Duration::days(i64::from(refresh.history_days));
        // With ranges, progress counts the backfill's buckets; otherwise metrics.
        let in_buckets = scope.ranges().is_some();
        let total = if in_buckets {
            in_scope
                .iter()
                .filter_map(|d| {
                    let r = work_of(d.id.as_str()).ranges?;
                    let runs = super::backfill::bucket_runs(d.grain, &r, clock.now(), history);
                    Some(super::backfill::bucket_count(d.grain, &runs) as u64)
                })
                .sum()
        } else {
            in_scope.len() as u64
        };
        ctx.begin_phase("compute", total);
        let mut errors: Vec<DefinitionError> = bad_files;
        let detail = |reports: &[MetricReport], errors: &[DefinitionError], retired: &[String]| json!({ "metrics": reports, "errors": errors, "retired": retired });
        ctx.set_phase_detail(detail(&[], &errors, &[]));
        let retired = compute::sync_registry(&ctx, &defs, &on_disk).await?;
        let window = ComputeWindow {
            now: clock.now(),
            history,
            max_batch: compute::max_batch(&ctx).await?,
            max_runs: refresh.max_runs_per_metric as usize,
        };
        let mut reports = Vec::new();
        // Metrics are independent transactions, so several run at once; a cancel
        // drops the ones in flight, which roll back.
        let window = std::sync::Arc::new(window);
        let jobs: Vec<BoxFuture<'static, Result<(MetricId, MetricReport), JobError>>> = in_scope
            .into_iter()
            .map(|def| {
                let (ctx, window, def) = (ctx.clone(), window.clone(), def.clone());
                let work = work_of(def.id.as_str());
                Box::pin(async move {
                    ctx.check()?;
                    let report = compute::compute_metric(&ctx, &def, &window, &work).await?;
                    Ok((def.id, report))
                }) as BoxFuture<'static, _>
            })
            .collect();
        let mut running =
            stream::iter(jobs).buffer_unordered(refresh.compute_concurrency.max(1) as usize);
        while let Some(outcome) = running.next().await {
            let (id, report) = outcome?;
            if let Some(e) = &report.error {
                tracing::warn!(metric = %id, error = %e, "metric failed");
                errors.push(e.clone());
            }
            reports.push(report);
            if !in_buckets {
                ctx.advance();
            }
            ctx.set_phase_detail(detail(&reports, &errors, &retired));
        }

        let mut problems = Vec::new();
        if !failed_sources.is_empty() {
            problems.push(format!("sources failed: {}", failed_sources.join(", ")));
        }
        if !errors.is_empty() {
            let files: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            problems.push(format!("metrics failed: {}", files.join("; ")));
        }
        if !problems.is_empty() {
            return Err(JobError::Failed(problems.join("; ")));
        }
        Ok(json!({
            "sources": ingest.len(),
            "rows_inserted": ingest.iter().map(|r| r.rows_inserted).sum::<u64>(),
            "metrics": reports.len(),
            "buckets": reports.iter().map(|r| r.buckets).sum::<i64>(),
            "retired": retired,
        }))
    }
}

impl JobBody for RecomputeBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<serde_json::Value, JobError>> {
        Box::pin(Self::run_phases(
            self.sources.clone(),
            self.metrics_dir.clone(),
            self.refresh.clone(),
            self.clock.clone(),
            self.catalog.clone(),
            ctx,
        ))
    }
}

/// μ/σ of the `rolling_stat` metrics.
pub struct BenchmarksBody {
    refresh: RefreshConfig,
    clock: SharedClock,
}

impl BenchmarksBody {
    pub fn new(config: &Config) -> Self {
        Self {
            refresh: config.refresh.clone(),
            clock: crate::clock::system(),
        }
    }

    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

impl JobBody for BenchmarksBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<serde_json::Value, JobError>> {
        let now = self.clock.now();
        let window = Duration::days(i64::from(self.refresh.benchmark_window_days));
        let min_points = self.refresh.benchmark_min_points as i32;
        Box::pin(async move {
            let reports = super::benchmarks::run(&ctx, now, window, min_points).await?;
            Ok(json!({ "metrics": reports }))
        })
    }
}
