//! `heartbeat.schedule_state`: each entry's last success and last tick, so a
//! restart knows what it missed, and its pause, so every node honours it.
//! Behind a small trait so the tick loop can be driven in tests without a
//! database.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::jobs::JobKind;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// What is remembered of one entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EntryRecord {
    pub last_success_at: Option<DateTime<Utc>>,
    /// Scheduled time of the last tick submitted.
    pub last_tick_at: Option<DateTime<Utc>>,
    /// Set while an operator has the entry paused (docs/operations/cron.md).
    pub paused_at: Option<DateTime<Utc>>,
    /// When the pause ends by itself; none: until resumed.
    pub paused_until: Option<DateTime<Utc>>,
    /// Fire times skipped during the current (or last) pause, counted once
    /// across nodes.
    pub paused_missed: u64,
}

impl EntryRecord {
    /// Whether the entry is paused at `now`: a pause whose `until` has come is over.
    pub fn paused(&self, now: DateTime<Utc>) -> bool {
        self.paused_at.is_some() && self.paused_until.is_none_or(|u| u > now)
    }
}

/// Where the tick loop keeps entry state.
pub trait ScheduleStore: Send + Sync + 'static {
    /// Every entry's record, by entry name.
    fn load(&self) -> BoxFuture<'_, Result<HashMap<String, EntryRecord>, StoreError>>;
    /// A job of these entries' kind succeeded at `at`.
    fn record_success<'a>(
        &'a self,
        entries: &'a [(String, JobKind)],
        job_id: Uuid,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// The tick of `entry` scheduled at `scheduled_at` was handed to job `job_id`.
    fn record_tick<'a>(
        &'a self,
        entry: &'a str,
        kind: JobKind,
        scheduled_at: DateTime<Utc>,
        job_id: Uuid,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// `ticks` fire times of the paused `entry`, the latest at `scheduled_at`,
    /// passed without a run. Counted once however many nodes report them.
    fn record_paused_tick<'a>(
        &'a self,
        entry: &'a str,
        scheduled_at: DateTime<Utc>,
        ticks: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Ends every pause whose `until` is at or before `now` (as a resume would).
    fn end_expired_pauses(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<(), StoreError>>;
}

/// The PostgreSQL store.
pub struct PgStore {
    pub pool: Pool,
}

const LOAD: &str = "SELECT entry, last_success_at, last_tick_at, paused_at, paused_until, \
                    paused_missed FROM heartbeat.schedule_state";

/// Counts a skipped fire time once: only a fire time later than the last one
/// counted moves the count, so every node may report the same tick.
const RECORD_PAUSED_TICK: &str = "
UPDATE heartbeat.schedule_state
   SET paused_missed = paused_missed + $3, paused_last_counted = $2, updated_at = now()
 WHERE entry = $1 AND paused_at IS NOT NULL
   AND (paused_last_counted IS NULL OR paused_last_counted < $2)";

/// Never moves `last_success_at` backwards: success events can arrive out of
/// order across lanes sharing a kind.
const RECORD_SUCCESS: &str = "
INSERT INTO heartbeat.schedule_state (entry, kind, last_success_at, last_success_job)
VALUES ($1, $2, $3, $4)
ON CONFLICT (entry) DO UPDATE
   SET kind = EXCLUDED.kind,
       last_success_at = EXCLUDED.last_success_at,
       last_success_job = EXCLUDED.last_success_job,
       updated_at = now()
 WHERE schedule_state.last_success_at IS NULL
    OR schedule_state.last_success_at <= EXCLUDED.last_success_at";

const RECORD_TICK: &str = "
INSERT INTO heartbeat.schedule_state (entry, kind, last_tick_at, last_tick_job)
VALUES ($1, $2, $3, $4)
ON CONFLICT (entry) DO UPDATE
   SET kind = EXCLUDED.kind,
       last_tick_at = EXCLUDED.last_tick_at,
       last_tick_job = EXCLUDED.last_tick_job,
       updated_at = now()";

impl ScheduleStore for PgStore {
    fn load(&self) -> BoxFuture<'_, Result<HashMap<String, EntryRecord>, StoreError>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            let rows = client.query(LOAD, &[]).await?;
            Ok(rows
                .iter()
                .map(|r| {
                    (
                        r.get::<_, String>(0),
                        EntryRecord {
                            last_success_at: r.get(1),
                            last_tick_at: r.get(2),
                            paused_at: r.get(3),
                            paused_until: r.get(4),
                            paused_missed: r.get::<_, i64>(5).max(0) as u64,
                        },
                    )
                })
                .collect())
        })
    }

    fn record_success<'a>(
        &'a self,
        entries: &'a [(String, JobKind)],
        job_id: Uuid,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            let stmt = client.prepare_cached(RECORD_SUCCESS).await?;
            for (entry, kind) in entries {
                client
                    .execute(&stmt, &[entry, &kind.as_str(), &at, &job_id])
                    .await?;
            }
            Ok(())
        })
    }

    fn record_tick<'a>(
        &'a self,
        entry: &'a str,
        kind: JobKind,
        scheduled_at: DateTime<Utc>,
        job_id: Uuid,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            client
                .execute(
                    RECORD_TICK,
                    &[&entry, &kind.as_str(), &scheduled_at, &job_id],
                )
                .await?;
            Ok(())
        })
    }

    fn record_paused_tick<'a>(
        &'a self,
        entry: &'a str,
        scheduled_at: DateTime<Utc>,
        ticks: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.paused_tick(entry, scheduled_at, ticks)
    }

    fn end_expired_pauses(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(async move {
            let mut client = self.pool.get().await?;
            super::control::end_pauses(&mut client, super::control::Ending::ExpiredBy(now)).await?;
            Ok(())
        })
    }
}

impl PgStore {
    fn paused_tick<'a>(
        &'a self,
        entry: &'a str,
        scheduled_at: DateTime<Utc>,
        ticks: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let client = self.pool.get().await?;
            let ticks = i64::try_from(ticks).unwrap_or(i64::MAX);
            client
                .execute(RECORD_PAUSED_TICK, &[&entry, &scheduled_at, &ticks])
                .await?;
            Ok(())
        })
    }
}

/// An in-memory store, for driving the loop in tests.
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub records: std::sync::Mutex<HashMap<String, EntryRecord>>,
}

impl ScheduleStore for MemoryStore {
    fn load(&self) -> BoxFuture<'_, Result<HashMap<String, EntryRecord>, StoreError>> {
        let records = self.records.lock().unwrap().clone();
        Box::pin(async move { Ok(records) })
    }

    fn record_success<'a>(
        &'a self,
        entries: &'a [(String, JobKind)],
        _job_id: Uuid,
        at: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut records = self.records.lock().unwrap();
        for (entry, _) in entries {
            let r = records.entry(entry.clone()).or_default();
            r.last_success_at = r.last_success_at.max(Some(at));
        }
        Box::pin(async { Ok(()) })
    }

    fn record_tick<'a>(
        &'a self,
        entry: &'a str,
        _kind: JobKind,
        scheduled_at: DateTime<Utc>,
        _job_id: Uuid,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        self.records
            .lock()
            .unwrap()
            .entry(entry.to_string())
            .or_default()
            .last_tick_at = Some(scheduled_at);
        Box::pin(async { Ok(()) })
    }

    fn record_paused_tick<'a>(
        &'a self,
        entry: &'a str,
        _scheduled_at: DateTime<Utc>,
        ticks: u64,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        // One ticker per memory store: no other node reports the same tick.
        if let Some(r) = self.records.lock().unwrap().get_mut(entry) {
            if r.paused_at.is_some() {
                r.paused_missed += ticks;
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn end_expired_pauses(&self, now: DateTime<Utc>) -> BoxFuture<'_, Result<(), StoreError>> {
        for r in self.records.lock().unwrap().values_mut() {
            if r.paused_until.is_some_and(|u| u <= now) {
                r.paused_at = None;
                r.paused_until = None;
            }
        }
        Box::pin(async { Ok(()) })
    }
}
