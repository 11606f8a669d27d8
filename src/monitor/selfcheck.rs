//! Built-in heartbeats for the daemon's own jobs: `job:recompute`,
//! `job:benchmarks`, `job:segments`, `job:audit`, `job:maintenance`, in the
//! `system` project.
//!
//! Each follows its job's cron entry, so a job that silently stops succeeding
//! turns its heartbeat down and alerts like any other. A finished job pings its
//! heartbeat through the same group-commit writer as HTTP pings: success on
//! success, a fail ping otherwise.
//!
//! They are the daemon's watch over itself, so the API may pause them but not
//! delete or re-time them ([`check_delete`], [`check_edit`]: their timing is the
//! cron table's), and one removed behind the API's back (SQL, a restore) is put
//! back, same id and token, within one deadline-loop interval
//! ([`restore_missing`]) rather than at the next restart.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::heartbeat::{Heartbeat, HeartbeatToken};
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
RETURNING heartbeat_id, token";

/// One job heartbeat as created at start, kept so a missing one can be put back
/// exactly (its id and token, which the follower pings with).
#[derive(Debug, Clone)]
pub struct JobHeartbeat {
    pub kind: JobKind,
    pub id: Uuid,
    pub token: HeartbeatToken,
    pub schedule: String,
    pub tz: String,
}

/// Puts back the job heartbeats that are gone; a present one is left alone (its
/// pause, streak and history stay). One statement: it runs every loop interval.
const RESTORE_MISSING: &str = "
INSERT INTO heartbeat.heartbeat (heartbeat_id, project_id, name, token, schedule, tz,
                                 grace_seconds, deadline)
SELECT id, $1, name, token, schedule, tz, grace, now()
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int4[])
     AS j(id, name, token, schedule, tz, grace)
ON CONFLICT DO NOTHING";

/// Recreates every job heartbeat of `jobs` that no longer exists; returns how
/// many were put back.
pub async fn restore_missing(
    pool: &Pool,
    jobs: &[JobHeartbeat],
) -> Result<u64, super::deadline::DeadlineError> {
    let client = pool.get().await?;
    let stmt = client.prepare_cached(RESTORE_MISSING).await?;
    let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
    let names: Vec<String> = jobs.iter().map(|j| heartbeat_name(j.kind)).collect();
    let tokens: Vec<&str> = jobs.iter().map(|j| j.token.as_str()).collect();
    let schedules: Vec<&str> = jobs.iter().map(|j| j.schedule.as_str()).collect();
    let tzs: Vec<&str> = jobs.iter().map(|j| j.tz.as_str()).collect();
    let graces: Vec<i32> = jobs.iter().map(|j| grace_for(&j.schedule)).collect();
    let n = client
        .execute(
            &stmt,
            &[
                &SYSTEM_PROJECT,
                &ids,
                &names,
                &tokens,
                &schedules,
                &tzs,
                &graces,
            ],
        )
        .await?;
    if n > 0 {
        tracing::warn!(restored = n, "job heartbeats were missing; recreated them");
    }
    Ok(n)
}

/// Why the API refuses a change to a job heartbeat (answered with 409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobHeartbeatError {
    #[error("{name} is the daemon's own heartbeat for its jobs and is recreated from the cron table: it cannot be deleted (pause it instead)")]
    Delete { name: String },
    #[error("{name} is the daemon's own heartbeat for its jobs: its {field} follows the cron table and cannot be changed through the API (pause it instead)")]
    Retime { name: String, field: &'static str },
}

/// A job heartbeat may not be deleted.
pub fn check_delete(hb: &Heartbeat) -> Result<(), JobHeartbeatError> {
    if hb.is_job() {
        return Err(JobHeartbeatError::Delete {
            name: hb.name.clone(),
        });
    }
    Ok(())
}

/// A job heartbeat may be paused, not renamed or re-timed: `changed` names the
/// fields an edit would give a new value (`name`, `period_seconds`,
/// `grace_seconds`, `schedule`, `tz`); the first of them is refused.
pub fn check_edit(hb: &Heartbeat, changed: &[&'static str]) -> Result<(), JobHeartbeatError> {
    match changed.first() {
        Some(field) if hb.is_job() => Err(JobHeartbeatError::Retime {
            name: hb.name.clone(),
            field,
        }),
        _ => Ok(()),
    }
}

pub async fn ensure_job_heartbeats(
    pool: &Pool,
    schedules: &[(JobKind, String)],
    tz: &str,
) -> Result<Vec<JobHeartbeat>, super::deadline::DeadlineError> {
    let client = pool.get().await?;
    let mut jobs = Vec::new();
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
        let token: String = row.get(1);
        if let Some(token) = HeartbeatToken::parse(&token) {
            jobs.push(JobHeartbeat {
                kind: *kind,
                id: row.get(0),
                token,
                schedule: expr.clone(),
                tz: tz.to_string(),
            });
        }
    }
    Ok(jobs)
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
    /// How often a missing job heartbeat is looked for and put back: the
    /// deadline loop's interval, so one is never gone longer than that.
    pub restore_every: std::time::Duration,
    pub shutdown: CancellationToken,
}

/// Follows the jobs engine until shutdown: creates (or re-times) the job
/// heartbeats, then pings one per finished job and puts back any that went
/// missing. A cancelled job (by a user or
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
        restore_every,
        shutdown,
    } = deps;
    let jobs = loop {
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
    let tokens: HashMap<JobKind, HeartbeatToken> =
        jobs.iter().map(|j| (j.kind, j.token.clone())).collect();
    let mut restore =
        tokio::time::interval(restore_every.max(std::time::Duration::from_millis(10)));
    restore.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let job = tokio::select! {
            j = finished.recv() => j,
            _ = restore.tick() => {
                if let Err(e) = restore_missing(&pool, &jobs).await {
                    tracing::warn!(error = %e, "could not check the job heartbeats");
                }
                continue;
            }
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
