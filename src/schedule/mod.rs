//! The internal clock: a cron table whose ticks go through the jobs engine's gate
//! with `trigger: "cron"`, so a tick and a user's request for the same lane
//! coalesce like any two requests (docs/operations/cron.md).
//!
//! - [`cron`]: `CronSchedule`, a crontab expression with exact Vixie semantics.
//! - [`table`]: the `[schedule]` config section and the validated entries.
//! - [`ticker`]: the tick decisions (fire, absorb, catch up, miss) and the loop.
//! - [`state`]: `heartbeat.schedule_state`, each entry's last success and tick.
//! - [`claim`]: the once-only `(lane, scheduled_at)` tick claim across nodes.
//! - [`control`]: pause, resume and trigger an entry, for every node at once.
//! - [`counters`]: per-entry fired / absorbed / missed / caught-up counts.
//! - [`routes`]: `GET /api/schedule` (what `heartbeat schedule` prints) and the
//!   control routes.

pub mod claim;
pub mod control;
pub mod counters;
pub mod cron;
pub mod routes;
pub mod state;
pub mod table;
pub mod ticker;

use std::sync::Arc;

use tokio_util::task::TaskTracker;

pub use counters::ScheduleCounters;
pub use cron::{CronError, CronSchedule};
pub use table::{ScheduleConfig, Table};

use crate::jobs::Engine;
use crate::ops::liveness::Liveness;

/// What the cron table needs from the daemon.
pub struct SchedulerDeps {
    /// The gate every tick goes through.
    pub engine: Engine,
    /// For the tick claims and `heartbeat.schedule_state`.
    pub pool: deadpool_postgres::Pool,
    pub counters: ScheduleCounters,
    /// Where the tick loop registers its beat for the watchdog.
    pub liveness: Liveness,
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// How long the tick loop may go without waking before the watchdog counts it
/// stalled: its longest sleep, plus room for a slow tick or catch-up.
const SCHEDULER_MAX_SILENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// Starts the cron table unless `no_scheduler` is set (hosts driven by crontab).
/// Takes its own config section, not the whole `Config`, so this module does not
/// depend on the module that holds it.
pub fn spawn(
    schedule: &ScheduleConfig,
    no_scheduler: bool,
    deps: SchedulerDeps,
    tasks: &TaskTracker,
) {
    if no_scheduler {
        tracing::info!("internal cron table off (--no-scheduler): jobs run only on request");
        return;
    }
    let table = match schedule.table() {
        Ok(t) => t,
        Err(e) => {
            // Config::validate already refused this; keep the daemon up regardless.
            tracing::error!(error = %e, "cron table invalid; scheduler not started");
            return;
        }
    };
    let SchedulerDeps {
        engine,
        pool,
        counters,
        liveness,
        shutdown,
    } = deps;
    tasks.spawn(async move {
        // The catch-up before the first wake may take a while: allow for it.
        let beat = liveness.register("scheduler", SCHEDULER_MAX_SILENCE);
        ticker::run(ticker::LoopDeps {
            table,
            gate: Arc::new(ticker::EngineGate {
                engine,
                pool: pool.clone(),
            }),
            counters,
            store: Arc::new(state::PgStore { pool }),
            clock: crate::clock::system(),
            shutdown,
            beat: Some(beat),
        })
        .await;
    });
}
