//! The tick loop: fires each entry at its scheduled instants through the jobs
//! engine's gate, catches up what an outage missed, and records successes.
//!
//! [`Ticker`] holds the decisions and is driven one call at a time
//! ([`Ticker::catch_up`] on start, [`Ticker::tick`] per wake-up), so tests can
//! step it with any clock. [`run`] is the long-running loop around it: it sleeps
//! until the next fire time computed from the schedule (never `sleep(interval)`,
//! so nothing drifts), but at most [`MAX_SLEEP`] at once and re-reading the wall
//! clock at every wake, because the monotonic clock a sleep measures does not
//! advance while the machine is suspended and does not follow wall-clock steps.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::counters::{EntryCounters, ScheduleCounters};
use super::state::{EntryRecord, ScheduleStore};
use super::table::{Entry, Table};
use crate::clock::SharedClock;
use crate::jobs::{
    Engine, EngineError, Job, JobKind, JobRequest, JobState, Scope, Submitted, Trigger,
};

/// Longest single sleep: bounds how late a suspend or a wall-clock step is noticed.
pub const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(30);
/// A tick handled later than this after its fire time counts as overdue (an outage
/// or a stall), and goes through the catch-up rules instead of firing plainly.
pub const LATE_AFTER: Duration = Duration::seconds(60);
/// Wall time and monotonic time disagreeing by more than this over one sleep means
/// the wall clock was stepped or the machine was suspended.
const CLOCK_JUMP: Duration = Duration::seconds(5);
/// How long to wait before handing a tick to the gate again after the gate
/// failed (database unreachable): the tick is kept, not lost.
pub const RETRY_AFTER: Duration = Duration::seconds(30);
/// Missed fire times are counted one by one up to this many per outage.
const MAX_COUNTED: u64 = 1000;

/// The jobs engine as the tick loop sees it. A trait so the loop's decisions can
/// be stepped in tests without a database (the engine needs one for its locks).
pub trait TickGate: Send + Sync + 'static {
    /// Claims the tick `(kind, scheduled_at)`: false when it was already claimed,
    /// by another node or by this one before a restart.
    fn claim(
        &self,
        kind: JobKind,
        scheduled_at: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<bool, EngineError>>;
    /// The engine's gate (`Engine::submit`).
    fn submit(&self, req: JobRequest) -> BoxFuture<'_, Result<Submitted, EngineError>>;
    /// Every job that finishes (`Engine::subscribe`).
    fn subscribe(&self) -> broadcast::Receiver<Job>;
}

/// The real gate: the engine, plus the cluster's once-only tick claim row.
pub struct EngineGate {
    pub engine: Engine,
    pub pool: Pool,
}

impl TickGate for EngineGate {
    fn claim(
        &self,
        kind: JobKind,
        scheduled_at: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<bool, EngineError>> {
        Box::pin(async move {
            let db = self.pool.get().await?;
            Ok(super::claim::claim_tick(&**db, kind, scheduled_at, self.engine.node()).await?)
        })
    }

    fn submit(&self, req: JobRequest) -> BoxFuture<'_, Result<Submitted, EngineError>> {
        Box::pin(self.engine.submit(req))
    }

    fn subscribe(&self) -> broadcast::Receiver<Job> {
        self.engine.subscribe()
    }
}

/// What became of one scheduled tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// On time; started a job or queued the lane's follow-up.
    Fired,
    /// Answered by a job that already existed (running, or the queued follow-up).
    Absorbed,
    /// Overdue, but a success after its fire time already did the work.
    Covered,
    /// Another node (or this one before a restart) already claimed this tick.
    ClaimedElsewhere,
    /// One run for every fire time an outage missed.
    CaughtUp,
    /// Overdue past the entry's catch-up window: skipped.
    Missed { ticks: u64 },
    /// The gate refused it (the daemon is shutting down): counted as missed.
    Refused(String),
    /// The gate failed (e.g. database unreachable): tried again after
    /// [`RETRY_AFTER`], then decided by the catch-up rules.
    Deferred(String),
    /// The entry is paused: these fire times pass without a run, and on resume
    /// they are decided by the catch-up rules, like a stall.
    Paused { ticks: u64 },
}

/// One tick's record: which entry, which fire time, what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    pub entry: String,
    pub kind: JobKind,
    /// The fire time this is for (the latest one, for a catch-up).
    pub scheduled_at: DateTime<Utc>,
    pub outcome: Outcome,
    /// The job serving it, when one does.
    pub job_id: Option<Uuid>,
}

struct EntryClock {
    entry: Entry,
    counters: Arc<EntryCounters>,
    /// The earliest fire time not handled yet.
    next_fire: Option<DateTime<Utc>>,
    last_success: Option<DateTime<Utc>>,
    /// Scheduled time of the last tick handed to a job (this run or a previous one).
    last_tick: Option<DateTime<Utc>>,
    /// Ticks the gate failed to take, to try again.
    retry: Option<Retry>,
    /// The entry's pause as last read from the store (every node reads the same).
    pause: Pause,
    /// Fire times skipped while paused, decided by the catch-up rules on resume:
    /// (first, latest, count).
    held: Option<(DateTime<Utc>, DateTime<Utc>, u64)>,
}

/// An entry's pause as stored: set at, and the optional end.
#[derive(Debug, Clone, Copy, Default)]
struct Pause {
    at: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl Pause {
    fn active(&self, now: DateTime<Utc>) -> bool {
        self.at.is_some() && self.until.is_none_or(|u| u > now)
    }

    fn expired(&self, now: DateTime<Utc>) -> bool {
        self.at.is_some() && self.until.is_some_and(|u| u <= now)
    }
}

impl EntryClock {
    /// Adds skipped fire times to what is held for the resume.
    fn hold(&mut self, first: DateTime<Utc>, latest: DateTime<Utc>, ticks: u64) {
        self.held = Some(match self.held {
            Some((f, l, n)) => (f.min(first), l.max(latest), n.saturating_add(ticks)),
            None => (first, latest, ticks),
        });
    }
}

/// Ticks kept for another try after the gate failed.
#[derive(Debug, Clone, Copy)]
struct Retry {
    first_missed: DateTime<Utc>,
    latest: DateTime<Utc>,
    ticks: u64,
    at: DateTime<Utc>,
}

/// The cron table's decisions, stepped by the caller.
pub struct Ticker {
    table: Table,
    gate: Arc<dyn TickGate>,
    /// Enabled entries only.
    clocks: Vec<EntryClock>,
}

impl Ticker {
    /// A ticker whose first tick is each entry's first fire time at or after `now`.
    pub fn new(
        table: Table,
        gate: Arc<dyn TickGate>,
        counters: &ScheduleCounters,
        now: DateTime<Utc>,
    ) -> Self {
        let just_before = now - Duration::nanoseconds(1);
        let clocks = table
            .entries
            .iter()
            .map(|entry| (entry, counters.entry(&entry.name)))
            .filter(|(entry, _)| entry.enabled)
            .map(|(entry, counters)| EntryClock {
                entry: entry.clone(),
                counters,
                next_fire: table.next_fire(entry, just_before),
                last_success: None,
                last_tick: None,
                retry: None,
                pause: Pause::default(),
                held: None,
            })
            .collect();
        Self {
            table,
            gate,
            clocks,
        }
    }

    /// Takes what the store remembers of each entry, pauses included (read at
    /// every wake-up, so a pause or resume on any node reaches this one).
    pub fn load(&mut self, records: &HashMap<String, EntryRecord>) {
        for clock in &mut self.clocks {
            let r = records.get(&clock.entry.name).copied().unwrap_or_default();
            clock.last_success = clock.last_success.max(r.last_success_at);
            clock.last_tick = clock.last_tick.max(r.last_tick_at);
            clock.pause = Pause {
                at: r.paused_at,
                until: r.paused_until,
            };
        }
    }

    /// Whether some entry's pause has reached its `until`, so the store should
    /// end it (un-pausing its job heartbeat) before the next tick.
    pub fn has_expired_pause(&self, now: DateTime<Utc>) -> bool {
        self.clocks.iter().any(|c| c.pause.expired(now))
    }

    /// One wake-up of the loop as a plain call: ends expired pauses, re-reads the
    /// store (pauses and successes from every node), ticks, and persists what
    /// fired. A store that cannot be read leaves the last known state in force.
    pub async fn step(&mut self, store: &dyn ScheduleStore, now: DateTime<Utc>) -> Vec<Fire> {
        if self.has_expired_pause(now) {
            if let Err(e) = store.end_expired_pauses(now).await {
                tracing::warn!(error = %e, "cannot end expired pauses");
            }
        }
        match store.load().await {
            Ok(records) => self.load(&records),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read schedule_state; ticking on what was read last")
            }
        }
        let fires = self.tick(now).await;
        persist(store, &fires).await;
        fires
    }

    /// A job of `kind` succeeded at `at`; returns the entries it counts for (all of
    /// that kind, enabled or not) so the caller can persist it.
    pub fn record_success(&mut self, kind: JobKind, at: DateTime<Utc>) -> Vec<(String, JobKind)> {
        for clock in self.clocks.iter_mut().filter(|c| c.entry.kind == kind) {
            clock.last_success = clock.last_success.max(Some(at));
        }
        self.table
            .entries
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| (e.name.clone(), e.kind))
            .collect()
    }

    /// The earliest pending fire time across entries.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.clocks
            .iter()
            .flat_map(|c| [c.next_fire, c.retry.map(|r| r.at)])
            .flatten()
            .min()
    }

    /// On start: an entry whose last success is older than its previous fire time
    /// runs once, if its oldest missed fire time is within its catch-up window.
    pub async fn catch_up(&mut self, now: DateTime<Utc>) -> Vec<Fire> {
        let mut fires = Vec::new();
        for i in 0..self.clocks.len() {
            let clock = &self.clocks[i];
            let Some(latest) = self.table.prev_fire(&clock.entry, now) else {
                continue;
            };
            if clock.last_success.is_some_and(|s| s >= latest) {
                continue;
            }
            // The outage began after the last thing this entry did. A tick that
            // fired but did not succeed is due again, though its claim row stops it
            // from running twice: then the next fire time runs it.
            let first_missed = clock
                .last_success
                .max(clock.last_tick)
                .and_then(|t| self.table.next_fire(&clock.entry, t))
                .map_or(latest, |t| t.min(latest));
            let ticks = self.count_fires(&clock.entry, first_missed, latest);
            if clock.pause.active(now) {
                // Decided when the entry resumes, like the ticks of the pause itself.
                self.clocks[i].hold(first_missed, latest, ticks);
                continue;
            }
            fires.push(self.overdue(i, first_missed, latest, ticks, now).await);
        }
        fires
    }

    /// One wake-up at `now`: every entry whose fire time has come fires once. An
    /// entry that is late (its loop stalled, the machine slept, the clock jumped)
    /// goes through the catch-up rules: one run for all it missed, within its window.
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Vec<Fire> {
        let mut fires = Vec::new();
        for i in 0..self.clocks.len() {
            let clock = &self.clocks[i];
            let regular = clock
                .next_fire
                .filter(|t| *t <= now)
                .map(|first| self.fires_through(&clock.entry, first, now));
            if clock.pause.active(now) {
                let entry = clock.entry.clone();
                let clock = &mut self.clocks[i];
                if let Some(r) = clock.retry.take() {
                    clock.hold(r.first_missed, r.latest, r.ticks);
                }
                if let Some((first, latest, ticks)) = regular {
                    clock.hold(first, latest, ticks);
                    clock.next_fire = self.table.next_fire(&entry, latest);
                    tracing::info!(entry = %entry.name, scheduled_at = %latest, missed_ticks = ticks,
                        "cron entry paused: fire time skipped");
                    fires.push(self.fire(i, latest, Outcome::Paused { ticks }, None));
                }
                continue;
            }
            // Resumed (or never paused): what the pause held is overdue now.
            let retry = match (clock.retry, clock.held) {
                (r, None) => r,
                (r, Some((first, latest, ticks))) => Some(Retry {
                    first_missed: r.map_or(first, |r| r.first_missed.min(first)),
                    latest: r.map_or(latest, |r| r.latest.max(latest)),
                    ticks: r.map_or(ticks, |r| r.ticks.saturating_add(ticks)),
                    at: now,
                }),
            };
            let retry = retry.filter(|r| r.at <= now || regular.is_some());
            let (first, latest, ticks, late) = match (retry, regular) {
                (None, None) => continue,
                (None, Some((first, latest, ticks))) => {
                    (first, latest, ticks, ticks > 1 || now - latest > LATE_AFTER)
                }
                (Some(r), None) => (r.first_missed, r.latest, r.ticks, true),
                (Some(r), Some((_, latest, ticks))) => {
                    (r.first_missed, latest, r.ticks + ticks, true)
                }
            };
            let entry = clock.entry.clone();
            self.clocks[i].retry = None;
            self.clocks[i].held = None;
            if regular.is_some() {
                self.clocks[i].next_fire = self.table.next_fire(&entry, latest);
            }
            let fire = if late {
                self.overdue(i, first, latest, ticks, now).await
            } else {
                let claimed = self.claim(&entry, latest).await;
                self.claimed(i, (first, latest, ticks), claimed, Outcome::Fired, now)
            };
            fires.push(fire);
        }
        fires
    }

    /// From a due fire time `first`: the latest fire time at or before `now`, and
    /// how many there are (counted up to [`MAX_COUNTED`]).
    fn fires_through(
        &self,
        entry: &Entry,
        first: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> (DateTime<Utc>, DateTime<Utc>, u64) {
        let mut latest = first;
        let mut ticks = 1;
        while let Some(t) = self.table.next_fire(entry, latest) {
            if t > now {
                break;
            }
            if ticks >= MAX_COUNTED {
                latest = self
                    .table
                    .prev_fire(entry, now + Duration::nanoseconds(1))
                    .unwrap_or(t);
                break;
            }
            latest = t;
            ticks += 1;
        }
        (first, latest, ticks)
    }

    /// Claims the tick of `entry` scheduled at `scheduled_at` and hands it to the
    /// jobs gate. The one place a tick becomes a job: the `(lane, scheduled_at)`
    /// claim row makes it run once across nodes, clock skew and restarts; `None`
    /// when someone already claimed it.
    async fn claim(
        &self,
        entry: &Entry,
        scheduled_at: DateTime<Utc>,
    ) -> Result<Option<Submitted>, EngineError> {
        if !self.gate.claim(entry.kind, scheduled_at).await? {
            return Ok(None);
        }
        let req = JobRequest {
            kind: entry.kind,
            scope: Scope::All,
            trigger: Trigger::Cron,
        };
        self.gate.submit(req).await.map(Some)
    }

    /// Records what the gate said about a claimed tick; `span` is the first
    /// missed fire time, the one claimed, and how many it stands for.
    fn claimed(
        &mut self,
        i: usize,
        span: (DateTime<Utc>, DateTime<Utc>, u64),
        claimed: Result<Option<Submitted>, EngineError>,
        fresh: Outcome,
        now: DateTime<Utc>,
    ) -> Fire {
        let (first_missed, at, ticks) = span;
        match claimed {
            Ok(Some(s)) => self.submitted(i, at, s, fresh),
            Ok(None) => {
                let clock = &mut self.clocks[i];
                clock.last_tick = clock.last_tick.max(Some(at));
                EntryCounters::add(&clock.counters.absorbed, 1);
                tracing::info!(entry = %clock.entry.name, kind = %clock.entry.kind, scheduled_at = %at,
                    "cron tick already claimed (another node, or before a restart)");
                self.fire(i, at, Outcome::ClaimedElsewhere, None)
            }
            Err(e @ EngineError::ShuttingDown) => self.refused(i, at, e),
            Err(e) => {
                let clock = &mut self.clocks[i];
                clock.retry = Some(Retry {
                    first_missed,
                    latest: at,
                    ticks,
                    at: now + RETRY_AFTER,
                });
                tracing::warn!(entry = %clock.entry.name, scheduled_at = %at, error = %e,
                    retry_in_s = RETRY_AFTER.num_seconds(), "the jobs gate failed; the tick is kept and tried again");
                self.fire(i, at, Outcome::Deferred(e.to_string()), None)
            }
        }
    }

    /// Decides an overdue entry: covered, caught up once, or missed.
    async fn overdue(
        &mut self,
        i: usize,
        first_missed: DateTime<Utc>,
        latest: DateTime<Utc>,
        ticks: u64,
        now: DateTime<Utc>,
    ) -> Fire {
        let clock = &self.clocks[i];
        let entry = clock.entry.clone();
        if clock.last_success.is_some_and(|s| s >= latest) {
            EntryCounters::add(&clock.counters.absorbed, ticks);
            tracing::info!(entry = %entry.name, scheduled_at = %latest, "overdue tick already covered by a later success");
            return self.fire(i, latest, Outcome::Covered, None);
        }
        let window = entry.catch_up_window;
        if window > Duration::zero() && now - first_missed <= window {
            tracing::info!(entry = %entry.name, kind = %entry.kind, first_missed = %first_missed,
                latest = %latest, missed_ticks = ticks, "catching up once for missed ticks");
            let claimed = self.claim(&entry, latest).await;
            return self.claimed(
                i,
                (first_missed, latest, ticks),
                claimed,
                Outcome::CaughtUp,
                now,
            );
        }
        EntryCounters::add(&clock.counters.missed, ticks);
        tracing::warn!(entry = %entry.name, kind = %entry.kind, first_missed = %first_missed,
            latest = %latest, missed_ticks = ticks, window_s = window.num_seconds(),
            "missed ticks are older than the catch-up window; skipped until the next fire time");
        self.fire(i, latest, Outcome::Missed { ticks }, None)
    }

    fn submitted(&mut self, i: usize, at: DateTime<Utc>, s: Submitted, fresh: Outcome) -> Fire {
        let clock = &mut self.clocks[i];
        clock.last_tick = clock.last_tick.max(Some(at));
        let outcome = if s.coalesced {
            Outcome::Absorbed
        } else {
            fresh
        };
        let counter = match outcome {
            Outcome::Absorbed => &clock.counters.absorbed,
            Outcome::CaughtUp => &clock.counters.caught_up,
            _ => &clock.counters.fired,
        };
        EntryCounters::add(counter, 1);
        if outcome == Outcome::Absorbed {
            tracing::info!(entry = %clock.entry.name, kind = %clock.entry.kind, scheduled_at = %at,
                job_id = %s.job_id, queued = s.queued, "cron tick absorbed by an existing job");
        } else {
            tracing::info!(entry = %clock.entry.name, kind = %clock.entry.kind, scheduled_at = %at,
                job_id = %s.job_id, queued = s.queued, outcome = ?outcome, "cron tick fired");
        }
        self.fire(i, at, outcome, Some(s.job_id))
    }

    fn refused(&mut self, i: usize, at: DateTime<Utc>, e: EngineError) -> Fire {
        let clock = &self.clocks[i];
        EntryCounters::add(&clock.counters.missed, 1);
        tracing::warn!(entry = %clock.entry.name, scheduled_at = %at, error = %e, "cron tick refused by the jobs gate");
        self.fire(i, at, Outcome::Refused(e.to_string()), None)
    }

    fn fire(&self, i: usize, at: DateTime<Utc>, outcome: Outcome, job_id: Option<Uuid>) -> Fire {
        let entry = &self.clocks[i].entry;
        Fire {
            entry: entry.name.clone(),
            kind: entry.kind,
            scheduled_at: at,
            outcome,
            job_id,
        }
    }

    /// Fire times in `[from, to]`, counted up to [`MAX_COUNTED`].
    fn count_fires(&self, entry: &Entry, from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
        let mut n = 1;
        let mut t = from;
        while n < MAX_COUNTED {
            match self.table.next_fire(entry, t) {
                Some(next) if next <= to => {
                    n += 1;
                    t = next;
                }
                _ => break,
            }
        }
        n
    }
}

/// What the long-running loop needs.
pub struct LoopDeps {
    pub table: Table,
    pub gate: Arc<dyn TickGate>,
    pub counters: ScheduleCounters,
    pub store: Arc<dyn ScheduleStore>,
    pub clock: SharedClock,
    pub shutdown: CancellationToken,
    /// Beaten on every wake-up (at least every [`MAX_SLEEP`]), so the systemd
    /// watchdog and the self-ping notice a wedged loop. None in unit tests.
    pub beat: Option<crate::ops::liveness::LoopBeat>,
}

/// Runs the cron table until `shutdown` is cancelled: catch-up on start, then one
/// [`Ticker::tick`] per wake-up, recording every success of a scheduled kind.
pub async fn run(deps: LoopDeps) {
    let LoopDeps {
        table,
        gate,
        counters,
        store,
        clock,
        shutdown,
        beat,
    } = deps;
    // Subscribe before catching up so no success in between is lost.
    let mut finished = gate.subscribe();
    let records = match store.load().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read schedule_state; catching up as if nothing ever ran");
            HashMap::new()
        }
    };
    let mut ticker = Ticker::new(table, gate, &counters, clock.now());
    ticker.load(&records);
    let fires = ticker.catch_up(clock.now()).await;
    persist(&*store, &fires).await;
    tracing::info!(next = ?ticker.next_wake(), "cron table running");
    let mut listening = true;
    loop {
        if let Some(beat) = &beat {
            beat.beat();
        }
        let now = clock.now();
        let wait = ticker
            .next_wake()
            .map(|t| (t - now).to_std().unwrap_or_default())
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP);
        let mono = tokio::time::Instant::now();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {
                let after = clock.now();
                notice_clock_jump(after - now, tokio::time::Instant::now() - mono);
                ticker.step(&*store, after).await;
            }
            msg = finished.recv(), if listening => match msg {
                // Only a run of the whole lane makes an entry's data fresh: a
                // recompute of two metrics leaves the others as old as they were
                // (a backfill merged into a run of all metrics still counts).
                Ok(job) if job.state == JobState::Succeeded && job.scope.covers(&Scope::All) => {
                    // The loop's clock, not the job's stamp: in production they agree
                    // to the millisecond, and tests drive one clock.
                    let at = clock.now();
                    let entries = ticker.record_success(job.kind, at);
                    if !entries.is_empty() {
                        if let Err(e) = store.record_success(&entries, job.job_id, at).await {
                            tracing::warn!(error = %e, kind = %job.kind, "cannot record the last success");
                        }
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "missed job-finished events; a catch-up may run once more than needed");
                }
                Err(broadcast::error::RecvError::Closed) => listening = false,
            },
        }
    }
}

async fn persist(store: &dyn ScheduleStore, fires: &[Fire]) {
    for fire in fires {
        if let Outcome::Paused { ticks } = fire.outcome {
            if let Err(e) = store
                .record_paused_tick(&fire.entry, fire.scheduled_at, ticks)
                .await
            {
                tracing::warn!(error = %e, entry = %fire.entry, "cannot count the skipped tick");
            }
        }
        if let Some(job_id) = fire.job_id {
            if let Err(e) = store
                .record_tick(&fire.entry, fire.kind, fire.scheduled_at, job_id)
                .await
            {
                tracing::warn!(error = %e, entry = %fire.entry, "cannot record the tick");
            }
        }
    }
}

/// Logs a wall-clock step or a suspend seen over one sleep; the tick that follows
/// handles what it skipped.
fn notice_clock_jump(wall: Duration, monotonic: std::time::Duration) {
    let drift = wall - Duration::from_std(monotonic).unwrap_or_default();
    if drift > CLOCK_JUMP {
        tracing::warn!(
            drift_s = drift.num_seconds(),
            "wall clock jumped forward or the machine was suspended; overdue entries catch up"
        );
    } else if drift < -CLOCK_JUMP {
        tracing::warn!(
            drift_s = drift.num_seconds(),
            "wall clock jumped back; ticks already run will not run again"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use super::*;
    use crate::clock::{Clock, TokioClock};
    use crate::config::Config;
    use crate::schedule::state::MemoryStore;
    use crate::schedule::ScheduleConfig;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// When a job was asked for (by the clock, if the gate has one), which lane,
    /// who asked.
    type Asked = (Option<DateTime<Utc>>, JobKind, Trigger);

    /// A gate without a database: every job succeeds the moment it is asked for,
    /// unless `busy` names a running job that every request joins. The real engine
    /// is exercised by `tests/api/schedule.rs`.
    struct FakeGate {
        clock: Option<Arc<dyn Clock>>,
        /// Each job asked for.
        submitted: Mutex<Vec<Asked>>,
        busy: Mutex<Option<Uuid>>,
        claims: Mutex<HashSet<(JobKind, DateTime<Utc>)>>,
        /// This many claims fail as if the database were down.
        failing: Mutex<u32>,
        finished: broadcast::Sender<Job>,
    }

    impl FakeGate {
        fn new(clock: Option<Arc<dyn Clock>>) -> Arc<Self> {
            Arc::new(Self {
                clock,
                submitted: Mutex::default(),
                busy: Mutex::default(),
                claims: Mutex::default(),
                failing: Mutex::default(),
                finished: broadcast::channel(64).0,
            })
        }

        fn submitted(&self) -> Vec<Asked> {
            self.submitted.lock().unwrap().clone()
        }
    }

    impl TickGate for FakeGate {
        fn claim(
            &self,
            kind: JobKind,
            scheduled_at: DateTime<Utc>,
        ) -> BoxFuture<'_, Result<bool, EngineError>> {
            let mut failing = self.failing.lock().unwrap();
            if *failing > 0 {
                *failing -= 1;
                return Box::pin(async { Err(EngineError::Unavailable("database down".into())) });
            }
            let fresh = self.claims.lock().unwrap().insert((kind, scheduled_at));
            Box::pin(async move { Ok(fresh) })
        }

        fn submit(&self, req: JobRequest) -> BoxFuture<'_, Result<Submitted, EngineError>> {
            let answer = match *self.busy.lock().unwrap() {
                Some(job_id) => Submitted {
                    job_id,
                    coalesced: true,
                    queued: false,
                },
                None => {
                    let at = self.clock.as_ref().map(|c| c.now());
                    self.submitted
                        .lock()
                        .unwrap()
                        .push((at, req.kind, req.trigger));
                    let mut job = Job::new(req.kind, req.scope, req.trigger, "fake");
                    job.state = JobState::Succeeded;
                    job.finished_at = Some(Utc::now());
                    let _ = self.finished.send(job.clone());
                    Submitted {
                        job_id: job.job_id,
                        coalesced: false,
                        queued: false,
                    }
                }
            };
            Box::pin(async move { Ok(answer) })
        }

        fn subscribe(&self) -> broadcast::Receiver<Job> {
            self.finished.subscribe()
        }
    }

    /// The table with only the recompute entry enabled, at `cron`.
    fn recompute_only(cron: &str) -> Table {
        Config::from_toml(&format!(
            r#"
[schedule.entries.recompute]
cron = "{cron}"
[schedule.entries.benchmarks]
enabled = false
[schedule.entries.segments]
enabled = false
[schedule.entries.audit]
enabled = false
[schedule.entries.maintenance]
enabled = false
"#
        ))
        .unwrap()
        .schedule
        .table()
        .unwrap()
    }

    fn ticker(
        table: Table,
        gate: &Arc<FakeGate>,
        counters: &ScheduleCounters,
        now: &str,
    ) -> Ticker {
        Ticker::new(table, gate.clone(), counters, utc(now))
    }

    /// A store whose `recompute` entry last ticked at 09:17 and succeeded after it.
    fn store_after_the_0917_tick() -> MemoryStore {
        let store = MemoryStore::default();
        store.records.lock().unwrap().insert(
            "recompute".into(),
            EntryRecord {
                last_success_at: Some(utc("2026-11-23T09:17:40Z")),
                last_tick_at: Some(utc("2026-11-23T09:17:00Z")),
                ..Default::default()
            },
        );
        store
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_fire_at_the_exact_second_under_paused_time() {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(utc("2026-11-23T10:00:30Z")));
        let gate = FakeGate::new(Some(clock.clone()));
        // It succeeded after the 09:17 tick, so nothing is caught up on start.
        let store = Arc::new(store_after_the_0917_tick());
        let shutdown = CancellationToken::new();
        let counters = ScheduleCounters::default();
        let task = tokio::spawn(run(LoopDeps {
            table: recompute_only("17 * * * *"),
            gate: gate.clone(),
            counters: counters.clone(),
            store: store.clone(),
            clock: clock.clone(),
            shutdown: shutdown.clone(),
            beat: None,
        }));
        tokio::time::sleep(std::time::Duration::from_secs(3 * 3600)).await;
        shutdown.cancel();
        task.await.unwrap();
        let at = |t| (Some(utc(t)), JobKind::Recompute, Trigger::Cron);
        assert_eq!(
            gate.submitted(),
            [
                at("2026-11-23T10:17:00Z"),
                at("2026-11-23T11:17:00Z"),
                at("2026-11-23T12:17:00Z")
            ]
        );
        assert_eq!(counters.entry("recompute").values().fired, 3);
        let record = store.records.lock().unwrap()["recompute"];
        assert_eq!(record.last_tick_at, Some(utc("2026-11-23T12:17:00Z")));
        assert_eq!(record.last_success_at, Some(utc("2026-11-23T12:17:00Z")));
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_success_of_the_whole_lane_counts_as_the_entrys_last_success() {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(utc("2026-11-23T10:00:00Z")));
        let gate = FakeGate::new(None);
        let store = Arc::new(store_after_the_0917_tick());
        let before = store.records.lock().unwrap()["recompute"];
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(LoopDeps {
            table: recompute_only("17 * * * *"),
            gate: gate.clone(),
            counters: ScheduleCounters::default(),
            store: store.clone(),
            clock: clock.clone(),
            shutdown: shutdown.clone(),
            beat: None,
        }));
        let finished = |scope: Scope| {
            let mut job = Job::new(JobKind::Recompute, scope, Trigger::User, "fake");
            job.state = JobState::Succeeded;
            let _ = gate.finished.send(job);
        };
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        finished(Scope::Metrics(["orders".to_string()].into()));
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        assert_eq!(store.records.lock().unwrap()["recompute"], before);
        finished(Scope::All);
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        assert_eq!(
            store.records.lock().unwrap()["recompute"].last_success_at,
            Some(utc("2026-11-23T10:02:00Z"))
        );
        shutdown.cancel();
        task.await.unwrap();
    }

    /// Tokio's clock plus a jump the test can add: a suspend moves wall time while
    /// the monotonic clock (what sleeps measure) stands still.
    struct JumpyClock {
        base: TokioClock,
        jump_s: std::sync::atomic::AtomicI64,
    }

    impl Clock for JumpyClock {
        fn now(&self) -> DateTime<Utc> {
            self.base.now()
                + Duration::seconds(self.jump_s.load(std::sync::atomic::Ordering::Relaxed))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_notices_a_suspend_within_30_seconds_and_catches_up_once() {
        let clock = Arc::new(JumpyClock {
            base: TokioClock::starting_at(utc("2026-11-23T10:00:00Z")),
            jump_s: 0.into(),
        });
        let gate = FakeGate::new(Some(clock.clone()));
        let store = Arc::new(store_after_the_0917_tick());
        let shutdown = CancellationToken::new();
        let counters = ScheduleCounters::default();
        let task = tokio::spawn(run(LoopDeps {
            table: recompute_only("17 * * * *"),
            gate: gate.clone(),
            counters: counters.clone(),
            store,
            clock: clock.clone(),
            shutdown: shutdown.clone(),
            beat: None,
        }));
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        // The lid closes at 10:01 and opens at 14:41: 10:17 ... 14:17 passed.
        clock
            .jump_s
            .store(4 * 3600 + 40 * 60, std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        let asked = gate.submitted();
        assert_eq!(
            asked.len(),
            1,
            "one catch-up for five missed ticks: {asked:?}"
        );
        let noticed_at = asked[0].0.unwrap();
        assert!(
            noticed_at <= utc("2026-11-23T14:41:30Z"),
            "noticed within 30 s: {noticed_at}"
        );
        let c = counters.entry("recompute").values();
        assert_eq!((c.caught_up, c.fired, c.missed), (1, 0, 0));
        // Then the regular cadence resumes at 15:17.
        tokio::time::sleep(std::time::Duration::from_secs(40 * 60)).await;
        let asked = gate.submitted();
        assert_eq!(asked.len(), 2);
        assert_eq!(asked[1].0, Some(utc("2026-11-23T15:17:00Z")));
        shutdown.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_stops_when_its_token_is_cancelled() {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(LoopDeps {
            table: recompute_only("17 * * * *"),
            gate: FakeGate::new(None),
            counters: ScheduleCounters::default(),
            store: Arc::new(MemoryStore::default()),
            clock: Arc::new(TokioClock::starting_at(utc("2026-11-23T10:00:00Z"))),
            shutdown: shutdown.clone(),
            beat: None,
        }));
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(1), task)
            .await
            .expect("the loop stops at once")
            .unwrap();
    }

    /// Ticker A fires the 05:17 tick, which succeeds at 05:18; the daemon dies at
    /// 05:30 and ticker B starts at `restart`, reading the same store.
    async fn outage(restart: &str) -> (Vec<Fire>, ScheduleCounters, Arc<FakeGate>) {
        let gate = FakeGate::new(None);
        let store = MemoryStore::default();
        let table = recompute_only("17 * * * *");
        let counters = ScheduleCounters::default();
        let mut a = ticker(table.clone(), &gate, &counters, "2026-11-23T05:00:00Z");
        let fires = a.tick(utc("2026-11-23T05:17:00Z")).await;
        assert_eq!(fires[0].outcome, Outcome::Fired);
        persist(&store, &fires).await;
        let done = a.record_success(JobKind::Recompute, utc("2026-11-23T05:18:00Z"));
        store
            .record_success(&done, Uuid::nil(), utc("2026-11-23T05:18:00Z"))
            .await
            .unwrap();
        let counters = ScheduleCounters::default();
        let mut b = ticker(table, &gate, &counters, restart);
        b.load(&store.load().await.unwrap());
        let fires = b.catch_up(utc(restart)).await;
        (fires, counters, gate)
    }

    #[tokio::test]
    async fn catch_up_runs_once_after_a_five_hour_outage() {
        let (fires, counters, gate) = outage("2026-11-23T10:30:00Z").await;
        assert_eq!(fires.len(), 1, "{fires:?}");
        assert_eq!(fires[0].outcome, Outcome::CaughtUp);
        assert_eq!(fires[0].scheduled_at, utc("2026-11-23T10:17:00Z"));
        let c = counters.entry("recompute").values();
        assert_eq!((c.caught_up, c.missed, c.fired), (1, 0, 0));
        // Two jobs in all, both cron: the 05:17 tick and the one catch-up.
        assert_eq!(
            gate.submitted(),
            [(None, JobKind::Recompute, Trigger::Cron); 2]
        );
    }

    #[tokio::test]
    async fn no_catch_up_runs_after_an_outage_longer_than_the_window() {
        // First missed tick 06:17, back at 12:30: 6h13m overdue, window 6h.
        let (fires, counters, gate) = outage("2026-11-23T12:30:00Z").await;
        assert_eq!(fires.len(), 1);
        assert_eq!(fires[0].outcome, Outcome::Missed { ticks: 7 });
        assert_eq!(fires[0].job_id, None);
        assert_eq!(counters.entry("recompute").values().missed, 7);
        assert_eq!(gate.submitted().len(), 1);
    }

    #[tokio::test]
    async fn nothing_is_caught_up_when_the_last_success_is_after_the_previous_fire_time() {
        let (fires, _, gate) = outage("2026-11-23T06:00:00Z").await;
        assert!(fires.is_empty(), "{fires:?}");
        assert_eq!(gate.submitted().len(), 1);
    }

    #[tokio::test]
    async fn a_daemon_that_never_ran_catches_up_each_entry_once_on_start() {
        let gate = FakeGate::new(None);
        let table = ScheduleConfig::default().table().unwrap();
        let mut t = ticker(
            table,
            &gate,
            &ScheduleCounters::default(),
            "2026-11-23T10:30:00Z",
        );
        let fires = t.catch_up(utc("2026-11-23T10:30:00Z")).await;
        let got: Vec<_> = fires
            .iter()
            .map(|f| (f.entry.as_str(), f.scheduled_at, f.outcome.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("recompute", utc("2026-11-23T10:17:00Z"), Outcome::CaughtUp),
                ("benchmarks", utc("2026-11-23T04:23:00Z"), Outcome::CaughtUp),
                ("segments", utc("2026-11-23T04:30:00Z"), Outcome::CaughtUp),
                ("audit", utc("2026-11-23T04:45:00Z"), Outcome::CaughtUp),
                (
                    "maintenance",
                    utc("2026-11-23T03:10:00Z"),
                    Outcome::CaughtUp
                ),
            ]
        );
    }

    #[tokio::test]
    async fn a_stalled_loop_catches_up_once_not_once_per_missed_tick() {
        let gate = FakeGate::new(None);
        let counters = ScheduleCounters::default();
        let mut t = ticker(
            recompute_only("17 * * * *"),
            &gate,
            &counters,
            "2026-11-23T05:00:00Z",
        );
        t.tick(utc("2026-11-23T05:17:00Z")).await;
        // The machine sleeps from 05:20 to 09:40: four ticks pass unseen.
        let fires = t.tick(utc("2026-11-23T09:40:00Z")).await;
        assert_eq!(fires.len(), 1);
        assert_eq!(fires[0].outcome, Outcome::CaughtUp);
        assert_eq!(fires[0].scheduled_at, utc("2026-11-23T09:17:00Z"));
        assert_eq!(t.next_wake(), Some(utc("2026-11-23T10:17:00Z")));
        let c = counters.entry("recompute").values();
        assert_eq!((c.fired, c.caught_up, c.missed), (1, 1, 0));
        assert_eq!(gate.submitted().len(), 2);
    }

    #[tokio::test]
    async fn a_wall_clock_stepped_back_does_not_run_a_tick_twice() {
        let gate = FakeGate::new(None);
        let counters = ScheduleCounters::default();
        let mut t = ticker(
            recompute_only("17 * * * *"),
            &gate,
            &counters,
            "2026-11-23T05:00:00Z",
        );
        t.tick(utc("2026-11-23T05:17:00Z")).await;
        assert!(t.tick(utc("2026-11-23T05:10:00Z")).await.is_empty());
        assert!(t.tick(utc("2026-11-23T05:17:00Z")).await.is_empty());
        assert_eq!(t.tick(utc("2026-11-23T06:17:00Z")).await.len(), 1);
        assert_eq!(counters.entry("recompute").values().fired, 2);
    }

    #[tokio::test]
    async fn a_tick_on_a_running_job_is_absorbed_and_counted() {
        let gate = FakeGate::new(None);
        let running = Uuid::now_v7();
        *gate.busy.lock().unwrap() = Some(running);
        let counters = ScheduleCounters::default();
        let mut t = ticker(
            recompute_only("17 * * * *"),
            &gate,
            &counters,
            "2026-11-23T05:00:00Z",
        );
        let fires = t.tick(utc("2026-11-23T05:17:00Z")).await;
        assert_eq!(fires[0].outcome, Outcome::Absorbed);
        assert_eq!(fires[0].job_id, Some(running));
        assert_eq!(counters.entry("recompute").values().absorbed, 1);
    }

    #[tokio::test]
    async fn a_tick_another_node_claimed_is_not_run_here() {
        let gate = FakeGate::new(None);
        gate.claims
            .lock()
            .unwrap()
            .insert((JobKind::Recompute, utc("2026-11-23T05:17:00Z")));
        let counters = ScheduleCounters::default();
        let mut t = ticker(
            recompute_only("17 * * * *"),
            &gate,
            &counters,
            "2026-11-23T05:00:00Z",
        );
        let fires = t.tick(utc("2026-11-23T05:17:00Z")).await;
        assert_eq!(fires[0].outcome, Outcome::ClaimedElsewhere);
        assert!(gate.submitted().is_empty());
        assert_eq!(counters.entry("recompute").values().absorbed, 1);
        // The next tick is this node's to run.
        let fires = t.tick(utc("2026-11-23T06:17:00Z")).await;
        assert_eq!(fires[0].outcome, Outcome::Fired);
    }

    #[tokio::test]
    async fn a_tick_the_gate_fails_to_take_is_kept_and_tried_again() {
        let gate = FakeGate::new(None);
        *gate.failing.lock().unwrap() = 2;
        let counters = ScheduleCounters::default();
        let mut t = ticker(
            recompute_only("17 * * * *"),
            &gate,
            &counters,
            "2026-11-23T05:00:00Z",
        );
        let fires = t.tick(utc("2026-11-23T05:17:00Z")).await;
        assert!(
            matches!(fires[0].outcome, Outcome::Deferred(_)),
            "{fires:?}"
        );
        assert_eq!(t.next_wake(), Some(utc("2026-11-23T05:17:30Z")));
        assert!(matches!(
            t.tick(utc("2026-11-23T05:17:30Z")).await[0].outcome,
            Outcome::Deferred(_)
        ));
        let fires = t.tick(utc("2026-11-23T05:18:00Z")).await;
        assert_eq!(fires[0].outcome, Outcome::CaughtUp);
        assert_eq!(fires[0].scheduled_at, utc("2026-11-23T05:17:00Z"));
        assert_eq!(t.next_wake(), Some(utc("2026-11-23T06:17:00Z")));
        let c = counters.entry("recompute").values();
        assert_eq!((c.fired, c.caught_up, c.missed), (0, 1, 0));
        assert_eq!(gate.submitted().len(), 1);
    }

    #[tokio::test]
    async fn disabled_entries_never_fire() {
        let gate = FakeGate::new(None);
        let mut table = recompute_only("* * * * *");
        table.entries[0].enabled = false;
        let mut t = ticker(
            table,
            &gate,
            &ScheduleCounters::default(),
            "2026-11-23T05:00:00Z",
        );
        assert_eq!(t.next_wake(), None);
        assert!(t.catch_up(utc("2026-11-23T05:00:00Z")).await.is_empty());
        assert!(t.tick(utc("2026-11-23T06:00:00Z")).await.is_empty());
        assert!(gate.submitted().is_empty());
    }

    fn pause(store: &MemoryStore, until: Option<&str>) {
        let mut records = store.records.lock().unwrap();
        let r = records.entry("recompute".into()).or_default();
        r.paused_at = Some(utc("2026-11-23T09:30:00Z"));
        r.paused_until = until.map(utc);
    }

    #[tokio::test]
    async fn a_paused_entry_skips_its_fire_times_and_catches_up_once_on_resume() {
        let gate = FakeGate::new(None);
        let store = store_after_the_0917_tick();
        let counters = ScheduleCounters::default();
        let mut t = ticker(
            recompute_only("17 * * * *"),
            &gate,
            &counters,
            "2026-11-23T09:30:00Z",
        );
        pause(&store, None);
        for at in ["2026-11-23T10:17:00Z", "2026-11-23T11:17:00Z"] {
            let fires = t.step(&store, utc(at)).await;
            assert_eq!(fires[0].outcome, Outcome::Paused { ticks: 1 });
        }
        assert!(gate.submitted().is_empty());
        assert_eq!(store.records.lock().unwrap()["recompute"].paused_missed, 2);
        // Resumed at 11:40: one run for both, as after a stall.
        store
            .records
            .lock()
            .unwrap()
            .get_mut("recompute")
            .unwrap()
            .paused_at = None;
        let fires = t.step(&store, utc("2026-11-23T11:40:00Z")).await;
        assert_eq!(fires.len(), 1, "{fires:?}");
        assert_eq!(fires[0].outcome, Outcome::CaughtUp);
        assert_eq!(fires[0].scheduled_at, utc("2026-11-23T11:17:00Z"));
        assert!(t.step(&store, utc("2026-11-23T11:50:00Z")).await.is_empty());
        let fires = t.step(&store, utc("2026-11-23T12:17:00Z")).await;
        assert_eq!(fires[0].outcome, Outcome::Fired);
        let c = counters.entry("recompute").values();
        assert_eq!((c.caught_up, c.fired, c.missed), (1, 1, 0));
        assert_eq!(gate.submitted().len(), 2);
    }

    #[tokio::test]
    async fn a_pause_with_until_ends_by_itself_and_catches_up_once() {
        let gate = FakeGate::new(None);
        let store = store_after_the_0917_tick();
        let mut t = ticker(
            recompute_only("17 * * * *"),
            &gate,
            &ScheduleCounters::default(),
            "2026-11-23T09:30:00Z",
        );
        pause(&store, Some("2026-11-23T10:30:00Z"));
        let fires = t.step(&store, utc("2026-11-23T10:17:00Z")).await;
        assert_eq!(fires[0].outcome, Outcome::Paused { ticks: 1 });
        let fires = t.step(&store, utc("2026-11-23T10:30:00Z")).await;
        assert_eq!(fires.len(), 1, "{fires:?}");
        assert_eq!(fires[0].outcome, Outcome::CaughtUp);
        assert_eq!(store.records.lock().unwrap()["recompute"].paused_at, None);
    }

    #[tokio::test]
    async fn a_restart_keeps_the_pause_and_what_it_held() {
        let gate = FakeGate::new(None);
        let store = store_after_the_0917_tick();
        pause(&store, None);
        // A daemon that starts at 12:30 while the entry is paused catches up nothing.
        let mut t = ticker(
            recompute_only("17 * * * *"),
            &gate,
            &ScheduleCounters::default(),
            "2026-11-23T12:30:00Z",
        );
        t.load(&store.load().await.unwrap());
        assert!(t.catch_up(utc("2026-11-23T12:30:00Z")).await.is_empty());
        let fires = t.step(&store, utc("2026-11-23T13:17:00Z")).await;
        assert_eq!(fires[0].outcome, Outcome::Paused { ticks: 1 });
        assert!(gate.submitted().is_empty());
        store
            .records
            .lock()
            .unwrap()
            .get_mut("recompute")
            .unwrap()
            .paused_at = None;
        let fires = t.step(&store, utc("2026-11-23T13:20:00Z")).await;
        assert_eq!(fires.len(), 1);
        assert_eq!(fires[0].outcome, Outcome::CaughtUp);
        assert_eq!(fires[0].scheduled_at, utc("2026-11-23T13:17:00Z"));
    }
}
