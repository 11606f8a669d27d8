//! The demo's first fill: with demo data on and no audit cut registered yet, run
//! the segments and audit jobs as soon as the first recompute has brought the demo
//! events in, so a newcomer sees cuts and tiers at once instead of after the next
//! 04:30 / 04:45 run (which the scheduler's catch-up only covers within its window).
//!
//! An installation that already has cuts is left to its schedule.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::jobs::{JobKind, JobRequest, JobState, Scope, Trigger};
use crate::state::AppState;

/// How long to wait for the first successful recompute before filling anyway
/// (`--no-scheduler` with nobody asking for a recompute).
const FIRST_DATA_WAIT: Duration = Duration::from_secs(120);

/// Runs once at start; returns when the jobs are submitted or there is nothing to do.
pub async fn fill_demo_snapshots(state: AppState) {
    if !state.config.demo_enabled() {
        return;
    }
    // Subscribed before anything can finish, so the first recompute is not missed.
    let mut finished = state.jobs.subscribe();
    if !state.wait_migrated().await {
        return;
    }
    match registry_is_empty(&state).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            tracing::warn!(error = %e, "demo first fill: cannot read the audit registry; skipped");
            return;
        }
    }
    let first_data = async {
        loop {
            match finished.recv().await {
                Ok(job) if job.kind == JobKind::Recompute && job.state == JobState::Succeeded => {
                    return
                }
                Ok(_) | Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            }
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(FIRST_DATA_WAIT, first_data) => {}
        _ = state.shutdown.cancelled() => return,
    }
    for kind in [JobKind::Segments, JobKind::Audit] {
        let request = JobRequest {
            kind,
            scope: Scope::All,
            trigger: Trigger::Api,
        };
        match state.jobs.submit(request).await {
            Ok(submitted) => {
                tracing::info!(%kind, job_id = %submitted.job_id, "demo first fill submitted")
            }
            Err(e) => tracing::warn!(%kind, error = %e, "demo first fill: submit failed"),
        }
    }
}

async fn registry_is_empty(state: &AppState) -> Result<bool, crate::error::ApiError> {
    let client = state.pool.get().await?;
    let row = client
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM heartbeat.audit_cut_registry)",
            &[],
        )
        .await?;
    Ok(row.get(0))
}
