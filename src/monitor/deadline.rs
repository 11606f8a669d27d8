//! The deadline loop: finds heartbeats whose deadline has passed, flips their
//! stored status, and writes the alert rows to the outbox, all in one transaction.
//! It makes every change of the stored status (`pending`, `up`, `down`,
//! `paused`), so each one has its flip row: a ping that may change the status
//! only hands the row over by moving its deadline (docs/decisions.md §11).
//! `late` is up with a warning, computed from the clock at read; it is never
//! stored and never flips.
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

use std::collections::HashMap;

use super::event_log;
use super::heartbeat::{runs_to_json, Heartbeat, COLUMNS};
use super::silence;
use super::status::{
    fire_times, Cause, Counted, Evaluation, Expectation, Status, StoredStatus, FIRE_TIMES_STORED,
};
use super::withhold::{decide, Decision, Holds, Withheld};
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
    /// Children woken because a parent recovered (they owe an alert).
    pub woken: u64,
    /// Detection events counted.
    pub events: LoopEvents,
}

/// The detection events one iteration counted, for `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LoopEvents {
    /// Missed deadlines, and schedule fires with no start within the margin.
    pub missed: u64,
    /// Started runs that did not finish in time.
    pub timeout: u64,
    /// Flips whose alert a silence withheld.
    pub silenced: u64,
    /// Flips whose alert a parent that was down withheld.
    pub suppressed: u64,
}

impl LoopEvents {
    fn add(&mut self, other: LoopEvents) {
        self.missed += other.missed;
        self.timeout += other.timeout;
        self.silenced += other.silenced;
        self.suppressed += other.suppressed;
    }

    /// Each event with its label.
    pub fn labelled(&self) -> [(&'static str, u64); 4] {
        [
            ("missed", self.missed),
            ("timeout", self.timeout),
            ("silenced", self.silenced),
            ("suppressed", self.suppressed),
        ]
    }
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
            .map(|tick| {
                for (event, n) in tick.events.labelled() {
                    metrics.detection_events(event, n);
                }
            });
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
        total.woken += tick.woken;
        total.events.add(tick.events);
        // Woken children are due now: one more pass sends what they owe.
        if (tick.examined as i64) < BATCH && tick.woken == 0 {
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
/// grace` (or `due_at + start margin` for a schedule with one), so every late row
/// has `deadline - max(grace, margin) < now`; the converse does not hold (a
/// start ping's deadline is earlier), hence the exact evaluation after.
const COUNT_CANDIDATES: &str = "deadline IS NOT NULL AND (deadline <= $1
     OR (status = 'up' AND deadline - make_interval(
            secs => GREATEST(grace_seconds, COALESCE(start_margin_seconds, 0))) < $1))";

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
/// misses counted up to now (a start or run that timed out is one of them, so
/// its `started_at` is cleared or its run dropped; `$10` is NULL where the runs
/// did not change), what took it down, and when a success would be early (and
/// the fire times the ping statement judges later successes by, `$15`, an
/// array literal).
const RESCHEDULE: &str = "
UPDATE heartbeat.heartbeat h SET status = u.status, deadline = u.deadline,
    fail_streak = u.fail, ok_streak = u.ok, failing = u.failing,
    failing_since = u.failing_since, missed_at = u.missed_at, started_at = u.started_at,
    runs = COALESCE(u.runs::jsonb, h.runs), failing_cause = u.cause, early_before = u.early_before,
    held_flip_id = u.held, held_by = u.held_by, fire_times = u.fire_times::timestamptz[]
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::int4[], $5::int4[], $6::bool[],
            $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::text[], $11::text[],
            $12::timestamptz[], $13::int8[], $14::text[], $15::text[])
     AS u(id, status, deadline, fail, ok, failing, failing_since, missed_at, started_at, runs,
          cause, early_before, held, held_by, fire_times)
WHERE h.heartbeat_id = u.id";

const INSERT_FLIPS: &str = "
INSERT INTO heartbeat.flip (heartbeat_id, at, from_status, to_status, detected_at, cause,
                           withheld)
SELECT id, at, from_status, to_status, clock_timestamp(), cause, withheld
FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[])
     AS f(id, at, from_status, to_status, cause, withheld)
RETURNING flip_id, heartbeat_id, to_status";

/// The notification channel a transaction that wrote alerts signals on: every
/// node's delivery worker listens (`crate::notify::wake`) and claims at once.
pub const ALERTS_CHANNEL: &str = "heartbeat_alerts";

/// Heard by the listeners when (and only if) the transaction commits;
/// PostgreSQL folds a transaction's identical notifications into one.
const NOTIFY_ALERTS: &str = "SELECT pg_notify('heartbeat_alerts', '')";

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
    let claimed: Vec<(Heartbeat, Evaluation)> = rows
        .iter()
        .map(|row| {
            let hb = Heartbeat::from_row(row);
            let e = hb.evaluate(now);
            (hb, e)
        })
        .collect();
    let decisions = decide_alerts(&tx, &claimed, now).await?;

    // The flips first: a withheld down flip's id is what the row then owes.
    // A heartbeat may take two (see `flips_of`); the alert decision belongs to
    // the last, the change to the status the row ends in.
    let mut flips: Vec<Flip> = Vec::new();
    for ((hb, e), d) in claimed.iter().zip(&decisions) {
        let changes = flips_of(hb, e.status.stored(), e.since.unwrap_or(now));
        let last = changes.len().saturating_sub(1);
        for (i, mut f) in changes.into_iter().enumerate() {
            f.cause = flip_cause(e, f.from, f.to);
            if i == last {
                f.withheld = d.withheld;
            }
            flips.push(f);
        }
    }
    // Per heartbeat: the id and the from-status of its last flip.
    let mut flip_ids: HashMap<Uuid, (i64, StoredStatus)> = HashMap::new();
    if !flips.is_empty() {
        let f_ids: Vec<Uuid> = flips.iter().map(|f| f.hb.id).collect();
        let f_at: Vec<DateTime<Utc>> = flips.iter().map(|f| f.at).collect();
        let f_from: Vec<StoredStatus> = flips.iter().map(|f| f.from).collect();
        let f_to: Vec<StoredStatus> = flips.iter().map(|f| f.to).collect();
        let f_cause: Vec<Option<&str>> = flips.iter().map(|f| f.cause).collect();
        let f_withheld: Vec<Option<Withheld>> = flips.iter().map(|f| f.withheld).collect();
        for w in f_withheld.iter().flatten() {
            match w {
                Withheld::Silenced => tick.events.silenced += 1,
                Withheld::Suppressed => tick.events.suppressed += 1,
            }
        }
        let inserted = tx
            .query(
                INSERT_FLIPS,
                &[&f_ids, &f_at, &f_from, &f_to, &f_cause, &f_withheld],
            )
            .await?;
        tick.flips = inserted.len();
        let ends: HashMap<Uuid, StoredStatus> = claimed
            .iter()
            .map(|(hb, e)| (hb.id, e.status.stored()))
            .collect();
        // A heartbeat's flips were pushed in order: the last one kept is its last.
        let last_from: HashMap<Uuid, StoredStatus> =
            flips.iter().map(|f| (f.hb.id, f.from)).collect();
        for row in &inserted {
            let (flip_id, hb_id, to): (i64, Uuid, StoredStatus) =
                (row.get(0), row.get(1), row.get(2));
            if ends.get(&hb_id) == Some(&to) {
                flip_ids.insert(hb_id, (flip_id, last_from[&hb_id]));
            }
        }
    }

    let n = claimed.len();
    let mut ids = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut deadlines: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut fails = Vec::with_capacity(n);
    let mut oks = Vec::with_capacity(n);
    let mut failings = Vec::with_capacity(n);
    let mut failing_sinces: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut missed: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut started: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut runs: Vec<Option<String>> = Vec::with_capacity(n);
    let mut causes: Vec<Option<Cause>> = Vec::with_capacity(n);
    let mut early: Vec<Option<DateTime<Utc>>> = Vec::with_capacity(n);
    let mut held: Vec<Option<i64>> = Vec::with_capacity(n);
    let mut held_by: Vec<Option<Withheld>> = Vec::with_capacity(n);
    let mut fires: Vec<Option<String>> = Vec::with_capacity(n);
    for ((hb, e), d) in claimed.iter().zip(&decisions) {
        tick.events.missed += u64::from(e.missed);
        tick.events.timeout += u64::from(e.timed_out);
        ids.push(hb.id);
        statuses.push(e.status.stored());
        // A silence's end wakes a heartbeat whose alert it holds, even one
        // with nothing left to miss.
        deadlines.push(match (e.down_at, d.wake_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        });
        fails.push(e.streaks.fail);
        oks.push(e.streaks.ok);
        failings.push(e.streaks.failing);
        failing_sinces.push(e.streaks.failing_since);
        missed.push(e.streaks.missed_at);
        started.push(e.started_at);
        runs.push((e.runs != hb.runs).then(|| runs_to_json(&e.runs)));
        causes.push(e.streaks.failing.then_some(e.streaks.cause).flatten());
        early.push(e.early_before);
        fires.push(
            e.early_before
                .and(hb.last_signal_at)
                .map(|last| fire_times_literal(&hb.expectation(), last)),
        );
        let owed = d
            .owe
            .and_then(|_| flip_ids.get(&hb.id).map(|f| f.0).or(hb.held_flip_id));
        held.push(owed);
        held_by.push(owed.and(d.owe));
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
            &runs,
            &causes,
            &early,
            &held,
            &held_by,
            &fires,
        ],
    )
    .await?;
    // A failure the clock counted below the threshold changes no status, so
    // it is recorded here to be seen; the one that reaches the threshold is
    // recorded by its flip (`cause`), and writing it twice would double the
    // cost of a burst of misses (docs/decisions.md §29).
    let counted: Vec<(Uuid, &Counted)> = claimed
        .iter()
        .flat_map(|(hb, e)| {
            e.counted
                .iter()
                .filter(|c| c.failure_streak < hb.thresholds.failure)
                .map(move |c| (hb.id, c))
        })
        .collect();
    event_log::record(&tx, &counted).await?;

    let mut a_flip = Vec::new();
    let mut a_project = Vec::new();
    let mut a_heartbeat = Vec::new();
    let mut a_event = Vec::new();
    let mut a_payload = Vec::new();
    for ((hb, e), d) in claimed.iter().zip(&decisions) {
        let to = e.status.stored();
        let (flip_id, event, at, from, released) = if d.release {
            let Some(flip_id) = hb.held_flip_id else {
                continue;
            };
            let at = e.streaks.failing_since.unwrap_or(now);
            (flip_id, "down", at, hb.stored_status, hb.held_by)
        } else if d.alert {
            let Some(&(flip_id, from)) = flip_ids.get(&hb.id) else {
                continue;
            };
            let Some(event) = alert_event(from, to) else {
                continue;
            };
            (flip_id, event, e.since.unwrap_or(now), from, None)
        } else {
            continue;
        };
        a_flip.push(flip_id);
        a_project.push(hb.project_id);
        a_heartbeat.push(hb.id);
        a_event.push(event);
        a_payload.push(json!({
            "event": event,
            "heartbeat": {"id": hb.id, "name": hb.name, "project_id": hb.project_id,
                          "tags": hb.tags},
            "at": at,
            "detected_at": now,
            "previous_status": if d.release { StoredStatus::Up } else { from },
            "status": to,
            "cause": if event == "down" { flip_cause(e, StoredStatus::Up, to) } else { Some("success") },
            "released_after": released,
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
        if tick.alerts > 0 {
            tx.batch_execute(NOTIFY_ALERTS).await?;
        }
    }

    // A parent that is no longer down (recovered, or paused) wakes its
    // children that owe an alert: those still down alert now (in this same
    // `run_once`).
    let recovered: Vec<Uuid> = flips
        .iter()
        .filter(|f| f.from == StoredStatus::Down && f.to != StoredStatus::Down)
        .map(|f| f.hb.id)
        .collect();
    if !recovered.is_empty() {
        tick.woken = tx.execute(WAKE_CHILDREN, &[&recovered, &now]).await?;
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

/// The fire times after `last` as a `timestamptz[]` literal, for the ping
/// statement's `early` (see [`super::status::fire_times`]).
fn fire_times_literal(expectation: &Expectation, last: DateTime<Utc>) -> String {
    let times: Vec<String> = fire_times(expectation, last, FIRE_TIMES_STORED)
        .iter()
        .map(|t| {
            format!(
                "\"{}\"",
                t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            )
        })
        .collect();
    format!("{{{}}}", times.join(","))
}

/// Children of recovered parents that owe an alert are looked at again now.
const WAKE_CHILDREN: &str = "
UPDATE heartbeat.heartbeat SET deadline = $2
WHERE parents && $1::uuid[] AND held_flip_id IS NOT NULL AND (deadline IS NULL OR deadline > $2)";

/// The alert decision for each claimed row. Only rows whose flip would alert,
/// or that owe an alert, need to know what holds them: their silences and
/// their parents' status at `now` (a parent claimed in the same batch is taken
/// as just evaluated), loaded in two queries for the whole batch.
async fn decide_alerts(
    tx: &tokio_postgres::Transaction<'_>,
    claimed: &[(Heartbeat, Evaluation)],
    now: DateTime<Utc>,
) -> Result<Vec<Decision>, DeadlineError> {
    let needs = |hb: &Heartbeat, e: &Evaluation| {
        let to = e.status.stored();
        hb.held_flip_id.is_some()
            || (to != hb.stored_status && alert_event(hb.stored_status, to).is_some())
    };
    let asking: Vec<&Heartbeat> = claimed
        .iter()
        .filter(|(hb, e)| needs(hb, e))
        .map(|(hb, _)| hb)
        .collect();
    let mut decisions = Vec::with_capacity(claimed.len());
    if asking.is_empty() {
        for (hb, e) in claimed {
            decisions.push(decide(
                hb.stored_status,
                e.status.stored(),
                None,
                Holds::default(),
            ));
        }
        return Ok(decisions);
    }
    let silences = silence::covering(tx, &asking).await?;
    let holding = silence::holding(&silences, now);
    let mut down: HashMap<Uuid, bool> = claimed
        .iter()
        .map(|(hb, e)| (hb.id, e.status == Status::Down))
        .collect();
    let mut others: Vec<Uuid> = asking
        .iter()
        .flat_map(|hb| hb.parents.iter().copied())
        .filter(|p| !down.contains_key(p))
        .collect();
    others.sort();
    others.dedup();
    if !others.is_empty() {
        let rows = tx
            .query(
                &format!("SELECT {COLUMNS} FROM heartbeat.heartbeat WHERE heartbeat_id = ANY($1)"),
                &[&others],
            )
            .await?;
        for row in &rows {
            let parent = Heartbeat::from_row(row);
            down.insert(parent.id, parent.evaluate(now).status == Status::Down);
        }
    }
    for (hb, e) in claimed {
        let holds = if needs(hb, e) {
            Holds {
                silenced_until: silence::silenced_until(&holding, hb),
                parent_down: hb
                    .parents
                    .iter()
                    .any(|p| down.get(p).copied().unwrap_or(false)),
            }
        } else {
            Holds::default()
        };
        let owed = hb.held_flip_id.and(hb.held_by.or(Some(Withheld::Silenced)));
        decisions.push(decide(hb.stored_status, e.status.stored(), owed, holds));
    }
    Ok(decisions)
}

/// One change of a heartbeat's stored status, as a `heartbeat.flip` row.
struct Flip {
    hb: Heartbeat,
    at: DateTime<Utc>,
    from: StoredStatus,
    to: StoredStatus,
    /// What caused it (see `flip_cause`).
    cause: Option<&'static str>,
    /// Why its alert was held back, on the last flip of a heartbeat.
    withheld: Option<Withheld>,
}

/// The flips that take `hb` from its stored status to `to` (changed at `at`):
/// none, one, or, for a `pending` heartbeat the loop first sees when it is no
/// longer up (its first signal came, then its deadline passed, while the loop
/// was not running), `pending → up` at that signal before the change itself, so
/// the first success is in the history whatever the loop's timing.
fn flips_of(hb: &Heartbeat, to: StoredStatus, at: DateTime<Utc>) -> Vec<Flip> {
    let from = hb.stored_status;
    if to == from {
        return Vec::new();
    }
    let flip = |from, to, at| Flip {
        hb: hb.clone(),
        at,
        from,
        to,
        cause: None,
        withheld: None,
    };
    let first_up = hb
        .last_signal_at
        .filter(|_| from == StoredStatus::Pending && to != StoredStatus::Up)
        .filter(|&signal| signal <= at && hb.evaluate(signal).status.stored() == StoredStatus::Up);
    match first_up {
        Some(signal) => vec![
            flip(StoredStatus::Pending, StoredStatus::Up, signal),
            flip(StoredStatus::Up, to, at),
        ],
        None => vec![flip(from, to, at)],
    }
}

/// What a flip to `to` is put down to: the event that took it down, `success`
/// for a recovery; nothing for the silent flips.
fn flip_cause(e: &Evaluation, from: StoredStatus, to: StoredStatus) -> Option<&'static str> {
    match (from, to) {
        (_, StoredStatus::Down) => Some(e.streaks.cause.unwrap_or(Cause::Fail).as_str()),
        (StoredStatus::Down, StoredStatus::Up) => Some("success"),
        _ => None,
    }
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
