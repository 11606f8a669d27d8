//! Metric compute: sync the registry from disk, then bring each metric up to date.
//!
//! For one metric, the buckets to (re)compute are
//! - the buckets touched by events ingested since its last run (events carry the
//!   ingest batch number; the registry keeps the highest batch already reflected),
//! - plus every bucket after its last computed one up to the last complete one
//!   (backfill: a daemon that was down for a day fills that day).
//!
//! Both sets are found by one SQL statement that also groups them into contiguous
//! runs; each run is one execution of the metric's own query, wrapped in an
//! `INSERT ... ON CONFLICT DO UPDATE`, so no event row ever leaves PostgreSQL. All
//! of one metric's runs and its registry update are one transaction: a cancel or a
//! crash leaves the metric's old values or its new ones, never a mix. Buckets are
//! UTC (`SET LOCAL TIME ZONE 'UTC'`), and only complete buckets are computed.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tokio_postgres::types::Type;

use super::backfill;
use super::definitions::{DefinitionError, MetricDefinition};
use crate::jobs::range::{Range, RangeSet};
use crate::jobs::{JobContext, JobError};

/// Upserts the registry from the valid files, un-retires files that came back,
/// resets the computed state of changed definitions (their whole history is
/// recomputed), and retires metrics whose file is gone. `on_disk` holds every id
/// with a file, valid or not: a file with a typo is broken, not removed.
const UPSERT_REGISTRY_SQL: &str = "
INSERT INTO heartbeat.metric_registry (metric_id, title, kind, grain, description, definition_hash)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (metric_id) DO UPDATE SET
    title = excluded.title,
    kind = excluded.kind,
    grain = excluded.grain,
    description = excluded.description,
    retired_at = NULL,
    computed_batch = CASE WHEN metric_registry.definition_hash = excluded.definition_hash
                          THEN metric_registry.computed_batch ELSE 0 END,
    computed_through = CASE WHEN metric_registry.definition_hash = excluded.definition_hash
                            THEN metric_registry.computed_through END,
    definition_hash = excluded.definition_hash";

const RETIRE_SQL: &str = "
UPDATE heartbeat.metric_registry SET retired_at = now()
WHERE retired_at IS NULL AND NOT (metric_id = ANY($1))";

/// Syncs the registry; returns the ids it retired.
pub async fn sync_registry(
    ctx: &JobContext,
    defs: &[MetricDefinition],
    on_disk: &BTreeSet<String>,
) -> Result<Vec<String>, JobError> {
    let mut client = ctx.client().await?;
    let tx = client.transaction().await?;
    ctx.enter_fence(&*tx).await?;
    for d in defs {
        tx.execute(
            UPSERT_REGISTRY_SQL,
            &[
                &d.id.as_str(),
                &d.title,
                &d.kind.as_str(),
                &d.grain.as_str(),
                &d.description,
                &d.hash,
            ],
        )
        .await?;
    }
    let ids: Vec<&str> = on_disk.iter().map(String::as_str).collect();
    let retired: Vec<String> = tx
        .query(&format!("{RETIRE_SQL} RETURNING metric_id"), &[&ids])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    tx.commit().await?;
    Ok(retired)
}

/// The highest ingest batch so far: compute reflects events up to here.
const MAX_BATCH_SQL: &str = "SELECT coalesce(max(batch_id), 0) FROM heartbeat.event";

pub async fn max_batch(ctx: &JobContext) -> Result<i64, JobError> {
    let client = ctx.client().await?;
    Ok(client.query_one(MAX_BATCH_SQL, &[]).await?.get(0))
}

const STATE_SQL: &str = "
SELECT computed_batch, computed_through,
       (SELECT date_trunc($2, min(occurred_at)) FROM heartbeat.event)
FROM heartbeat.metric_registry WHERE metric_id = $1 FOR UPDATE";

/// The buckets to compute, as contiguous runs `[lo, hi)`. Parameters: `$1`/`$2`
/// the batch range of new events, `$3` the horizon, `$4` the end of the last
/// complete bucket, `$5` where backfill starts, `$6` the grain.
const RUNS_SQL: &str = "
WITH step AS (SELECT ('1 ' || $6)::interval AS s),
touched AS (
    SELECT DISTINCT date_trunc($6, occurred_at) AS b
    FROM heartbeat.event
    WHERE batch_id > $1 AND batch_id <= $2 AND occurred_at >= $3 AND occurred_at < $4
),
wanted AS (
    SELECT b FROM touched
    UNION
    SELECT generate_series($5::timestamptz, $4::timestamptz - s, s) FROM step
),
islands AS (
    SELECT b, b - (row_number() OVER (ORDER BY b)) * s AS island FROM wanted, step
)
SELECT min(b) AS lo, max(b) + (SELECT s FROM step) AS hi, count(*)
FROM islands GROUP BY island ORDER BY lo";

const MARK_COMPUTED_SQL: &str = "
UPDATE heartbeat.metric_registry
SET computed_batch = $2, computed_through = greatest(computed_through, $3), computed_at = now()
WHERE metric_id = $1";

/// The metric's query wrapped into an upsert; `$1`/`$2` the run, `$3` the id.
const UPSERT_PREFIX: &str = "WITH def(bucket, value) AS (\n";
const UPSERT_SUFFIX: &str = "
)
INSERT INTO heartbeat.metric_value (metric_id, bucket, value, computed_at)
SELECT $3, def.bucket, def.value, now() FROM def
WHERE def.bucket >= $1 AND def.bucket < $2
ON CONFLICT (metric_id, bucket) DO UPDATE
SET value = excluded.value, computed_at = excluded.computed_at";

/// What compute did for one metric.
#[derive(Debug, Clone, Serialize)]
pub struct MetricReport {
    pub metric_id: String,
    pub status: &'static str,
    pub buckets: i64,
    pub runs: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<DefinitionError>,
}

/// What a job asks of one metric.
#[derive(Debug, Clone, Default)]
pub struct MetricWork {
    /// Bring it up to date (touched buckets, backfill to the last complete one).
    pub incremental: bool,
    /// Recompute these ranges' buckets whatever their state (a backfill).
    pub ranges: Option<RangeSet>,
}

/// Inputs shared by every metric of one compute phase.
pub struct ComputeWindow {
    pub now: DateTime<Utc>,
    pub history: Duration,
    pub max_batch: i64,
    pub max_runs: usize,
}

/// Brings one metric up to date in one transaction. SQL errors in the
/// definition come back as `Ok` with a failed report naming file and line.
pub async fn compute_metric(
    ctx: &JobContext,
    def: &MetricDefinition,
    window: &ComputeWindow,
    work: &MetricWork,
) -> Result<MetricReport, JobError> {
    let mut report = MetricReport {
        metric_id: def.id.to_string(),
        status: "ok",
        buckets: 0,
        runs: 0,
        error: None,
    };
    match compute_in_transaction(ctx, def, window, work, &mut report).await {
        Ok(()) => Ok(report),
        Err(_) if ctx.is_cancelled() => Err(JobError::Cancelled),
        Err(JobError::Db(e)) if e.as_db_error().is_some() => {
            let db = e.as_db_error().expect("checked above");
            let line = match db.position() {
                Some(tokio_postgres::error::ErrorPosition::Original(p)) => {
                    let p = *p as usize;
                    let prefix = UPSERT_PREFIX.chars().count();
                    if p > prefix {
                        def.line_of(p - prefix)
                    } else {
                        def.query_line
                    }
                }
                _ => def.query_line,
            };
            report.status = "failed";
            report.error = Some(DefinitionError {
                file: file_name(def),
                line,
                message: db.message().to_string(),
            });
            Ok(report)
        }
        Err(e) => Err(e),
    }
}

fn file_name(def: &MetricDefinition) -> String {
    def.path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn compute_in_transaction(
    ctx: &JobContext,
    def: &MetricDefinition,
    window: &ComputeWindow,
    work: &MetricWork,
    report: &mut MetricReport,
) -> Result<(), JobError> {
    let grain = def.grain;
    let step = grain.duration();
    let end = grain.truncate(window.now);
    let horizon = grain.truncate(window.now - window.history);

    let mut client = ctx.client().await?;
    let tx = client.transaction().await?;
    ctx.enter_fence(&*tx).await?;
    tx.batch_execute("SET LOCAL TIME ZONE 'UTC'").await?;
    let state = tx
        .query_one(STATE_SQL, &[&def.id.as_str(), &grain.as_str()])
        .await?;
    // A backfill's buckets, recomputed whatever their state; progress counts them.
    let forced = work.ranges.as_ref().map_or_else(RangeSet::default, |r| {
        backfill::bucket_runs(grain, r, window.now, window.history)
    });
    if !work.incremental {
        report.buckets = backfill::bucket_count(grain, &forced);
        report.runs = forced.ranges().len();
        run_buckets(ctx, &tx, def, forced.ranges(), &forced).await?;
        ctx.check()?;
        tx.commit().await?;
        return Ok(());
    }
    let computed_batch: i64 = state.get(0);
    let computed_through: Option<DateTime<Utc>> = state.get(1);
    let first_event: Option<DateTime<Utc>> = state.get(2);
    // Never computed (or redefined): everything from the first event, within the
    // horizon; the touched-bucket scan would only repeat that.
    let (from_batch, backfill_from) = match computed_through {
        Some(t) => (computed_batch, t + step),
        None => (
            window.max_batch,
            first_event.map_or(end, |f| f.max(horizon)),
        ),
    };
    let rows = tx
        .query(
            RUNS_SQL,
            &[
                &from_batch,
                &window.max_batch,
                &horizon,
                &end,
                &backfill_from,
                &grain.as_str(),
            ],
        )
        .await?;
    let mut runs: Vec<Range> = rows
        .iter()
        .map(|r| Range {
            from: r.get(0),
            to: r.get(1),
        })
        .collect();
    if runs.len() > window.max_runs {
        runs = vec![Range {
            from: runs[0].from,
            to: runs[runs.len() - 1].to,
        }];
    }
    // The backfill's buckets join the incremental runs (merged where they touch).
    let runs = forced.union(&RangeSet::from(runs));
    report.buckets = backfill::bucket_count(grain, &runs);
    report.runs = runs.ranges().len();
    run_buckets(ctx, &tx, def, runs.ranges(), &forced).await?;
    let through = end - step;
    tx.execute(
        MARK_COMPUTED_SQL,
        &[&def.id.as_str(), &window.max_batch, &through],
    )
    .await?;
    ctx.check()?;
    tx.commit().await?;
    Ok(())
}

/// Runs the metric's query over each of `runs` (in one transaction, the
/// caller's), counting the buckets of `forced` each run recomputes as progress.
async fn run_buckets(
    ctx: &JobContext,
    tx: &tokio_postgres::Transaction<'_>,
    def: &MetricDefinition,
    runs: &[Range],
    forced: &RangeSet,
) -> Result<(), JobError> {
    if runs.is_empty() {
        return Ok(());
    }
    let sql = format!("{UPSERT_PREFIX}{}{UPSERT_SUFFIX}", def.query);
    let statement = tx
        .prepare_typed(&sql, &[Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::TEXT])
        .await?;
    for run in runs {
        ctx.check()?;
        tx.execute(&statement, &[&run.from, &run.to, &def.id.as_str()])
            .await?;
        let done = backfill::overlap(def.grain, *run, forced);
        if done > 0 {
            ctx.advance_by(done as u64);
        }
    }
    Ok(())
}
