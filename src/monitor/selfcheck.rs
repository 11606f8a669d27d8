//! Built-in heartbeats for the daemon's own jobs: `job:recompute`,
//! `job:benchmarks`, `job:segments`, `job:audit`, `job:maintenance`, in the
//! `system` project.
//!
//! Each follows its job's cron entry, so a job that silently stops succeeding
//! turns its heartbeat down and alerts like any other. A finished job pings its
//! heartbeat through the same group-commit writer as HTTP pings: success on
//! success, a fail ping otherwise.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::heartbeat::HeartbeatToken;
use super::ping::{PingKind, PingRecord, PingWriter};
use super::SYSTEM_PROJECT;
use crate::jobs::JobKind;

/// The default cron entries (docs/operations/cron.md), used when the configured table cannot be
/// read.
pub fn default_schedules() -> Vec<(JobKind, String)> {
    vec![
        (JobKind::Recompute, "17 * * * *".into()),
        (JobKind::Benchmarks, "23 4 * * *".into()),
        (JobKind::Segments, "30 4 * * *".into()),
        (JobKind::Audit, "45 4 * * *".into()),
        (JobKind::Maintenance, "10 3 * * *".into()),
    ]
}

/// Each job kind's cron entry (the first enabled one in the table) and the
/// table's time zone, so the heartbeat expects runs exactly when they fire.
pub fn configured_schedules(
    config: &crate::schedule::ScheduleConfig,
) -> (Vec<(JobKind, String)>, String) {
    match config.table() {
        Ok(table) => {
            let mut out: Vec<(JobKind, String)> = Vec::new();
            for entry in table.entries.iter().filter(|e| e.enabled) {
                if !out.iter().any(|(k, _)| *k == entry.kind) {
                    out.push((entry.kind, entry.schedule.as_str().to_string()));
                }
            }
            (out, table.timezone.name().to_string())
        }
        Err(_) => (default_schedules(), "UTC".into()),
    }
}

/// Grace for a job heartbeat: the run itself may take a while, and one late run
/// should not page anyone. Hourly jobs get 30 minutes, the rest 2 hours.
fn grace_for(expr: &str) -> i32 {
    if expr.split_whitespace().nth(1) == Some("*") {
        1800
    } else {
        7200
    }
}

pub fn heartbeat_name(kind: JobKind) -> String {
    format!("job:{kind}")
}

/// Creates (or re-times) the job heartbeats; keeps existing tokens and history.
/// Returns each kind's token.
const UPSERT: &str = "
INSERT INTO heartbeat.heartbeat (heartbeat_id, project_id, name, token, schedule, tz,
                                 grace_seconds, deadline)
VALUES ($1, $2, $3, $4, $5, $6, $7, now())
ON CONFLICT (project_id, name) DO UPDATE SET
    schedule = EXCLUDED.schedule, tz = EXCLUDED.tz, period_seconds = NULL,
    grace_seconds = EXCLUDED.grace_seconds, deadline = now()
RETURNING token";

pub async fn ensure_job_heartbeats(
    pool: &Pool,
    schedules: &[(JobKind, String)],
    tz: &str,
) -> Result<HashMap<JobKind, HeartbeatToken>, super::deadline::DeadlineError> {
    let client = pool.get().await?;
    let mut tokens = HashMap::new();
    for (kind, expr) in schedules {
        let row = client
            .query_one(
                UPSERT,
                &[
                    &Uuid::now_v7(),
                    &SYSTEM_PROJECT,
                    &heartbeat_name(*kind),
                    &HeartbeatToken::generate().as_str(),
                    expr,
                    &tz,
                    &grace_for(expr),
                ],
            )
            .await?;
        let token: String = row.get(0);
        if let Some(token) = HeartbeatToken::parse(&token) {
            tokens.insert(*kind, token);
        }
    }
    Ok(tokens)
}

/// Pings `kind`'s heartbeat for a run that finished at `at`.
pub async fn record_job_outcome(
    pings: &PingWriter,
    tokens: &HashMap<JobKind, HeartbeatToken>,
    kind: JobKind,
    succeeded: bool,
    at: DateTime<Utc>,
    detail: Option<String>,
) {
    let Some(token) = tokens.get(&kind) else {
        return;
    };
    let mut ping = PingRecord::new(
        token.clone(),
        if succeeded {
            PingKind::Success
        } else {
            PingKind::Fail
        },
        at,
    );
    ping.source = Some("heartbeat daemon".into());
    ping.body = detail;
    if let Err(e) = pings.record(ping).await {
        tracing::warn!(%kind, error = %e, "could not ping the job's heartbeat");
    }
}

/// What [`follow_jobs`] needs.
pub struct LoopDeps {
    pub pool: Pool,
    /// Every job ping goes through the same group-commit writer as HTTP pings.
    pub pings: PingWriter,
    /// Each job kind's cron entry and the table's time zone
    /// ([`configured_schedules`]).
    pub schedules: Vec<(JobKind, String)>,
    pub tz: String,
    pub shutdown: CancellationToken,
}

/// Follows the jobs engine until shutdown: creates (or re-times) the job
/// heartbeats, then pings one per finished job. A cancelled job (by a user or
/// shutdown) sends nothing: it neither proves nor disproves health; one cancelled
/// by its max runtime ends `failed` and sends a fail ping.
pub async fn follow_jobs(
    deps: LoopDeps,
    mut finished: tokio::sync::broadcast::Receiver<crate::jobs::Job>,
) {
    use crate::jobs::JobState;
    use tokio::sync::broadcast::error::RecvError;
    let LoopDeps {
        pool,
        pings,
        schedules,
        tz,
        shutdown,
    } = deps;
    let tokens = loop {
        match ensure_job_heartbeats(&pool, &schedules, &tz).await {
            Ok(t) => break t,
            Err(e) => {
                tracing::warn!(error = %e, "cannot create the job heartbeats yet");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
        }
    };
    loop {
        let job = tokio::select! {
            j = finished.recv() => j,
            _ = shutdown.cancelled() => return,
        };
        let job = match job {
            Ok(job) => job,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "job heartbeat follower fell behind");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let succeeded = match job.state {
            JobState::Succeeded => true,
            JobState::Failed => false,
            _ => continue,
        };
        let at = job.finished_at.unwrap_or_else(Utc::now);
        let detail = job
            .error
            .clone()
            .map(|e| format!("job {} failed: {e}", job.job_id));
        record_job_outcome(&pings, &tokens, job.kind, succeeded, at, detail).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_heartbeats_follow_the_default_cron_table() {
        let (schedules, tz) = configured_schedules(&crate::schedule::ScheduleConfig::default());
        assert_eq!(tz, "UTC");
        let mut got = schedules.clone();
        got.sort();
        let mut want = default_schedules();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn hourly_jobs_get_less_grace_than_daily_ones() {
        assert_eq!(grace_for("17 * * * *"), 1800);
        assert_eq!(grace_for("23 4 * * *"), 7200);
    }
}
