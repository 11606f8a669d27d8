//! An operator's controls over cron entries: pause (optionally until a time),
//! resume, and trigger now (docs/operations/cron.md, "Pausing, resuming and
//! triggering an entry").
//!
//! The pause is a row in `heartbeat.schedule_state`, not a flag in one daemon's
//! memory: every node's tick loop reads it at each wake-up, so a pause set on one
//! node holds on all of them and survives restarts. While an entry is paused its
//! job heartbeat (`job:<kind>` in the system project) is paused too, in the same
//! transaction, so a paused entry's silence pages nobody; the resume un-pauses the
//! heartbeat only if the pause paused it.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use tokio_postgres::Client;

use super::table::{Entry, Table};
use crate::jobs::{Engine, EngineError, JobRequest, Scope, Submitted, Trigger};

/// The built-in job heartbeats' project (`monitor::SYSTEM_PROJECT`), repeated
/// here as a value so this module does not import the monitor, which imports the
/// schedule's config.
const SYSTEM_PROJECT: uuid::Uuid = uuid::Uuid::from_u128(2);

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no cron entry named '{0}'")]
    UnknownEntry(String),
    #[error("until: {0} is not in the future")]
    UntilInThePast(DateTime<Utc>),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// The entry named `name` in `table`, or [`ControlError::UnknownEntry`].
pub fn entry<'a>(table: &'a Table, name: &str) -> Result<&'a Entry, ControlError> {
    table
        .entries
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| ControlError::UnknownEntry(name.to_string()))
}

/// Pauses the entry and its job heartbeat. Pausing a paused entry keeps its
/// start and replaces its `until`. A new pause starts counting skipped fire
/// times from zero.
const PAUSE: &str = "
WITH hb AS (
    UPDATE heartbeat.heartbeat SET paused = true, deadline = now()
     WHERE project_id = $3 AND name = 'job:' || $2::text AND NOT paused
    RETURNING heartbeat_id
)
INSERT INTO heartbeat.schedule_state (entry, kind, paused_at, paused_until, paused_heartbeat,
                                      paused_missed, paused_last_counted)
VALUES ($1, $2::text, now(), $4, EXISTS (SELECT 1 FROM hb), 0, NULL)
ON CONFLICT (entry) DO UPDATE SET
    kind = EXCLUDED.kind,
    paused_at = COALESCE(schedule_state.paused_at, EXCLUDED.paused_at),
    paused_until = EXCLUDED.paused_until,
    paused_heartbeat = schedule_state.paused_heartbeat OR EXCLUDED.paused_heartbeat,
    paused_missed = CASE WHEN schedule_state.paused_at IS NULL THEN 0
                         ELSE schedule_state.paused_missed END,
    paused_last_counted = CASE WHEN schedule_state.paused_at IS NULL THEN NULL
                               ELSE schedule_state.paused_last_counted END,
    updated_at = now()";

/// Pauses `name` until `until` (or until resumed).
pub async fn pause(
    pool: &Pool,
    table: &Table,
    name: &str,
    until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), ControlError> {
    let entry = entry(table, name)?;
    if let Some(until) = until.filter(|u| *u <= now) {
        return Err(ControlError::UntilInThePast(until));
    }
    let client = pool.get().await?;
    client
        .execute(
            PAUSE,
            &[&entry.name, &entry.kind.as_str(), &SYSTEM_PROJECT, &until],
        )
        .await?;
    tracing::info!(entry = %entry.name, until = ?until, "cron entry paused");
    Ok(())
}

/// Which pauses [`end_pauses`] ends.
#[derive(Debug, Clone, Copy)]
pub enum Ending<'a> {
    /// One entry's, on request.
    Entry(&'a str),
    /// Every pause whose `until` is at or before this time.
    ExpiredBy(DateTime<Utc>),
}

/// Clears the pauses chosen by `$1`/`$2`, then un-pauses the job heartbeats
/// those pauses paused. The skipped count stays, for `GET /api/schedule`.
const END_PAUSES: &str = "
WITH ended AS (
    UPDATE heartbeat.schedule_state s
       SET paused_at = NULL, paused_until = NULL, paused_heartbeat = false, updated_at = now()
      FROM (SELECT entry, paused_heartbeat FROM heartbeat.schedule_state
             WHERE paused_at IS NOT NULL
               AND (entry = $1 OR paused_until <= $2)
             FOR UPDATE) old
     WHERE s.entry = old.entry
    RETURNING s.entry, s.kind, old.paused_heartbeat
), hb AS (
    UPDATE heartbeat.heartbeat h
       SET paused = false, resumed_at = now(), deadline = now()
      FROM ended
     WHERE ended.paused_heartbeat AND h.paused
       AND h.project_id = $3 AND h.name = 'job:' || ended.kind
)
SELECT entry FROM ended";

/// Ends pauses; returns the entries resumed. Safe to run on every node at once:
/// the row lock makes each pause end once.
pub async fn end_pauses(
    client: &mut Client,
    which: Ending<'_>,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let (entry, expired_by): (Option<&str>, Option<DateTime<Utc>>) = match which {
        Ending::Entry(name) => (Some(name), None),
        Ending::ExpiredBy(at) => (None, Some(at)),
    };
    let rows = client
        .query(END_PAUSES, &[&entry, &expired_by, &SYSTEM_PROJECT])
        .await?;
    let resumed: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    for name in &resumed {
        tracing::info!(entry = %name, "cron entry resumed; it catches up once within its window");
    }
    Ok(resumed)
}

/// Resumes `name`: every node's tick loop sees it at its next wake-up (within
/// `ticker::MAX_SLEEP`) and catches the entry up once, as after a stall.
/// Resuming an entry that is not paused does nothing.
pub async fn resume(pool: &Pool, table: &Table, name: &str) -> Result<(), ControlError> {
    let entry = entry(table, name)?;
    let mut client = pool.get().await?;
    end_pauses(&mut client, Ending::Entry(&entry.name)).await?;
    Ok(())
}

/// Fires `name` now, through the jobs gate like any request (`trigger:
/// "manual"`), so it coalesces with a running job of its lane. Works while the
/// entry is paused: a pause stops the clock, not the operator.
pub async fn trigger(
    engine: &Engine,
    table: &Table,
    name: &str,
) -> Result<Submitted, ControlError> {
    let entry = entry(table, name)?;
    let submitted = engine
        .submit(JobRequest {
            kind: entry.kind,
            scope: Scope::All,
            trigger: Trigger::Manual,
        })
        .await?;
    tracing::info!(entry = %entry.name, job_id = %submitted.job_id, coalesced = submitted.coalesced,
        "cron entry triggered by hand");
    Ok(submitted)
}
