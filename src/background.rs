//! The daemon's background loops, started together and stopped by one token
//! (`AppState::shutdown`). Each area adds its loop here, handing it a deps struct
//! of the handles it uses, never the whole `AppState`.
//!
//! The schema is waited for here, once: every loop below starts only after the
//! migrations are applied, so no loop checks for it itself. Receivers of finished
//! jobs are subscribed before the wait, so no job that ends meanwhile is missed.

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::AppState;

/// Spawns every background loop on `tasks`.
pub fn spawn_all(state: &AppState, tasks: &TaskTracker) {
    // Subscribed here, before any job can run, so no finished job is missed.
    let for_selfcheck = state.jobs.subscribe();
    let for_metrics = state.jobs.subscribe();
    // The demo fill listens from the start for the first successful recompute.
    let for_demo = state.config.demo_enabled().then(|| state.jobs.subscribe());
    let state = state.clone();
    let spawner = tasks.clone();
    tasks.spawn(async move {
        if !wait_migrated(state.migrated.clone(), &state.shutdown).await {
            sd_stopping();
            return;
        }
        let tasks = &spawner;
        crate::schedule::spawn(
            &state.config.schedule,
            state.config.no_scheduler,
            crate::schedule::SchedulerDeps {
                engine: state.jobs.clone(),
                pool: state.pool.clone(),
                counters: state.schedule.clone(),
                liveness: state.liveness.clone(),
                shutdown: state.shutdown.clone(),
            },
            tasks,
        );
        if let Some(finished) = for_demo {
            tasks.spawn(crate::demo::fill(crate::demo::DemoDeps {
                engine: state.jobs.clone(),
                pool: state.pool.clone(),
                shutdown: state.shutdown.clone(),
                finished,
            }));
        }
        spawn_monitor(&state, tasks, for_selfcheck);
        tasks.spawn(state.jobs.clone().janitor_loop(state.shutdown.clone()));
        crate::ops::spawn_loops(
            crate::ops::LoopDeps {
                config: state.config.ops.clone(),
                metrics: state.metrics.clone(),
                liveness: state.liveness.clone(),
                pool: state.pool.clone(),
                shutdown: state.shutdown.clone(),
            },
            tasks,
            for_metrics,
        );
    });
}

/// The dead man's switch: the job heartbeats' follower, and (unless tests drive
/// them by hand) the deadline loop and the alert delivery worker of `notify`.
fn spawn_monitor(
    state: &AppState,
    tasks: &TaskTracker,
    finished: tokio::sync::broadcast::Receiver<crate::jobs::Job>,
) {
    use crate::monitor::{deadline, selfcheck};
    let (schedules, tz) = selfcheck::configured_schedules(&state.config.schedule);
    tasks.spawn(selfcheck::follow_jobs(
        selfcheck::LoopDeps {
            pool: state.pool.clone(),
            pings: state.pings.clone(),
            schedules,
            tz,
            restore_every: std::time::Duration::from_millis(
                state.config.monitor.deadline_interval_ms,
            ),
            shutdown: state.shutdown.clone(),
        },
        finished,
    ));
    let config = &state.config.monitor;
    if config.loops {
        // The deadline loop wakes the delivery worker when it wrote alerts.
        let alerts_written = std::sync::Arc::new(tokio::sync::Notify::new());
        tasks.spawn(deadline::run(deadline::LoopDeps {
            pool: state.pool.clone(),
            config: config.clone(),
            metrics: state.metrics.clone(),
            liveness: state.liveness.clone(),
            alerts_written: alerts_written.clone(),
            shutdown: state.shutdown.clone(),
        }));
        // So is it when another node's deadline loop wrote them.
        tasks.spawn(crate::notify::wake::listen(
            crate::notify::wake::ListenDeps {
                database_url: state.database_url.clone(),
                alerts_written: alerts_written.clone(),
                shutdown: state.shutdown.clone(),
            },
        ));
        tasks.spawn(crate::notify::outbox::run(
            crate::notify::outbox::LoopDeps {
                pool: state.pool.clone(),
                deliverer: state.notifier.clone(),
                redact_scope: state.database_url.clone(),
                metrics: state.metrics.clone(),
                alerts_written,
                shutdown: state.shutdown.clone(),
            },
        ));
    }
}

/// Waits until migrations are applied, or shutdown begins (returns false).
async fn wait_migrated(mut migrated: watch::Receiver<bool>, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        res = migrated.wait_for(|done| *done) => res.is_ok(),
        _ = shutdown.cancelled() => false,
    }
}

/// Tells systemd the daemon stops without ever having been ready.
fn sd_stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}
