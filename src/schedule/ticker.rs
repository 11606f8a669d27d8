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
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::counters::{EntryCounters, ScheduleCounters};
use super::state::{EntryRecord, ScheduleStore};
use super::table::{Entry, Table};
use crate::error::ApiError;
use crate::jobs::{Engine, JobKind, JobState, Scope, Trigger};
use crate::jobs::{JobRequest, Submitted};

/// Longest single sleep: bounds how late a suspend or a wall-clock step is noticed.
pub const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(30);
/// A tick handled later than this after its fire time counts as overdue (an outage
/// or a stall), and goes through the catch-up rules instead of firing plainly.
pub const LATE_AFTER: Duration = Duration::seconds(60);
/// Wall time and monotonic time disagreeing by more than this over one sleep means
/// the wall clock was stepped or the machine was suspended.
const CLOCK_JUMP: Duration = Duration::seconds(5);
/// Missed fire times are counted one by one up to this many per outage.
const MAX_COUNTED: u64 = 1000;

/// Where the loop reads the wall clock.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// Wall time that advances with tokio's clock from a fixed start, so under
/// `tokio::time::pause` the loop sees exactly the time the test advanced.
pub struct TokioClock {
    start_wall: DateTime<Utc>,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn starting_at(start_wall: DateTime<Utc>) -> Self {
        Self {
            start_wall,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now() - self.start;
        self.start_wall + Duration::from_std(elapsed).expect("elapsed time fits")
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
    /// One run for every fire time an outage missed.
    CaughtUp,
    /// Overdue past the entry's catch-up window: skipped.
    Missed { ticks: u64 },
    /// The gate refused it (the daemon is shutting down).
    Refused(String),
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
}

/// The cron table's decisions, stepped by the caller.
pub struct Ticker {
    table: Table,
    engine: Engine,
    /// Enabled entries only.
    clocks: Vec<EntryClock>,
}

impl Ticker {
    /// A ticker whose first tick is each entry's first fire time at or after `now`.
    pub fn new(
        table: Table,
        engine: Engine,
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
            })
            .collect();
        Self {
            table,
            engine,
            clocks,
        }
    }

    /// Takes what the store remembers of each entry.
    pub fn load(&mut self, records: &HashMap<String, EntryRecord>) {
        for clock in &mut self.clocks {
            if let Some(r) = records.get(&clock.entry.name) {
                clock.last_success = clock.last_success.max(r.last_success_at);
                clock.last_tick = clock.last_tick.max(r.last_tick_at);
            }
        }
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
        self.clocks.iter().filter_map(|c| c.next_fire).min()
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
            // The outage began after the last thing this entry did; a tick that
            // fired but did not succeed is itself due again.
            let first_missed = clock
                .last_success
                .max(clock.last_tick)
                .and_then(|t| self.table.next_fire(&clock.entry, t))
                .map_or(latest, |t| t.min(latest));
            let ticks = self.count_fires(&clock.entry, first_missed, latest);
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
            let Some(first) = clock.next_fire.filter(|t| *t <= now) else {
                continue;
            };
            let mut latest = first;
            let mut ticks = 1;
            while let Some(t) = self.table.next_fire(&clock.entry, latest) {
                if t > now {
                    break;
                }
                if ticks >= MAX_COUNTED {
                    latest = self
                        .table
                        .prev_fire(&clock.entry, now + Duration::nanoseconds(1))
                        .unwrap_or(t);
                    break;
                }
                latest = t;
                ticks += 1;
            }
            let entry = clock.entry.clone();
            self.clocks[i].next_fire = self.table.next_fire(&entry, latest);
            let fire = if ticks == 1 && now - latest <= LATE_AFTER {
                match self.claim(&entry, latest).await {
                    Ok(s) => self.submitted(i, latest, s, Outcome::Fired),
                    Err(e) => self.refused(i, latest, e),
                }
            } else {
                self.overdue(i, first, latest, ticks, now).await
            };
            fires.push(fire);
        }
        fires
    }

    /// Claims the tick of `entry` scheduled at `scheduled_at` and hands it to the
    /// jobs gate. The one place a tick becomes a job: cluster mode adds its
    /// `(lane, scheduled_at)` idempotency row here, so a tick runs once per cluster.
    async fn claim(
        &self,
        entry: &Entry,
        scheduled_at: DateTime<Utc>,
    ) -> Result<Submitted, ApiError> {
        let _ = scheduled_at;
        self.engine.submit(JobRequest {
            kind: entry.kind,
            scope: Scope::All,
            trigger: Trigger::Cron,
        })
        .await
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
            return match self.claim(&entry, latest).await {
                Ok(s) => self.submitted(i, latest, s, Outcome::CaughtUp),
                Err(e) => self.refused(i, latest, e),
            };
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

    fn refused(&mut self, i: usize, at: DateTime<Utc>, e: ApiError) -> Fire {
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
    pub engine: Engine,
    pub counters: ScheduleCounters,
    pub store: Arc<dyn ScheduleStore>,
    pub clock: Arc<dyn Clock>,
    pub shutdown: CancellationToken,
}

/// Runs the cron table until `shutdown` is cancelled: catch-up on start, then one
/// [`Ticker::tick`] per wake-up, recording every success of a scheduled kind.
pub async fn run(deps: LoopDeps) {
    let LoopDeps {
        table,
        engine,
        counters,
        store,
        clock,
        shutdown,
    } = deps;
    // Subscribe before catching up so no success in between is lost.
    let mut finished = engine.subscribe();
    let records = match store.load().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read schedule_state; catching up as if nothing ever ran");
            HashMap::new()
        }
    };
    let mut ticker = Ticker::new(table, engine, &counters, clock.now());
    ticker.load(&records);
    let fires = ticker.catch_up(clock.now()).await;
    persist(&*store, &fires).await;
    tracing::info!(next = ?ticker.next_wake(), "cron table running");
    let mut listening = true;
    loop {
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
                let fires = ticker.tick(after).await;
                persist(&*store, &fires).await;
            }
            msg = finished.recv(), if listening => match msg {
                Ok(job) if job.state == JobState::Succeeded => {
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
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "missed job-finished events; a catch-up may run once more than needed");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => listening = false,
            },
        }
    }
}

async fn persist(store: &dyn ScheduleStore, fires: &[Fire]) {
    for fire in fires {
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

    use futures::future::BoxFuture;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::config::Config;
    use crate::jobs::config::JobsConfig;
    use crate::jobs::{JobBody, JobContext, JobError};
    use crate::schedule::state::MemoryStore;
    use crate::schedule::ScheduleConfig;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    /// An engine whose pool never connects (the test bodies need no database).
    fn engine() -> Engine {
        let pool = crate::db::build_pool("host=/nonexistent dbname=none", 1).unwrap();
        let config = JobsConfig {
            retain_count: 100_000,
            ..JobsConfig::default()
        };
        Engine::new(pool, config, "test".into())
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
"#
        ))
        .unwrap()
        .schedule
        .table()
        .unwrap()
    }

    async fn finish(engine: &Engine, fires: &[Fire]) {
        for id in fires.iter().filter_map(|f| f.job_id) {
            let job = engine.wait_finished(id).await.unwrap();
            assert_eq!(job.state, JobState::Succeeded);
        }
    }

    /// When (by the loop's clock) each run started, and who asked.
    type Starts = Arc<Mutex<Vec<(DateTime<Utc>, Trigger)>>>;

    struct Recording {
        clock: Arc<dyn Clock>,
        starts: Starts,
    }

    impl JobBody for Recording {
        fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<serde_json::Value, JobError>> {
            self.starts
                .lock()
                .unwrap()
                .push((self.clock.now(), ctx.trigger()));
            Box::pin(async { Ok(serde_json::Value::Null) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_fire_at_the_exact_second_under_paused_time() {
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::starting_at(utc("2026-11-23T10:00:30Z")));
        let engine = engine();
        let starts = Arc::new(Mutex::new(Vec::new()));
        engine.set_body(
            JobKind::Recompute,
            Arc::new(Recording {
                clock: clock.clone(),
                starts: starts.clone(),
            }),
        );
        // It succeeded after the 09:17 tick, so nothing is caught up on start.
        let store = Arc::new(MemoryStore::default());
        store.records.lock().unwrap().insert(
            "recompute".into(),
            EntryRecord {
                last_success_at: Some(utc("2026-11-23T09:17:40Z")),
                last_tick_at: Some(utc("2026-11-23T09:17:00Z")),
            },
        );
        let shutdown = CancellationToken::new();
        let counters = ScheduleCounters::default();
        let task = tokio::spawn(run(LoopDeps {
            table: recompute_only("17 * * * *"),
            engine: engine.clone(),
            counters: counters.clone(),
            store: store.clone(),
            clock: clock.clone(),
            shutdown: shutdown.clone(),
        }));
        tokio::time::sleep(std::time::Duration::from_secs(3 * 3600)).await;
        shutdown.cancel();
        task.await.unwrap();
        let starts = starts.lock().unwrap().clone();
        assert_eq!(
            starts,
            [
                (utc("2026-11-23T10:17:00Z"), Trigger::Cron),
                (utc("2026-11-23T11:17:00Z"), Trigger::Cron),
                (utc("2026-11-23T12:17:00Z"), Trigger::Cron),
            ]
        );
        assert_eq!(counters.entry("recompute").values().fired, 3);
        let record = store.records.lock().unwrap()["recompute"];
        assert_eq!(record.last_tick_at, Some(utc("2026-11-23T12:17:00Z")));
        assert_eq!(record.last_success_at, Some(utc("2026-11-23T12:17:00Z")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_stops_when_its_token_is_cancelled() {
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(LoopDeps {
            table: recompute_only("17 * * * *"),
            engine: engine(),
            counters: ScheduleCounters::default(),
            store: Arc::new(MemoryStore::default()),
            clock: Arc::new(TokioClock::starting_at(utc("2026-11-23T10:00:00Z"))),
            shutdown: shutdown.clone(),
        }));
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(1), task)
            .await
            .expect("the loop stops at once")
            .unwrap();
    }

    /// Runs ticker A from `start` through `last_tick` (success recorded), then
    /// "restarts" at `restart` with ticker B reading the same store.
    async fn outage(restart: &str) -> (Vec<Fire>, ScheduleCounters, Engine) {
        let engine = engine();
        let store = MemoryStore::default();
        let table = recompute_only("17 * * * *");
        let counters = ScheduleCounters::default();
        let mut a = Ticker::new(
            table.clone(),
            engine.clone(),
            &counters,
            utc("2026-11-23T05:00:00Z"),
        );
        let fires = a.tick(utc("2026-11-23T05:17:00Z")).await;
        assert_eq!(fires[0].outcome, Outcome::Fired);
        finish(&engine, &fires).await;
        persist(&store, &fires).await;
        let done = a.record_success(JobKind::Recompute, utc("2026-11-23T05:18:00Z"));
        store
            .record_success(&done, Uuid::nil(), utc("2026-11-23T05:18:00Z"))
            .await
            .unwrap();
        // The daemon dies here and comes back at `restart`.
        let counters = ScheduleCounters::default();
        let mut b = Ticker::new(table, engine.clone(), &counters, utc(restart));
        b.load(&store.load().await.unwrap());
        let fires = b.catch_up(utc(restart)).await;
        finish(&engine, &fires).await;
        (fires, counters, engine)
    }

    #[tokio::test]
    async fn catch_up_runs_once_after_a_five_hour_outage() {
        let (fires, counters, engine) = outage("2026-11-23T10:30:00Z").await;
        assert_eq!(fires.len(), 1, "{fires:?}");
        assert_eq!(fires[0].outcome, Outcome::CaughtUp);
        assert_eq!(fires[0].scheduled_at, utc("2026-11-23T10:17:00Z"));
        let job = engine.get(fires[0].job_id.unwrap()).unwrap();
        assert_eq!(job.trigger, Trigger::Cron);
        let c = counters.entry("recompute").values();
        assert_eq!((c.caught_up, c.missed, c.fired), (1, 0, 0));
        // Two jobs in all: the 05:17 tick and the one catch-up.
        assert_eq!(engine.recent().len(), 2);
    }

    #[tokio::test]
    async fn no_catch_up_runs_after_an_outage_longer_than_the_window() {
        // First missed tick 06:17, back at 12:30: 6h13m overdue, window 6h.
        let (fires, counters, engine) = outage("2026-11-23T12:30:00Z").await;
        assert_eq!(fires.len(), 1);
        assert_eq!(fires[0].outcome, Outcome::Missed { ticks: 7 });
        assert_eq!(fires[0].job_id, None);
        assert_eq!(counters.entry("recompute").values().missed, 7);
        assert_eq!(engine.recent().len(), 1);
    }

    #[tokio::test]
    async fn nothing_is_caught_up_when_the_last_success_is_after_the_previous_fire_time() {
        let (fires, _, engine) = outage("2026-11-23T06:00:00Z").await;
        assert!(fires.is_empty(), "{fires:?}");
        assert_eq!(engine.recent().len(), 1);
    }

    #[tokio::test]
    async fn a_daemon_that_never_ran_catches_up_each_entry_once_on_start() {
        let engine = engine();
        let table = ScheduleConfig::default().table().unwrap();
        let counters = ScheduleCounters::default();
        let now = utc("2026-11-23T10:30:00Z");
        let mut ticker = Ticker::new(table, engine.clone(), &counters, now);
        let fires = ticker.catch_up(now).await;
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
            ]
        );
        finish(&engine, &fires).await;
    }

    #[tokio::test]
    async fn a_stalled_loop_catches_up_once_not_once_per_missed_tick() {
        let engine = engine();
        let counters = ScheduleCounters::default();
        let mut t = Ticker::new(
            recompute_only("17 * * * *"),
            engine.clone(),
            &counters,
            utc("2026-11-23T05:00:00Z"),
        );
        finish(&engine, &t.tick(utc("2026-11-23T05:17:00Z")).await).await;
        // The machine sleeps from 05:20 to 09:40: four ticks pass unseen.
        let fires = t.tick(utc("2026-11-23T09:40:00Z")).await;
        assert_eq!(fires.len(), 1);
        assert_eq!(fires[0].outcome, Outcome::CaughtUp);
        assert_eq!(fires[0].scheduled_at, utc("2026-11-23T09:17:00Z"));
        finish(&engine, &fires).await;
        assert_eq!(t.next_wake(), Some(utc("2026-11-23T10:17:00Z")));
        let c = counters.entry("recompute").values();
        assert_eq!((c.fired, c.caught_up, c.missed), (1, 1, 0));
    }

    #[tokio::test]
    async fn a_wall_clock_stepped_back_does_not_run_a_tick_twice() {
        let engine = engine();
        let counters = ScheduleCounters::default();
        let mut t = Ticker::new(
            recompute_only("17 * * * *"),
            engine.clone(),
            &counters,
            utc("2026-11-23T05:00:00Z"),
        );
        finish(&engine, &t.tick(utc("2026-11-23T05:17:00Z")).await).await;
        assert!(t.tick(utc("2026-11-23T05:10:00Z")).await.is_empty());
        assert!(t.tick(utc("2026-11-23T05:17:00Z")).await.is_empty());
        assert_eq!(t.tick(utc("2026-11-23T06:17:00Z")).await.len(), 1);
        assert_eq!(counters.entry("recompute").values().fired, 2);
    }

    #[tokio::test]
    async fn a_tick_on_a_running_job_is_absorbed_and_counted() {
        let engine = engine();
        engine.set_body(
            JobKind::Recompute,
            Arc::new(Sleeps(std::time::Duration::from_secs(3600))),
        );
        let user = engine
            .submit(JobRequest {
                kind: JobKind::Recompute,
                scope: Scope::All,
                trigger: Trigger::User,
            })
            .unwrap();
        let counters = ScheduleCounters::default();
        let mut t = Ticker::new(
            recompute_only("17 * * * *"),
            engine.clone(),
            &counters,
            utc("2026-11-23T05:00:00Z"),
        );
        let fires = t.tick(utc("2026-11-23T05:17:00Z")).await;
        assert_eq!(fires[0].outcome, Outcome::Absorbed);
        assert_eq!(fires[0].job_id, Some(user.job_id));
        assert_eq!(counters.entry("recompute").values().absorbed, 1);
        engine.shutdown().await;
    }

    #[tokio::test]
    async fn disabled_entries_never_fire() {
        let engine = engine();
        let mut table = recompute_only("* * * * *");
        table.entries[0].enabled = false;
        let mut t = Ticker::new(
            table,
            engine.clone(),
            &ScheduleCounters::default(),
            utc("2026-11-23T05:00:00Z"),
        );
        assert_eq!(t.next_wake(), None);
        assert!(t.catch_up(utc("2026-11-23T05:00:00Z")).await.is_empty());
        assert!(t.tick(utc("2026-11-23T06:00:00Z")).await.is_empty());
    }

    struct Sleeps(std::time::Duration);
    impl JobBody for Sleeps {
        fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<serde_json::Value, JobError>> {
            let d = self.0;
            Box::pin(async move {
                tokio::select! {
                    _ = tokio::time::sleep(d) => Ok(serde_json::Value::Null),
                    _ = ctx.cancel_token().cancelled() => Err(JobError::Cancelled),
                }
            })
        }
    }

    /// Sleeps a seeded random time, and records each run's job id and trigger.
    struct RandomWork {
        rng: Arc<Mutex<rand::rngs::StdRng>>,
        ran: Arc<Mutex<Vec<(Uuid, Trigger)>>>,
    }
    impl JobBody for RandomWork {
        fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<serde_json::Value, JobError>> {
            self.ran.lock().unwrap().push((ctx.job_id(), ctx.trigger()));
            let secs = self.rng.lock().unwrap().gen_range(0..150);
            Box::pin(async move {
                tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
                Ok(serde_json::Value::Null)
            })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn under_a_seeded_stream_of_ticks_and_user_requests_every_tick_runs_once_or_is_absorbed()
    {
        const TICKS: usize = 1000;
        let rng = Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(0x6862)));
        let ran = Arc::new(Mutex::new(Vec::new()));
        let engine = engine();
        engine.set_body(
            JobKind::Recompute,
            Arc::new(RandomWork {
                rng: rng.clone(),
                ran: ran.clone(),
            }),
        );
        let start = utc("2026-11-23T00:00:30Z");
        let clock = TokioClock::starting_at(start);
        let counters = ScheduleCounters::default();
        let mut ticker = Ticker::new(
            recompute_only("* * * * *"),
            engine.clone(),
            &counters,
            start,
        );

        // Users ask for everything or for a few metrics at seeded random moments.
        let users = {
            let engine = engine.clone();
            let rng = rng.clone();
            tokio::spawn(async move {
                let mut asked = 0;
                for _ in 0..TICKS {
                    let (wait, scope) = {
                        let mut rng = rng.lock().unwrap();
                        let wait = rng.gen_range(0..90);
                        let scope = if rng.gen_bool(0.5) {
                            Scope::All
                        } else {
                            Scope::Metrics([format!("m{}", rng.gen_range(0..3))].into())
                        };
                        (wait, scope)
                    };
                    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
                    engine
                        .submit(JobRequest {
                            kind: JobKind::Recompute,
                            scope,
                            trigger: Trigger::User,
                        })
                        .unwrap();
                    asked += 1;
                }
                asked
            })
        };

        let mut fires = Vec::new();
        while fires.len() < TICKS {
            let wake = ticker.next_wake().unwrap();
            let wait = (wake - clock.now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            fires.extend(ticker.tick(clock.now()).await);
        }
        users.abort();
        // Let every job (and any follow-up) finish.
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;

        // Every minute's tick is there once, in order, none missed.
        let expected: Vec<_> = (1..=TICKS as i64)
            .map(|m| start - Duration::seconds(30) + Duration::minutes(m))
            .collect();
        let scheduled: Vec<_> = fires.iter().map(|f| f.scheduled_at).collect();
        assert_eq!(scheduled, expected);
        let fired: Vec<_> = fires
            .iter()
            .filter(|f| f.outcome == Outcome::Fired)
            .collect();
        let absorbed = fires
            .iter()
            .filter(|f| f.outcome == Outcome::Absorbed)
            .count();
        assert_eq!(
            fired.len() + absorbed,
            TICKS,
            "each tick is run or absorbed"
        );
        assert!(
            fired.len() > 50 && absorbed > 50,
            "the stream exercises both: {} fired, {absorbed} absorbed",
            fired.len()
        );

        // A fired tick made exactly one job, which ran exactly once; an absorbed
        // tick's job ran too.
        let ran = ran.lock().unwrap().clone();
        let ran_ids: HashSet<Uuid> = ran.iter().map(|(id, _)| *id).collect();
        assert_eq!(ran_ids.len(), ran.len(), "no job ran twice");
        let fired_ids: HashSet<Uuid> = fired.iter().map(|f| f.job_id.unwrap()).collect();
        assert_eq!(
            fired_ids.len(),
            fired.len(),
            "no two ticks made the same job"
        );
        let cron_runs = ran.iter().filter(|(_, t)| *t == Trigger::Cron).count();
        assert_eq!(cron_runs, fired.len(), "every fired tick ran once");
        for f in &fires {
            assert!(
                ran_ids.contains(&f.job_id.unwrap()),
                "tick {} ran",
                f.scheduled_at
            );
            assert_eq!(
                engine.get(f.job_id.unwrap()).unwrap().state,
                JobState::Succeeded
            );
        }
        let c = counters.entry("recompute").values();
        assert_eq!(
            (c.fired as usize, c.absorbed as usize, c.missed, c.caught_up),
            (fired.len(), absorbed, 0, 0)
        );
    }
}
