//! The deadline loop: finds heartbeats whose deadline has passed, flips their
//! stored status, and writes the alert rows to the outbox, all in one transaction.
//! It makes every status change but one: a first success (`pending` → `up`),
//! which never alerts, is written by the ping statement itself
//! (docs/decisions.md §11).
//!
//! Rows are claimed with `FOR UPDATE SKIP LOCKED` through the partial index on
//! `deadline`, so several daemons can share the work. A flip is dated at the
//! instant the status changed (the computed deadline, or the ping that changed
//! it), never at detection time; `detected_at` keeps the latter.
//!
//! Every `status_count_interval_ms` the loop also counts heartbeats per status
//! for the `heartbeat_heartbeats` gauge ([`count_statuses`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::json;
use uuid::Uuid;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::heartbeat::{Heartbeat, COLUMNS};
use super::status::{Status, StoredStatus};
use super::MonitorConfig;
use crate::ops::liveness::Liveness;
use crate::ops::prometheus::Metrics;

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

/// What the deadline loop needs.
pub struct LoopDeps {
    pub pool: Pool,
    /// `deadline_interval_ms` and `status_count_interval_ms`.
    pub config: MonitorConfig,
    /// For the status gauge and the loop's lag.
    pub metrics: Metrics,
    /// The loop registers here and beats on every pass.
    pub liveness: Liveness,
    /// Woken after a batch wrote alerts, so this process's delivery worker
    /// sends them now instead of at its next interval.
    pub alerts_written: Arc<Notify>,
    pub shutdown: CancellationToken,
}

/// Runs the loop until shutdown.
pub async fn run(deps: LoopDeps) {
    let LoopDeps {
        pool,
        config,
        metrics,
        liveness,
        alerts_written,
        shutdown,
    } = deps;
    let interval = Duration::from_millis(config.deadline_interval_ms.max(10));
    // A pass stuck on the database stops the beats: the watchdog and the
    // self-ping then report the daemon unhealthy.
    let beat = liveness.register(
        "deadline",
        crate::ops::liveness::DEFAULT_MAX_SILENCE.max(ERROR_BACKOFF * 3),
    );
    let count_every = Duration::from_millis(config.status_count_interval_ms.max(10));
    let mut last_count: Option<tokio::time::Instant> = None;
    loop {
        beat.beat();
        let mut result = run_once_waking(&pool, Utc::now(), Some(&alerts_written))
            .await
            .map(|_| ());
        if result.is_ok() && last_count.is_none_or(|at| at.elapsed() >= count_every) {
            // Counted right after a pass, so stored statuses are as fresh as they get.
            result = count_statuses(&pool, Utc::now())
                .await
                .map(|counts| metrics.heartbeats_by_status(&counts.labelled()));
            last_count = Some(tokio::time::Instant::now());
        }
        let wait = match result {
            Ok(()) => interval,
            Err(e) => {
                tracing::warn!(error = %e, "deadline loop failed; retrying");
                ERROR_BACKOFF
            }
        };
        let due = tokio::time::Instant::now() + wait;
        tokio::select! {
            _ = tokio::time::sleep_until(due) => {}
            _ = shutdown.cancelled() => return,
        }
        metrics.deadline_loop_lag(tokio::time::Instant::now().saturating_duration_since(due));
    }
}

/// One iteration at `now`: claims every passed deadline in batches until none is
/// left.
pub async fn run_once(pool: &Pool, now: DateTime<Utc>) -> Result<Tick, DeadlineError> {
    run_once_waking(pool, now, None).await
}

/// [`run_once`], waking `alerts_written` after every batch that wrote alerts:
/// a burst's first alerts go out while later batches are still being flipped.
pub async fn run_once_waking(
    pool: &Pool,
    now: DateTime<Utc>,
    alerts_written: Option<&Notify>,
) -> Result<Tick, DeadlineError> {
    let mut total = Tick::default();
    loop {
        let tick = run_batch(pool, now).await?;
        if tick.alerts > 0 {
            if let Some(wake) = alerts_written {
                wake.notify_one();
            }
        }
        total.examined += tick.examined;
        total.flips += tick.flips;
        total.alerts += tick.alerts;
        if (tick.examined as i64) < BATCH {
            return Ok(total);
        }
    }
}

/// Heartbeats per status at one instant, as the API would show them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatusCounts {
    pub pending: u64,
    pub up: u64,
    pub late: u64,
    pub down: u64,
    pub paused: u64,
}

impl StatusCounts {
    fn slot(&mut self, status: Status) -> &mut u64 {
        match status {
            Status::Pending => &mut self.pending,
            Status::Up => &mut self.up,
            Status::Late => &mut self.late,
            Status::Down => &mut self.down,
            Status::Paused => &mut self.paused,
        }
    }

    /// Every status label, zeros included, so a dashboard never sees a gap.
    pub fn labelled(&self) -> [(&'static str, u64); 5] {
        [
            (Status::Pending.as_str(), self.pending),
            (Status::Up.as_str(), self.up),
            (Status::Late.as_str(), self.late),
            (Status::Down.as_str(), self.down),
            (Status::Paused.as_str(), self.paused),
        ]
    }
}

const COUNT_STORED: &str = "SELECT status, count(*) FROM heartbeat.heartbeat GROUP BY status";

/// Rows whose stored status may not be what the API shows at `$1`: a deadline
/// already passed (the loop has not flipped it yet), or a stored `up` that may be
/// late. Late is `now > due_at`, and the stored deadline is at most `due_at +
/// grace`, so every late row has `deadline - grace < now`; the converse does not
/// hold (a start ping's deadline is earlier), hence the exact evaluation after.
const COUNT_CANDIDATES: &str = "deadline IS NOT NULL AND (deadline <= $1
     OR (status = 'up' AND deadline - make_interval(secs => grace_seconds) < $1))";

/// Counts heartbeats per status at `now`. The stored status is one `count(*)`
/// per status; it never says `late` (late is up with a warning, not a flip), and
/// may lag a deadline the loop has not reached yet, so the few rows that could
/// differ ([`COUNT_CANDIDATES`]) are evaluated with [`Heartbeat::evaluate`], the
/// function the API uses, and moved to the status it gives.
pub async fn count_statuses(
    pool: &Pool,
    now: DateTime<Utc>,
) -> Result<StatusCounts, DeadlineError> {
    let mut client = pool.get().await?;
    // One snapshot for both queries, so a row is never counted twice or missed.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let stored = tx.query(COUNT_STORED, &[]).await?;
    let candidates = tx
        .query(
            &format!("SELECT {COLUMNS} FROM heartbeat.heartbeat WHERE {COUNT_CANDIDATES}"),
            &[&now],
        )
        .await?;
    tx.commit().await?;
    let mut counts = StatusCounts::default();
    for row in &stored {
        let status: StoredStatus = row.get(0);
        let n: i64 = row.get(1);
        *counts.slot(status.into()) += n as u64;
    }
    for row in &candidates {
        let hb = Heartbeat::from_row(row);
        let live = hb.evaluate(now).status;
        let stored = Status::from(hb.stored_status);
        if stored != live {
            let from = counts.slot(stored);
            *from = from.saturating_sub(1);
            *counts.slot(live) += 1;
        }
    }
    Ok(counts)
}

#[derive(Debug, thiserror::Error)]
pub enum DeadlineError {
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// Stores each claimed row's status, next deadline, and the streaks with the
/// misses counted up to now (a start whose grace passed is one of them, so its
/// `started_at` is cleared).
const RESCHEDULE: &str = "
UPDATE heartbeat.heartbeat h SET status = u.status, deadline = u.deadline,
    fail_streak = u.fail, ok_streak = u.ok, failing = u.failing,
    failing_since = u.failing_since, missed_at = u.missed_at, started_at = u.started_at
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int4[], $5::int4[], $6::bool[],
            $7::timestamptz[], $8::timestamptz[], $9::timestamptz[])
     AS u(id, status, deadline, fail, ok, failing, failing_since, missed_at, started_at)
WHERE h.heartbeat_id = u.id";

const INSERT_FLIPS: &str = "
INSERT INTO heartbeat.flip (heartbeat_id, at, from_status, to_status, detected_at)
SELECT id, at, from_status, to_status, clock_timestamp()
FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[])
     AS f(id, at, from_status, to_status)
RETURNING flip_id, heartbeat_id";

/// One outbox row per (alerting flip, channel it routes to): every unmuted
/// channel of its project, or the heartbeat's own list (`heartbeat.channels`).
const INSERT_ALERTS: &str = "
INSERT INTO heartbeat.alert (flip_id, channel_id, heartbeat_id, event, payload, created_at,
                             next_attempt_at)
SELECT a.flip_id, c.channel_id, a.heartbeat_id, a.event, a.payload, $6, $6
FROM unnest($1::int8[], $2::uuid[], $3::uuid[], $4::text[], $5::jsonb[])
     AS a(flip_id, project_id, heartbeat_id, event, payload)
JOIN heartbeat.heartbeat h ON h.heartbeat_id = a.heartbeat_id
JOIN heartbeat.channel c ON c.project_id = a.project_id AND NOT c.muted
     AND (h.channels IS NULL OR c.channel_id = ANY(h.channels))
ON CONFLICT DO NOTHING";

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
    let mut fails = Vec::with_capacity(rows.len());
    let mut oks = Vec::with_capacity(rows.len());
    let mut failings = Vec::with_capacity(rows.len());
    let mut failing_sinces: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(rows.len());
    let mut missed: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(rows.len());
    let mut started: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(rows.len());
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
        fails.push(e.streaks.fail);
        oks.push(e.streaks.ok);
        failings.push(e.streaks.failing);
        failing_sinces.push(e.streaks.failing_since);
        missed.push(e.streaks.missed_at);
        started.push(e.started_at);
    }
    tx.execute(
        RESCHEDULE,
        &[
            &ids,
            &statuses,
            &deadlines,
            &fails,
            &oks,
            &failings,
            &failing_sinces,
            &missed,
            &started,
        ],
    )
    .await?;
    if !flips.is_empty() {
        let f_ids: Vec<Uuid> = flips.iter().map(|f| f.0.id).collect();
        let f_at: Vec<DateTime<Utc>> = flips.iter().map(|f| f.1).collect();
        let f_from: Vec<StoredStatus> = flips.iter().map(|f| f.0.stored_status).collect();
        let f_to: Vec<StoredStatus> = flips.iter().map(|f| f.2).collect();
        let inserted = tx
            .query(INSERT_FLIPS, &[&f_ids, &f_at, &f_from, &f_to])
            .await?;
        tick.flips = inserted.len();
        let mut a_flip = Vec::new();
        let mut a_project = Vec::new();
        let mut a_heartbeat = Vec::new();
        let mut a_event = Vec::new();
        let mut a_payload = Vec::new();
        for row in &inserted {
            let flip_id: i64 = row.get(0);
            let hb_id: Uuid = row.get(1);
            let Some((hb, at, to)) = flips.iter().find(|f| f.0.id == hb_id) else {
                continue;
            };
            let Some(event) = alert_event(hb.stored_status, *to) else {
                continue;
            };
            a_flip.push(flip_id);
            a_project.push(hb.project_id);
            a_heartbeat.push(hb.id);
            a_event.push(event);
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
                .execute(
                    INSERT_ALERTS,
                    &[
                        &a_flip,
                        &a_project,
                        &a_heartbeat,
                        &a_event,
                        &a_payload,
                        &now,
                    ],
                )
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
fn alert_event(from: StoredStatus, to: StoredStatus) -> Option<&'static str> {
    match (from, to) {
        (f, StoredStatus::Down) if f != StoredStatus::Down => Some("down"),
        (StoredStatus::Down, StoredStatus::Up) => Some("up"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_down_and_recovery_alert() {
        use StoredStatus::{Down, Paused, Pending, Up};
        assert_eq!(alert_event(Up, Down), Some("down"));
        assert_eq!(alert_event(Pending, Down), Some("down"));
        assert_eq!(alert_event(Down, Up), Some("up"));
        assert_eq!(alert_event(Pending, Up), None);
        assert_eq!(alert_event(Up, Paused), None);
        assert_eq!(alert_event(Down, Paused), None);
    }
}
