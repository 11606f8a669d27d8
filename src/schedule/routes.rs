//! `GET /api/schedule`: the cron table as the daemon runs it, with each entry's
//! next fire time, last success and counters (what `heartbeat schedule` prints).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::counters::CounterValues;
use super::state::{PgStore, ScheduleStore, StoreError};
use super::table::format_window;
use crate::error::{ApiError, ApiResult};
use crate::error::{ApiQuery, NoQuery};
use crate::state::AppState;

/// The schedule route with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_schedule))
}

/// The one mapping of the schedule store's errors to HTTP.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Db(e) => Self::Db(e),
            StoreError::Pool(e) => Self::Pool(e),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    /// False when the daemon runs with `--no-scheduler`: nothing fires by itself.
    pub running: bool,
    pub timezone: String,
    pub entries: Vec<EntryView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EntryView {
    pub name: String,
    pub job: String,
    pub cron: String,
    pub enabled: bool,
    pub catch_up_window: String,
    /// Null when the entry is disabled or the scheduler is off.
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_tick_at: Option<DateTime<Utc>>,
    pub counters: CounterValues,
}

#[utoipa::path(get, path = "/api/schedule", operation_id = "getSchedule", tag = "schedule",
    responses(
        (status = 200, description = "Entries with next fire time, last success and tick counters", body = ScheduleView),
        (status = 503, description = "Database unavailable", body = crate::error::ErrorEnvelope),
    ),
    security((), ("bearer" = [])))]
async fn get_schedule(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Json<ScheduleView>> {
    let table = state
        .config
        .schedule
        .table()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let store = PgStore {
        pool: state.pool.clone(),
    };
    let records = store.load().await?;
    let counters = state.schedule.snapshot();
    let running = !state.config.no_scheduler;
    let now = Utc::now();
    let entries = table
        .entries
        .iter()
        .map(|e| {
            let record = records.get(&e.name).copied().unwrap_or_default();
            EntryView {
                name: e.name.clone(),
                job: e.kind.to_string(),
                cron: e.schedule.to_string(),
                enabled: e.enabled,
                catch_up_window: format_window(e.catch_up_window),
                next_fire_at: (running && e.enabled)
                    .then(|| table.next_fire(e, now))
                    .flatten(),
                last_success_at: record.last_success_at,
                last_tick_at: record.last_tick_at,
                counters: counters.get(&e.name).copied().unwrap_or_default(),
            }
        })
        .collect();
    Ok(Json(ScheduleView {
        running,
        timezone: table.timezone.name().to_string(),
        entries,
    }))
}
