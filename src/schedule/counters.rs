//! Per-entry tick counters, kept in memory for `GET /api/schedule` now and for the
//! Prometheus export later (observability issue).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// One entry's counters. Atomics: the tick loop writes while handlers read.
#[derive(Debug, Default)]
pub struct EntryCounters {
    /// Ticks that started a job (or queued the lane's follow-up) on time.
    pub fired: AtomicU64,
    /// Ticks (on time or catch-up) answered by a job that already existed, or
    /// whose work a later success already covered.
    pub absorbed: AtomicU64,
    /// Fire times that passed without a run: overdue past the catch-up window, or
    /// refused by the gate (shutting down). Counted up to 1000 per outage.
    pub missed: AtomicU64,
    /// Catch-up runs: one per outage, whatever the number of ticks it covers.
    pub caught_up: AtomicU64,
}

/// A snapshot of one entry's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CounterValues {
    pub fired: u64,
    pub absorbed: u64,
    pub missed: u64,
    pub caught_up: u64,
}

impl EntryCounters {
    pub fn values(&self) -> CounterValues {
        CounterValues {
            fired: self.fired.load(Ordering::Relaxed),
            absorbed: self.absorbed.load(Ordering::Relaxed),
            missed: self.missed.load(Ordering::Relaxed),
            caught_up: self.caught_up.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Every entry's counters by entry name. Cheap to clone (a handle); lives in
/// the daemon's shared state so readers (the API, `/metrics`) need not reach into the tick loop.
#[derive(Debug, Clone, Default)]
pub struct ScheduleCounters {
    /// A std mutex: it is taken once per entry when the loop starts and per read,
    /// never across an await. Bound: one entry per cron entry of the table (fixed
    /// at start).
    entries: Arc<Mutex<BTreeMap<String, Arc<EntryCounters>>>>,
}

impl ScheduleCounters {
    /// The counters of `entry`, created at zero on first use.
    pub fn entry(&self, entry: &str) -> Arc<EntryCounters> {
        self.entries
            .lock()
            .unwrap()
            .entry(entry.to_string())
            .or_default()
            .clone()
    }

    /// Current values of every entry seen so far.
    pub fn snapshot(&self) -> BTreeMap<String, CounterValues> {
        self.entries
            .lock()
            .unwrap()
            .iter()
            .map(|(name, c)| (name.clone(), c.values()))
            .collect()
    }
}
