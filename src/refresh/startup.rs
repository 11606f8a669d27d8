//! Demo mode start-up: an empty cockpit is filled at once, not at the next tick.
//!
//! In demo mode (`Config::demo_enabled`, on in the embedded default), once the
//! schema is migrated and if no metric has a value yet, one recompute is requested
//! through the jobs engine (so it shows as the active job), followed by one
//! benchmarks run so the z-score bands have a μ and σ to compare against.

use crate::jobs::engine::JobRequest;
use crate::jobs::{JobKind, JobState, Scope, Trigger};
use crate::state::AppState;

const EMPTY_SQL: &str = "SELECT NOT EXISTS (SELECT 1 FROM heartbeat.metric_value)";

pub async fn fill_an_empty_cockpit(state: AppState) {
    if !state.config.demo_enabled() {
        return;
    }
    let empty = async {
        let client = state.pool.get().await.ok()?;
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
    let request = |kind| JobRequest {
        kind,
        scope: Scope::All,
        trigger: Trigger::Api,
    };
    let Ok(submitted) = state.jobs.submit(request(JobKind::Recompute)).await else {
        return;
    };
    let finished = tokio::select! {
        job = state.jobs.wait_finished(submitted.job_id) => job,
        _ = state.shutdown.cancelled() => return,
    };
    if finished.is_some_and(|job| job.state == JobState::Succeeded) {
        let _ = state.jobs.submit(request(JobKind::Benchmarks)).await;
    }
}
