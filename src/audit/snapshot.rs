//! Phase `snapshots`, and the audit lane's [`AuditBody`] that runs both phases.
//!
//! Every (cut × window) runs in its own READ ONLY transaction with a
//! transaction-local `statement_timeout`, so a cut can neither write nor hang the
//! lane; its rows are then upserted as JSON in one statement (atomic: a reader
//! sees the previous snapshot or the new one). A cut that fails is recorded with
//! its error and the loop moves on; the job ends failed, listing every failure.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use serde_json::json;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::Client;

use super::cut_file::{CutFile, CutWindow};
use super::registry::{self, CutFailure, SyncReport};
use crate::jobs::{JobBody, JobContext, JobError};

/// The audit lane's body: `sync`, then `snapshots`.
#[derive(Debug, Clone)]
pub struct AuditBody {
    pub cuts_dir: PathBuf,
    pub statement_timeout: Duration,
    pub max_rows: u32,
}

impl AuditBody {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            cuts_dir: config.audit.cuts_dir(&config.definitions_dir()),
            statement_timeout: config.audit.statement_timeout(),
            max_rows: config.audit.max_rows,
        }
    }
}

impl JobBody for AuditBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<serde_json::Value, JobError>> {
        let body = self.clone();
        Box::pin(async move { body.run_phases(&ctx).await })
    }
}

/// One computed (cut × window), for the job result.
#[derive(Debug, Clone, Serialize)]
pub struct Computed {
    pub cut_id: String,
    pub window: String,
    pub rows: i32,
    pub duration_ms: i64,
}

#[derive(Debug, Default, Serialize)]
struct SnapshotsReport {
    computed: Vec<Computed>,
    failed: Vec<CutFailure>,
}

impl AuditBody {
    async fn run_phases(&self, ctx: &JobContext) -> Result<serde_json::Value, JobError> {
        ctx.begin_phase("sync", 0);
        let dir = self.cuts_dir.clone();
        let disk = tokio::task::spawn_blocking(move || registry::scan(&dir))
            .await
            .map_err(|e| JobError::Failed(format!("scanning the cuts directory: {e}")))?
            .map_err(JobError::Failed)?;
        let files = disk.file_count() as u64;
        ctx.set_progress(0, files);
        let report = {
            let mut client = ctx.client().await?;
            registry::sync(&mut client, &disk, ctx).await?
        };
        ctx.set_progress(files, files);
        ctx.set_phase_detail(json!(report));
        ctx.check()?;

        let total: usize = disk.cuts.iter().map(|c| c.windows.len()).sum();
        ctx.begin_phase("snapshots", total as u64);
        let mut snapshots = SnapshotsReport::default();
        for cut in &disk.cuts {
            ctx.check()?;
            let mut client = ctx.client().await?;
            for &window in &cut.windows {
                ctx.check()?;
                match compute(&mut client, ctx, cut, window, Utc::now(), self).await {
                    Ok(done) => snapshots.computed.push(done),
                    // A statement stopped by the job's own cancel is not the cut's
                    // fault: stop here, the engine reports the cancel.
                    Err(_) if ctx.is_cancelled() => return Err(JobError::Cancelled),
                    Err(CutRunError::Connection(e)) => return Err(JobError::Db(e)),
                    Err(CutRunError::Job(e)) => return Err(e),
                    Err(CutRunError::Cut(error)) => {
                        tracing::warn!(job_id = %ctx.job_id(), cut_id = %cut.cut_id, window = %window, %error, "audit cut failed");
                        snapshots.failed.push(CutFailure {
                            cut_id: cut.cut_id.to_string(),
                            window: Some(window.label()),
                            error,
                        });
                    }
                }
                ctx.advance();
                ctx.set_phase_detail(json!(snapshots));
            }
        }
        finish(ctx, report, snapshots)
    }
}

/// Builds the job result; any failure (sync or snapshot) fails the job, naming
/// each failing cut with its error.
fn finish(
    ctx: &JobContext,
    sync: SyncReport,
    snapshots: SnapshotsReport,
) -> Result<serde_json::Value, JobError> {
    let failures: Vec<String> = sync
        .failed
        .iter()
        .chain(snapshots.failed.iter())
        .map(ToString::to_string)
        .collect();
    let result = json!({"sync": sync, "snapshots": snapshots});
    if failures.is_empty() {
        return Ok(result);
    }
    ctx.set_failed_result(result);
    Err(JobError::Failed(format!(
        "{} audit cut{} failed: {}",
        failures.len(),
        if failures.len() == 1 { "" } else { "s" },
        failures.join("; ")
    )))
}

/// Why one (cut × window) did not produce a snapshot.
#[derive(Debug)]
enum CutRunError {
    /// The cut's own fault (SQL error, timeout, read-only violation): recorded,
    /// the job goes on.
    Cut(String),
    /// The connection is gone: every further cut would fail the same way.
    Connection(tokio_postgres::Error),
    /// The job itself cannot go on (this node lost the lane's fence).
    Job(JobError),
}

/// Wraps a cut's query so the server returns its rows as one JSON array, at most
/// `$3` of them; the newline before `)` ends a trailing `--` comment in the file.
const WRAP_HEAD: &str = "SELECT coalesce(jsonb_agg(to_jsonb(cut_row)), '[]'::jsonb), count(*)::int4
FROM (SELECT * FROM (\n";
const WRAP_TAIL: &str = "\n) AS cut_query LIMIT $3) AS cut_row";

const UPSERT_SNAPSHOT: &str = "
INSERT INTO heartbeat.audit_cut_snapshot
    (cut_id, window_label, window_start, window_end, columns, payload, row_count,
     content_hash, duration_ms, computed_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
ON CONFLICT (cut_id, window_label) DO UPDATE SET
    window_start = excluded.window_start,
    window_end = excluded.window_end,
    columns = excluded.columns,
    payload = excluded.payload,
    row_count = excluded.row_count,
    content_hash = excluded.content_hash,
    duration_ms = excluded.duration_ms,
    computed_at = excluded.computed_at";

/// Runs one cut over one window ending at `end` and upserts the snapshot.
async fn compute(
    client: &mut Client,
    ctx: &JobContext,
    cut: &CutFile,
    window: CutWindow,
    end: DateTime<Utc>,
    limits: &AuditBody,
) -> Result<Computed, CutRunError> {
    let timeout = limits.statement_timeout;
    let start = end - window.duration();
    let started = Instant::now();
    let classify = |e: tokio_postgres::Error| classify_error(e, timeout);
    let tx = client
        .build_transaction()
        .read_only(true)
        .start()
        .await
        .map_err(classify)?;
    tx.execute(
        "SELECT set_config('statement_timeout', $1, true)",
        &[&timeout.as_millis().to_string()],
    )
    .await
    .map_err(classify)?;
    // Prepared alone first: its columns give the order jsonb would lose, and a
    // syntax error is reported against the cut's own text.
    let params = [Type::TIMESTAMPTZ, Type::TIMESTAMPTZ];
    let inner = tx
        .prepare_typed(&cut.query, &params)
        .await
        .map_err(classify)?;
    let columns: Vec<String> = inner
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let wrapped = format!("{WRAP_HEAD}{}{WRAP_TAIL}", cut.query);
    let wrapped = tx
        .prepare_typed(
            &wrapped,
            &[Type::TIMESTAMPTZ, Type::TIMESTAMPTZ, Type::INT8],
        )
        .await
        .map_err(classify)?;
    // One row past the limit tells "exactly at the limit" from "over it".
    let probe = i64::from(limits.max_rows) + 1;
    let row = tx
        .query_one(&wrapped, &[&start, &end, &probe])
        .await
        .map_err(classify)?;
    let payload: serde_json::Value = row.get(0);
    let rows: i32 = row.get(1);
    tx.commit().await.map_err(classify)?;
    if i64::from(rows) >= probe {
        return Err(CutRunError::Cut(format!(
            "returned more than {} rows (audit.max_rows): add a LIMIT or aggregate",
            limits.max_rows
        )));
    }
    let duration_ms = started.elapsed().as_millis() as i64;
    let write = client.transaction().await.map_err(classify)?;
    ctx.enter_fence(&write).await.map_err(CutRunError::Job)?;
    write
        .execute(
            UPSERT_SNAPSHOT,
            &[
                &cut.cut_id.as_str(),
                &window.label(),
                &start,
                &end,
                &columns,
                &payload,
                &rows,
                &cut.content_hash,
                &(duration_ms.min(i64::from(i32::MAX)) as i32),
            ],
        )
        .await
        .map_err(classify)?;
    write.commit().await.map_err(classify)?;
    Ok(Computed {
        cut_id: cut.cut_id.to_string(),
        window: window.label(),
        rows,
        duration_ms,
    })
}

fn classify_error(e: tokio_postgres::Error, timeout: Duration) -> CutRunError {
    let Some(db) = e.as_db_error() else {
        return CutRunError::Connection(e);
    };
    if *db.code() == SqlState::QUERY_CANCELED {
        return CutRunError::Cut(format!(
            "timed out: still running after the {} ms statement timeout",
            timeout.as_millis()
        ));
    }
    CutRunError::Cut(format!("SQL error {}: {}", db.code().code(), db.message()))
}
