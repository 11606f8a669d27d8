//! `/api/heartbeats/{id}/silence` and `/api/silences`: the edge of the
//! silences (`super`). Scoped by the caller's project like the heartbeat routes
//! (another project's heartbeat or silence is simply not found); the daemon's
//! own `job:*` heartbeats can be silenced like any other.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::{SilenceError, SilenceSpec, SilenceView, Target};
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult, NoQuery};
use crate::monitor::heartbeat;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(silence_heartbeat))
        .routes(routes!(list, silence_tag))
        .routes(routes!(remove))
}

impl From<SilenceError> for ApiError {
    fn from(e: SilenceError) -> Self {
        match e {
            SilenceError::Db(e) => e.into(),
            SilenceError::NotFound(_) => ApiError::not_found(e.to_string()),
            other => ApiError::unprocessable("invalid_input", other.to_string()),
        }
    }
}

/// Body of `POST /api/heartbeats/{id}/silence`: `until`, or a recurring window
/// (`cron`, `duration_seconds`, optional `tz`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceInput {
    /// A one-off silence until this instant (RFC 3339, in the future).
    until: Option<DateTime<Utc>>,
    /// A recurring window opening at each fire time of this cron expression...
    #[schema(min_length = 1, max_length = 200)]
    cron: Option<String>,
    /// ...for this many seconds (1 to a year).
    #[schema(minimum = 1, maximum = 31_622_400)]
    duration_seconds: Option<i32>,
    /// The IANA zone `cron` is read in (default UTC).
    #[schema(min_length = 1, max_length = 64)]
    tz: Option<String>,
}

/// Body of `POST /api/silences`: a silence over every heartbeat of the
/// project carrying `tag`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagSilenceInput {
    #[schema(pattern = "^[A-Za-z0-9_.:/-]{1,50}$")]
    tag: String,
    until: Option<DateTime<Utc>>,
    #[schema(min_length = 1, max_length = 200)]
    cron: Option<String>,
    #[schema(minimum = 1, maximum = 31_622_400)]
    duration_seconds: Option<i32>,
    #[schema(min_length = 1, max_length = 64)]
    tz: Option<String>,
}

/// `GET /api/silences`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SilenceList {
    /// Newest first.
    silences: Vec<SilenceView>,
}

#[utoipa::path(post, path = "/api/heartbeats/{id}/silence", operation_id = "silenceHeartbeat", tag = "silences", params(("id" = Uuid, Path)), request_body(content = SilenceInput, description = "until, or cron + duration_seconds (+ tz)"), responses((status = 201, description = "The silence", body = SilenceView), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope), (status = 422, description = "Invalid field, named in the message (both or neither of until and cron, a past until, a bad cron, zone or duration)", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn silence_heartbeat(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<SilenceInput>,
) -> ApiResult<Response> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found(format!("no heartbeat {id}")))?;
    let client = state.pool.get().await?;
    let hb = heartbeat::find_visible(&client, id, caller.project_id, caller.role == Role::Admin)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no heartbeat {id}")))?;
    let spec = SilenceSpec {
        until: input.until,
        cron: input.cron,
        duration_seconds: input.duration_seconds,
        tz: input.tz,
    };
    let now = Utc::now();
    let s = super::create(&client, hb.project_id, Target::Heartbeat(hb.id), &spec, now).await?;
    Ok((StatusCode::CREATED, ApiJson(s.view(now))).into_response())
}

#[utoipa::path(post, path = "/api/silences", operation_id = "silenceTag", tag = "silences", request_body(content = TagSilenceInput, description = "tag, and until or cron + duration_seconds (+ tz)"), responses((status = 201, description = "The silence", body = SilenceView), (status = 422, description = "Invalid field, named in the message", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn silence_tag(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    ApiJson(input): ApiJson<TagSilenceInput>,
) -> ApiResult<Response> {
    let client = state.pool.get().await?;
    let spec = SilenceSpec {
        until: input.until,
        cron: input.cron,
        duration_seconds: input.duration_seconds,
        tz: input.tz,
    };
    let now = Utc::now();
    let s = super::create(
        &client,
        caller.project_id,
        Target::Tag(input.tag),
        &spec,
        now,
    )
    .await?;
    Ok((StatusCode::CREATED, ApiJson(s.view(now))).into_response())
}

#[utoipa::path(get, path = "/api/silences", operation_id = "listSilences", tag = "silences", responses((status = 200, description = "The project's silences, newest first, with whether each holds now", body = SilenceList)), security((), ("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Response> {
    let client = state.pool.get().await?;
    let now = Utc::now();
    let silences = super::list(&client, caller.project_id, caller.role == Role::Admin)
        .await?
        .iter()
        .map(|s| s.view(now))
        .collect();
    Ok(ApiJson(SilenceList { silences }).into_response())
}

#[utoipa::path(delete, path = "/api/silences/{id}", operation_id = "deleteSilence", tag = "silences", params(("id" = Uuid, Path)), responses((status = 204, description = "Removed; a heartbeat still down whose alert it held alerts now"), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found(format!("no silence {id}")))?;
    let client = state.pool.get().await?;
    super::delete(&client, caller.project_id, caller.role == Role::Admin, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
