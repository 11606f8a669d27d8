//! The daemon's background loops, started together and stopped by one token
//! (`AppState::shutdown`). Each area adds its loop here.

use tokio_util::task::TaskTracker;

use crate::state::AppState;

/// Spawns every background loop on `tasks`.
pub fn spawn_all(state: &AppState, tasks: &TaskTracker) {
    crate::schedule::spawn(state, tasks);
    tasks.spawn(crate::refresh::startup::fill_an_empty_cockpit(
        state.clone(),
    ));
    // Subscribed here, before any job can run, so no finished job is missed.
    tasks.spawn(crate::monitor::selfcheck::follow_jobs(
        state.clone(),
        state.jobs.subscribe(),
    ));
    if state.config.monitor.loops {
        tasks.spawn(crate::monitor::deadline::run(state.clone()));
        tasks.spawn(crate::monitor::delivery::run(state.clone()));
    }
    let janitor = state.clone();
    tasks.spawn(async move {
        if janitor.wait_migrated().await {
            janitor
                .jobs
                .clone()
                .janitor_loop(janitor.shutdown.clone())
                .await;
        }
    });
}
