//! The daemon's background loops, started together and stopped by one token
//! (`AppState::shutdown`). Each area adds its loop here.
//!
//! The schema is waited for here, once: every loop below starts only after the
//! migrations are applied, so no loop checks for it itself. Receivers of finished
//! jobs are subscribed before the wait, so no job that ends meanwhile is missed.

use tokio_util::task::TaskTracker;

use crate::state::AppState;

/// Spawns every background loop on `tasks`.
pub fn spawn_all(state: &AppState, tasks: &TaskTracker) {
    // Subscribed here, before any job can run, so no finished job is missed.
    let for_selfcheck = state.jobs.subscribe();
    let for_metrics = state.jobs.subscribe();
    // The first fill listens from the start for the first successful recompute.
    tasks.spawn(crate::audit::first_fill::fill_demo_snapshots(state.clone()));
    let state = state.clone();
    let spawner = tasks.clone();
    tasks.spawn(async move {
        if !state.wait_migrated().await {
            sd_stopping();
            return;
        }
        let tasks = &spawner;
        crate::schedule::spawn(&state, tasks);
        tasks.spawn(crate::refresh::startup::fill_an_empty_cockpit(
            state.clone(),
        ));
        tasks.spawn(crate::monitor::selfcheck::follow_jobs(
            state.clone(),
            for_selfcheck,
        ));
        if state.config.monitor.loops {
            tasks.spawn(crate::monitor::deadline::run(state.clone()));
            tasks.spawn(crate::monitor::delivery::run(state.clone()));
        }
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

/// Tells systemd the daemon stops without ever having been ready.
fn sd_stopping() {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}
