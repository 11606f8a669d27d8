//! Where "now" comes from, injectable so tests move time (a backfill after a gap,
//! a missed cron tick, a suspend) without sleeping. One trait for every area that
//! reads the wall clock: the refresh bodies and the cron tick loop.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

/// A source of wall-clock time. Any `Fn() -> DateTime<Utc>` is one, so a test can
/// hand in a closure over a time it sets.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// A clock shared by the tasks that read it.
pub type SharedClock = Arc<dyn Clock>;

impl<F> Clock for F
where
    F: Fn() -> DateTime<Utc> + Send + Sync + 'static,
{
    fn now(&self) -> DateTime<Utc> {
        self()
    }
}

/// The system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The system's wall clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// Wall time that advances with tokio's clock from a fixed start, so under
/// `tokio::time::pause` a loop sees exactly the time the test advanced.
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
