//! `GET /api/schedule`: the cron table as the daemon runs it, with each entry's
//! next fire time, last success, pause and counters (what `heartbeat schedule`
//! prints); `POST /api/schedule/{entry}/pause|resume|trigger`, the operator's
//! controls ([`super::control`]).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::control::{self, ControlError};
use super::counters::CounterValues;
use super::state::{PgStore, ScheduleStore, StoreError};
use super::table::{format_window, Table};
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::error::{ApiQuery, NoQuery};
use crate::jobs::Submitted;
use crate::state::AppState;

/// The schedule routes with their OpenAPI operations.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_schedule))
        .routes(routes!(pause_entry))
        .routes(routes!(resume_entry))
        .routes(routes!(trigger_entry))
}

/// The one mapping of the controls' errors to HTTP.
impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::UnknownEntry(_) => ApiError::not_found(e.to_string()),
            ControlError::UntilInThePast(_) => {
                ApiError::unprocessable("invalid_field", e.to_string())
            }
            ControlError::Engine(e) => e.into(),
            ControlError::Db(e) => Self::Db(e),
            ControlError::Pool(e) => Self::Pool(e),
        }
    }
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
    /// True while an operator has the entry paused (on every node).
    pub paused: bool,
    /// When the pause ends by itself; null: until resumed.
    pub paused_until: Option<DateTime<Utc>>,
    /// Fire times skipped during the current pause (or the last one, once
    /// resumed), counted once across nodes.
    pub missed_while_paused: u64,
    /// This node's tick counts since it started.
    pub counters: CounterValues,
}

/// Body of `POST /api/schedule/{entry}/pause`; may be empty.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseBody {
    /// RFC 3339 time at which the entry runs again by itself; must be in the
    /// future. Absent: paused until resumed.
    pub until: Option<DateTime<Utc>>,
}

/// An empty body is `{}`; otherwise JSON, refused with our envelope.
fn pause_body(body: &[u8]) -> ApiResult<PauseBody> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(PauseBody::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            ApiError::unprocessable("invalid_input", format!("invalid body: {e}"))
        } else {
            ApiError::client(StatusCode::BAD_REQUEST, "malformed_json", e.to_string())
        }
    })
}

fn table(state: &AppState) -> ApiResult<Table> {
    state
        .config
        .schedule
        .table()
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[utoipa::path(post, path = "/api/schedule/{entry}/pause", operation_id = "pauseScheduleEntry", tag = "schedule",
    params(("entry" = String, Path, description = "Cron entry name, e.g. `recompute`")),
    request_body(content = PauseBody, description = "Optional (no body: paused until resumed); `null` is refused"),
    responses(
        (status = 200, description = "Paused on every node; the entry as now listed", body = EntryView),
        (status = 400, description = "Malformed JSON", body = ErrorEnvelope),
        (status = 403, description = "Read-only key", body = ErrorEnvelope),
        (status = 404, description = "No entry of that name (named)", body = ErrorEnvelope),
        (status = 422, description = "`until` not in the future, or a bad field", body = ErrorEnvelope),
        (status = 503, description = "Database unavailable", body = ErrorEnvelope),
    ),
    security((), ("bearer" = [])))]
async fn pause_entry(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
    Path(entry): Path<String>,
    body: Bytes,
) -> ApiResult<Json<EntryView>> {
    let table = table(&state)?;
    let until = pause_body(&body)?.until;
    control::pause(&state.pool, &table, &entry, until, Utc::now()).await?;
    entry_view(&state, &table, &entry).await.map(Json)
}

#[utoipa::path(post, path = "/api/schedule/{entry}/resume", operation_id = "resumeScheduleEntry", tag = "schedule",
    params(("entry" = String, Path, description = "Cron entry name")),
    responses(
        (status = 200, description = "Resumed; each node catches the entry up once at its next wake-up (within 30 s)", body = EntryView),
        (status = 403, description = "Read-only key", body = ErrorEnvelope),
        (status = 404, description = "No entry of that name (named)", body = ErrorEnvelope),
        (status = 503, description = "Database unavailable", body = ErrorEnvelope),
    ),
    security((), ("bearer" = [])))]
async fn resume_entry(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
    Path(entry): Path<String>,
) -> ApiResult<Json<EntryView>> {
    let table = table(&state)?;
    control::resume(&state.pool, &table, &entry).await?;
    entry_view(&state, &table, &entry).await.map(Json)
}

#[utoipa::path(post, path = "/api/schedule/{entry}/trigger", operation_id = "triggerScheduleEntry", tag = "schedule",
    params(("entry" = String, Path, description = "Cron entry name")),
    responses(
        (status = 202, description = "The job serving it (`trigger: \"manual\"`), coalesced like any request", body = Submitted),
        (status = 403, description = "Read-only key", body = ErrorEnvelope),
        (status = 404, description = "No entry of that name (named)", body = ErrorEnvelope),
        (status = 503, description = "Shutting down or database unavailable", body = ErrorEnvelope),
    ),
    security((), ("bearer" = [])))]
async fn trigger_entry(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
    Path(entry): Path<String>,
) -> ApiResult<Response> {
    let table = table(&state)?;
    let submitted = control::trigger(&state.jobs, &table, &entry).await?;
    Ok((StatusCode::ACCEPTED, Json(submitted)).into_response())
}

/// One entry as `GET /api/schedule` lists it.
async fn entry_view(state: &AppState, table: &Table, name: &str) -> ApiResult<EntryView> {
    let view = schedule_view(state, table).await?;
    view.entries
        .into_iter()
        .find(|e| e.name == name)
        .ok_or_else(|| ControlError::UnknownEntry(name.to_string()).into())
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
    let table = table(&state)?;
    schedule_view(&state, &table).await.map(Json)
}

async fn schedule_view(state: &AppState, table: &Table) -> ApiResult<ScheduleView> {
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
                paused: record.paused(now),
                paused_until: record.paused_until.filter(|_| record.paused(now)),
                missed_while_paused: record.paused_missed,
                counters: counters.get(&e.name).copied().unwrap_or_default(),
            }
        })
        .collect();
    Ok(ScheduleView {
        running,
        timezone: table.timezone.name().to_string(),
        entries,
    })
}
