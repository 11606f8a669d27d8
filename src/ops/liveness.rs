//! Which background loops are alive: each long-running loop that the daemon's
//! health depends on (the scheduler, the deadline loop) registers here and beats
//! on every pass. The systemd watchdog and the self-ping only report "healthy"
//! while every registered loop has beaten recently, so a loop that panicked,
//! deadlocked or hangs on a query makes the outside world notice.
//!
//! A loop that sleeps until its next event must still wake at least every
//! [`BEAT_EVERY`] to beat; registration takes the silence after which it counts as
//! stalled (at least a few beats long).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// How often a registered loop should beat, at the least.
pub const BEAT_EVERY: Duration = Duration::from_secs(5);

/// The default silence after which a loop counts as stalled.
pub const DEFAULT_MAX_SILENCE: Duration = Duration::from_secs(60);

/// Registry of loops, shared by the loops that beat and the watchdog and
/// self-ping that read it. Cheap to clone.
#[derive(Clone)]
pub struct Liveness {
    /// A std mutex: registration happens a handful of times per process and the
    /// checks copy a few entries out; beats themselves touch only an atomic.
    /// Bound: one entry per running loop; a retired loop's entry is removed at the
    /// next registration.
    loops: Arc<Mutex<Vec<Entry>>>,
    /// Beats are stored as milliseconds since this instant, so an atomic holds them
    /// and `tokio::time::pause` drives them in tests.
    epoch: Instant,
}

struct Entry {
    name: &'static str,
    max_silence: Duration,
    last_beat_ms: Arc<AtomicU64>,
    retired: Arc<std::sync::atomic::AtomicBool>,
}

/// A loop's handle: call [`LoopBeat::beat`] on every pass. Dropping it does NOT
/// unregister the loop (a loop that died must count as stalled); call
/// [`LoopBeat::retire`] when the loop ends on purpose.
pub struct LoopBeat {
    last_beat_ms: Arc<AtomicU64>,
    retired: Arc<std::sync::atomic::AtomicBool>,
    epoch: Instant,
}

/// A loop that has not beaten for longer than it promised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stalled {
    pub name: &'static str,
    pub silent_for: Duration,
}

impl Default for Liveness {
    fn default() -> Self {
        Self::new()
    }
}

impl Liveness {
    pub fn new() -> Self {
        Self {
            loops: Arc::default(),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Registers a loop named `name` that beats at least every `max_silence`.
    /// It starts with a beat, so a loop is healthy from the moment it registers.
    pub fn register(&self, name: &'static str, max_silence: Duration) -> LoopBeat {
        let last_beat_ms = Arc::new(AtomicU64::new(self.now_ms()));
        let retired = Arc::new(std::sync::atomic::AtomicBool::new(false));
        self.loops.lock().unwrap().push(Entry {
            name,
            max_silence,
            last_beat_ms: last_beat_ms.clone(),
            retired: retired.clone(),
        });
        LoopBeat {
            last_beat_ms,
            retired,
            epoch: self.epoch,
        }
    }

    /// Loops silent for longer than they promised; empty means healthy.
    pub fn stalled(&self) -> Vec<Stalled> {
        let now = self.now_ms();
        let mut loops = self.loops.lock().unwrap();
        loops.retain(|e| !e.retired.load(Ordering::Relaxed));
        loops
            .iter()
            .filter_map(|e| {
                let silent_for = Duration::from_millis(
                    now.saturating_sub(e.last_beat_ms.load(Ordering::Relaxed)),
                );
                (silent_for > e.max_silence).then_some(Stalled {
                    name: e.name,
                    silent_for,
                })
            })
            .collect()
    }

    /// Each live loop and how long since it last beat, for `/metrics`.
    pub fn ages(&self) -> Vec<(&'static str, Duration)> {
        let now = self.now_ms();
        self.loops
            .lock()
            .unwrap()
            .iter()
            .filter(|e| !e.retired.load(Ordering::Relaxed))
            .map(|e| {
                let ms = now.saturating_sub(e.last_beat_ms.load(Ordering::Relaxed));
                (e.name, Duration::from_millis(ms))
            })
            .collect()
    }
}

impl LoopBeat {
    /// Records that the loop is making progress.
    pub fn beat(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_beat_ms.store(ms, Ordering::Relaxed);
    }

    /// Unregisters the loop: it ended on purpose (shutdown, switched off).
    pub fn retire(self) {
        self.retired.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_loop_that_stops_beating_is_reported_stalled() {
        let liveness = Liveness::new();
        let beat = liveness.register("deadline", Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(8)).await;
        assert!(liveness.stalled().is_empty());
        beat.beat();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(liveness.stalled().is_empty(), "a beat resets the clock");
        tokio::time::advance(Duration::from_secs(2)).await;
        let stalled = liveness.stalled();
        assert_eq!(stalled.len(), 1);
        assert_eq!(stalled[0].name, "deadline");
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_handle_still_counts_but_a_retired_one_does_not() {
        let liveness = Liveness::new();
        drop(liveness.register("died", Duration::from_secs(1)));
        liveness.register("done", Duration::from_secs(1)).retire();
        tokio::time::advance(Duration::from_secs(5)).await;
        let names: Vec<_> = liveness.stalled().into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["died"]);
    }
}
