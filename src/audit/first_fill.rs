//! The demo's first fill: in demo mode, run the segments and audit jobs once the
//! first recompute after start has brought the demo events in, so a newcomer sees
//! cuts and tiers at once. The scheduler's start-up catch-up may already have run
//! them, but before any demo data existed, leaving empty snapshots until 04:30.
//!
//! Only in demo mode; a real installation keeps to its schedule. Both jobs are
//! idempotent (same-day replace, upserts), so a demo restart costs one extra run.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use crate::jobs::{JobKind, JobRequest, JobState, Scope, Trigger};
use crate::state::AppState;

/// How long to wait for the first successful recompute; none by then (no
/// scheduler, nobody asked) means there is no fresh data to fill from.
const FIRST_DATA_WAIT: Duration = Duration::from_secs(300);

/// Runs once at start; returns when the jobs are submitted or there is nothing to do.
pub async fn fill_demo_snapshots(state: AppState) {
    if !state.config.demo_enabled() {
        return;
    }
    // Subscribed before any job can finish, so the first recompute is not missed.
    let mut finished = state.jobs.subscribe();
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
        _ = state.shutdown.cancelled() => false,
    };
    if !got_data {
        return;
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
