//! The deadline loop: finds heartbeats whose deadline has passed, flips their
//! stored status, and writes the alert rows to the outbox, all in one transaction.
//!
//! Rows are claimed with `FOR UPDATE SKIP LOCKED` through the partial index on
//! `deadline`, so several daemons can share the work. A flip is dated at the
//! instant the status changed (the computed deadline, or the ping that changed
//! it), never at detection time; `detected_at` keeps the latter.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::json;
use uuid::Uuid;

use super::heartbeat::{Heartbeat, COLUMNS};
use crate::state::AppState;

/// Rows claimed per transaction.
const BATCH: i64 = 2000;
/// Wait after a database error before trying again.
const ERROR_BACKOFF: Duration = Duration::from_secs(5);

/// What one iteration did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    /// Rows whose deadline had passed.
    pub examined: usize,
    /// Status changes recorded.
    pub flips: usize,
    /// Outbox rows written.
    pub alerts: u64,
}

/// Runs the loop until shutdown.
pub async fn run(state: AppState) {
    if !state.wait_migrated().await {
        return;
    }
    let interval = Duration::from_millis(state.config.monitor.deadline_interval_ms.max(10));
    loop {
        let wait = match run_once(&state.pool, Utc::now()).await {
            Ok(_) => interval,
            Err(e) => {
                tracing::warn!(error = %e, "deadline loop failed; retrying");
                ERROR_BACKOFF
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = state.shutdown.cancelled() => return,
        }
    }
}

/// One iteration at `now`: claims every passed deadline in batches until none is
/// left.
pub async fn run_once(pool: &Pool, now: DateTime<Utc>) -> Result<Tick, DeadlineError> {
    let mut total = Tick::default();
    loop {
        let tick = run_batch(pool, now).await?;
        total.examined += tick.examined;
        total.flips += tick.flips;
        total.alerts += tick.alerts;
        if (tick.examined as i64) < BATCH {
            return Ok(total);
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeadlineError {
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

const RESCHEDULE: &str = "
UPDATE heartbeat.heartbeat h SET status = u.status, deadline = u.deadline
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS u(id, status, deadline)
WHERE h.heartbeat_id = u.id";

const INSERT_FLIPS: &str = "
INSERT INTO heartbeat.flip (heartbeat_id, at, from_status, to_status, detected_at)
SELECT id, at, from_status, to_status, clock_timestamp()
FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[])
     AS f(id, at, from_status, to_status)
RETURNING flip_id, heartbeat_id";

/// One outbox row per (alerting flip, webhook of its project).
const INSERT_ALERTS: &str = "
INSERT INTO heartbeat.alert (flip_id, webhook_id, payload, created_at, next_attempt_at)
SELECT a.flip_id, w.webhook_id, a.payload, $4, $4
FROM unnest($1::int8[], $2::uuid[], $3::jsonb[]) AS a(flip_id, project_id, payload)
JOIN heartbeat.webhook w ON w.project_id = a.project_id";

async fn run_batch(pool: &Pool, now: DateTime<Utc>) -> Result<Tick, DeadlineError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let claim = format!(
        "SELECT {COLUMNS} FROM heartbeat.heartbeat WHERE deadline <= $1
         ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED"
    );
    let rows = tx.query(&claim, &[&now, &BATCH]).await?;
    let mut tick = Tick {
        examined: rows.len(),
        ..Tick::default()
    };
    if rows.is_empty() {
        return Ok(tick);
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut statuses = Vec::with_capacity(rows.len());
    let mut deadlines: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(rows.len());
    let mut flips = Vec::new();
    for row in &rows {
        let hb = Heartbeat::from_row(row);
        let e = hb.evaluate(now);
        let to = e.status.stored();
        if to != hb.stored_status {
            flips.push((hb.clone(), e.since.unwrap_or(now), to));
        }
        ids.push(hb.id);
        statuses.push(to);
        deadlines.push(e.down_at);
    }
    tx.execute(RESCHEDULE, &[&ids, &statuses, &deadlines])
        .await?;
    if !flips.is_empty() {
        let f_ids: Vec<Uuid> = flips.iter().map(|f| f.0.id).collect();
        let f_at: Vec<DateTime<Utc>> = flips.iter().map(|f| f.1).collect();
        let f_from: Vec<&str> = flips.iter().map(|f| f.0.stored_status.as_str()).collect();
        let f_to: Vec<&str> = flips.iter().map(|f| f.2).collect();
        let inserted = tx
            .query(INSERT_FLIPS, &[&f_ids, &f_at, &f_from, &f_to])
            .await?;
        tick.flips = inserted.len();
        let mut a_flip = Vec::new();
        let mut a_project = Vec::new();
        let mut a_payload = Vec::new();
        for row in &inserted {
            let flip_id: i64 = row.get(0);
            let hb_id: Uuid = row.get(1);
            let Some((hb, at, to)) = flips.iter().find(|f| f.0.id == hb_id) else {
                continue;
            };
            let Some(event) = alert_event(&hb.stored_status, to) else {
                continue;
            };
            a_flip.push(flip_id);
            a_project.push(hb.project_id);
            a_payload.push(json!({
                "event": event,
                "heartbeat": {"id": hb.id, "name": hb.name, "project_id": hb.project_id},
                "at": at,
                "detected_at": now,
                "previous_status": hb.stored_status,
                "status": to,
            }));
        }
        if !a_flip.is_empty() {
            tick.alerts = tx
                .execute(INSERT_ALERTS, &[&a_flip, &a_project, &a_payload, &now])
                .await?;
        }
    }
    tx.commit().await?;
    if tick.flips > 0 {
        tracing::info!(
            flips = tick.flips,
            alerts = tick.alerts,
            "heartbeat statuses flipped"
        );
    }
    Ok(tick)
}

/// Which transitions alert: going down, and coming back up from down. Pending,
/// paused and first pings flip silently.
fn alert_event(from: &str, to: &str) -> Option<&'static str> {
    match (from, to) {
        (f, "down") if f != "down" => Some("down"),
        ("down", "up") => Some("up"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_down_and_recovery_alert() {
        assert_eq!(alert_event("up", "down"), Some("down"));
        assert_eq!(alert_event("pending", "down"), Some("down"));
        assert_eq!(alert_event("down", "up"), Some("up"));
        assert_eq!(alert_event("pending", "up"), None);
        assert_eq!(alert_event("up", "paused"), None);
        assert_eq!(alert_event("down", "paused"), None);
    }
}
