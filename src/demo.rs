//! The demo's start-up fill: a newcomer on the embedded default sees a full
//! cockpit, tiers and audit cuts at once, not after the next scheduled ticks.
//!
//! Only in demo mode (`Config::demo_enabled`); a real installation keeps to its
//! schedule. Everything goes through the jobs engine, so the runs show as jobs:
//!
//! - an empty cockpit (no metric value yet) gets one recompute, then one
//!   benchmarks run so the z-score bands have a μ and σ to compare against;
//! - the first successful recompute after start (this one, or the scheduler's
//!   catch-up) is followed by segments and audit, which may have run before any
//!   demo data existed and left empty snapshots until their 04:30 ticks.
//!
//! Every job involved is idempotent, so a demo restart costs at most a few runs.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use crate::jobs::{Engine, Job, JobKind, JobRequest, JobState, Scope, Trigger};

/// How long to wait for the first successful recompute; none by then (no
/// scheduler, nobody asked) means there is no fresh data to fill from.
const FIRST_DATA_WAIT: Duration = Duration::from_secs(300);

const EMPTY_SQL: &str = "SELECT NOT EXISTS (SELECT 1 FROM heartbeat.metric_value)";

/// What the fill needs. Started once the schema is migrated.
pub struct DemoDeps {
    pub engine: Engine,
    pub pool: Pool,
    pub shutdown: CancellationToken,
    /// Finished jobs, subscribed before any job could run, so the first
    /// successful recompute is not missed.
    pub finished: broadcast::Receiver<Job>,
}

/// Runs once at start; returns when the jobs are submitted or there is nothing to do.
pub async fn fill(deps: DemoDeps) {
    let DemoDeps {
        engine,
        pool,
        shutdown,
        finished,
    } = deps;
    tokio::join!(
        fill_an_empty_cockpit(&engine, &pool, &shutdown),
        fill_snapshots_after_first_data(&engine, &shutdown, finished),
    );
}

fn request(kind: JobKind) -> JobRequest {
    JobRequest {
        kind,
        scope: Scope::All,
        trigger: Trigger::Api,
    }
}

async fn fill_an_empty_cockpit(engine: &Engine, pool: &Pool, shutdown: &CancellationToken) {
    let empty = async {
        let client = pool.get().await.ok()?;
        client
            .query_one(EMPTY_SQL, &[])
            .await
            .ok()
            .map(|r| r.get::<_, bool>(0))
    };
    if empty.await != Some(true) {
        return;
    }
    tracing::info!("demo mode with no metric values yet: starting a recompute");
    let Ok(submitted) = engine.submit(request(JobKind::Recompute)).await else {
        return;
    };
    let finished = tokio::select! {
        job = engine.wait_finished(submitted.job_id) => job,
        _ = shutdown.cancelled() => return,
    };
    if finished.is_some_and(|job| job.state == JobState::Succeeded) {
        let _ = engine.submit(request(JobKind::Benchmarks)).await;
    }
}

async fn fill_snapshots_after_first_data(
    engine: &Engine,
    shutdown: &CancellationToken,
    mut finished: broadcast::Receiver<Job>,
) {
    let first_data = async {
        loop {
            match finished.recv().await {
                Ok(job) if job.kind == JobKind::Recompute && job.state == JobState::Succeeded => {
                    return true
                }
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return false,
            }
        }
    };
    let got_data = tokio::select! {
        got = tokio::time::timeout(FIRST_DATA_WAIT, first_data) => got.unwrap_or(false),
        _ = shutdown.cancelled() => false,
    };
    if !got_data {
        return;
    }
    for kind in [JobKind::Segments, JobKind::Audit] {
        match engine.submit(request(kind)).await {
            Ok(submitted) => {
                tracing::info!(%kind, job_id = %submitted.job_id, "demo first fill submitted")
            }
            Err(e) => tracing::warn!(%kind, error = %e, "demo first fill: submit failed"),
        }
    }
}
