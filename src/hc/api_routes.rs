//! healthchecks.io's Management API (a first part): `GET checks/`,
//! `GET checks/<uuid>`, `POST checks/<uuid>/pause`, `POST checks/<uuid>/resume`,
//! `DELETE checks/<uuid>` under `/api/v1/`, `/api/v2/` and `/api/v3/`.
//!
//! Auth is healthchecks.io's, not Heartbeat's bearer: `X-Api-Key` with a
//! project's read-write or read-only key (or the admin key, acting on
//! `default`); 401 `{"error": "missing api key"}` / `{"error": "wrong api key"}`.
//! In open mode the default project answers without a key. Errors are
//! healthchecks.io's `{"error": "..."}`, not Heartbeat's envelope, so these routes
//! sit outside the `/api` key layer.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::check::{to_check, ApiVersion, CheckJson, Urls};
use crate::auth::{identify, AuthError, Caller, Role};
use crate::monitor::heartbeat::{Heartbeat, COLUMNS};
use crate::state::AppState;

/// This part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_checks, get_check, delete_check, pause_check, resume_check),
    tags((name = "healthchecks.io management API", description = "healthchecks.io's Management API (X-Api-Key). See docs/healthchecks-compat.md."))
)]
pub struct HcManagementApi;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/{version}/checks/", get(list_checks))
        .route(
            "/api/{version}/checks/{code}",
            get(get_check).delete(delete_check),
        )
        .route("/api/{version}/checks/{code}/pause", post(pause_check))
        .route("/api/{version}/checks/{code}/resume", post(resume_check))
}

/// healthchecks.io's error body.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HcError {
    pub error: String,
}

/// `GET checks/`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CheckList {
    pub checks: Vec<CheckJson>,
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not found")
}

fn internal() -> Response {
    error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// The caller from `X-Api-Key`, as healthchecks.io refuses it.
async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, Response> {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty());
    match identify(&state.pool, state.config.admin_key.as_deref(), key).await {
        Ok(c) => Ok(c),
        Err(AuthError::MissingKey) => Err(error(StatusCode::UNAUTHORIZED, "missing api key")),
        Err(AuthError::UnknownKey) => Err(error(StatusCode::UNAUTHORIZED, "wrong api key")),
        Err(_) => Err(internal()),
    }
}

struct Ctx {
    caller: Caller,
    version: ApiVersion,
    base: String,
}

async fn ctx(state: &AppState, version: &str, headers: &HeaderMap) -> Result<Ctx, Response> {
    let version = ApiVersion::parse(version).ok_or_else(not_found)?;
    let caller = caller(state, headers).await?;
    let base = state
        .config
        .monitor
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", state.config.bind));
    Ok(Ctx {
        caller,
        version,
        base: base.trim_end_matches('/').to_string(),
    })
}

impl Ctx {
    fn readonly(&self) -> bool {
        self.caller.role == Role::ReadOnly
    }

    fn view(&self, state: &AppState, hb: &Heartbeat, n_pings: i64) -> CheckJson {
        let urls = Urls {
            base: &self.base,
            ping_prefix: &state.config.hc.ping_prefix,
            version: self.version,
        };
        to_check(hb, n_pings, Utc::now(), self.readonly(), &urls)
    }
}

/// The caller's check with UUID `code` (or, for reading, its `unique_key`):
/// 404 when none has it, 403 when it is another project's.
async fn fetch(state: &AppState, ctx: &Ctx, code: &str) -> Result<(Heartbeat, i64), Response> {
    let client = state.pool.get().await.map_err(|_| internal())?;
    let sql = format!("SELECT {COLUMNS}, ping_seq FROM heartbeat.heartbeat WHERE ping_uuid = $1");
    let row = match Uuid::try_parse(code) {
        Ok(uuid) => client
            .query_opt(&sql, &[&uuid])
            .await
            .map_err(|_| internal())?,
        Err(_) => {
            // A read-only unique_key: find it among the project's checks.
            let sql = format!(
                "SELECT {COLUMNS}, ping_seq FROM heartbeat.heartbeat WHERE project_id = $1"
            );
            let rows = client
                .query(&sql, &[&ctx.caller.project_id])
                .await
                .map_err(|_| internal())?;
            rows.into_iter()
                .find(|r| super::check::unique_key(Heartbeat::from_row(r).ping_uuid) == code)
        }
    };
    let row = row.ok_or_else(not_found)?;
    let hb = Heartbeat::from_row(&row);
    if hb.project_id != ctx.caller.project_id {
        return Err(error(StatusCode::FORBIDDEN, "wrong project"));
    }
    Ok((hb, row.get(20)))
}

#[utoipa::path(get, path = "/api/{version}/checks/", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3"), ("X-Api-Key" = Option<String>, Header)), responses((status = 200, description = "The project's checks", body = CheckList), (status = 401, description = "`{\"error\": \"missing api key\"}` or `wrong api key`", body = HcError), (status = 404, description = "Unknown version", body = HcError)))]
async fn list_checks(
    State(state): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> Response {
    let ctx = match ctx(&state, &version, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Ok(client) = state.pool.get().await else {
        return internal();
    };
    let sql = format!(
        "SELECT {COLUMNS}, ping_seq FROM heartbeat.heartbeat WHERE project_id = $1 ORDER BY created_at, heartbeat_id"
    );
    let Ok(rows) = client.query(&sql, &[&ctx.caller.project_id]).await else {
        return internal();
    };
    let checks: Vec<CheckJson> = rows
        .iter()
        .map(|r| ctx.view(&state, &Heartbeat::from_row(r), r.get(20)))
        .collect();
    Json(CheckList { checks }).into_response()
}

#[utoipa::path(get, path = "/api/{version}/checks/{code}", tag = "healthchecks.io management API", params(("version" = String, Path), ("code" = String, Path, description = "The check's UUID, or its unique_key")), responses((status = 200, description = "The check", body = CheckJson), (status = 401, description = "Missing or wrong key", body = HcError), (status = 403, description = "Another project's check", body = HcError), (status = 404, description = "Not found", body = HcError)))]
async fn get_check(
    State(state): State<AppState>,
    Path((version, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let ctx = match ctx(&state, &version, &headers).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    match fetch(&state, &ctx, &code).await {
        Ok((hb, n)) => Json(ctx.view(&state, &hb, n)).into_response(),
        Err(r) => r,
    }
}

/// A write: refused to read-only keys (401 `wrong api key`, as healthchecks.io
/// answers a read-only key on a write endpoint); the UUID form only.
async fn writable(
    state: &AppState,
    version: &str,
    code: &str,
    headers: &HeaderMap,
) -> Result<(Ctx, Heartbeat), Response> {
    let ctx = ctx(state, version, headers).await?;
    if ctx.readonly() {
        return Err(error(StatusCode::UNAUTHORIZED, "wrong api key"));
    }
    if Uuid::try_parse(code).is_err() {
        return Err(not_found());
    }
    let (hb, _) = fetch(state, &ctx, code).await?;
    Ok((ctx, hb))
}

async fn answer_check(state: &AppState, ctx: &Ctx, code: &str) -> Response {
    match fetch(state, ctx, code).await {
        Ok((hb, n)) => Json(ctx.view(state, &hb, n)).into_response(),
        Err(r) => r,
    }
}

#[utoipa::path(delete, path = "/api/{version}/checks/{code}", tag = "healthchecks.io management API", params(("version" = String, Path), ("code" = String, Path)), responses((status = 200, description = "The deleted check", body = CheckJson), (status = 401, description = "Missing, wrong or read-only key", body = HcError), (status = 403, description = "Another project's check", body = HcError), (status = 404, description = "Not found", body = HcError)))]
async fn delete_check(
    State(state): State<AppState>,
    Path((version, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (ctx, hb) = match writable(&state, &version, &code, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = ctx.view(&state, &hb, 0);
    let Ok(client) = state.pool.get().await else {
        return internal();
    };
    if client
        .execute(
            "DELETE FROM heartbeat.heartbeat WHERE heartbeat_id = $1",
            &[&hb.id],
        )
        .await
        .is_err()
    {
        return internal();
    }
    state.hc_uuids.forget(hb.ping_uuid);
    Json(body).into_response()
}

#[utoipa::path(post, path = "/api/{version}/checks/{code}/pause", tag = "healthchecks.io management API", params(("version" = String, Path), ("code" = String, Path)), responses((status = 200, description = "The paused check", body = CheckJson), (status = 401, description = "Missing, wrong or read-only key", body = HcError), (status = 403, description = "Another project's check", body = HcError), (status = 404, description = "Not found", body = HcError)))]
async fn pause_check(
    State(state): State<AppState>,
    Path((version, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (ctx, hb) = match writable(&state, &version, &code, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    set_paused(&state, &ctx, &hb, &code, true).await
}

#[utoipa::path(post, path = "/api/{version}/checks/{code}/resume", tag = "healthchecks.io management API", params(("version" = String, Path), ("code" = String, Path)), responses((status = 200, description = "The resumed check", body = CheckJson), (status = 401, description = "Missing, wrong or read-only key", body = HcError), (status = 403, description = "Another project's check", body = HcError), (status = 404, description = "Not found", body = HcError), (status = 409, description = "`{\"error\": \"check is not paused\"}`", body = HcError)))]
async fn resume_check(
    State(state): State<AppState>,
    Path((version, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let (ctx, hb) = match writable(&state, &version, &code, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !hb.paused {
        return error(StatusCode::CONFLICT, "check is not paused");
    }
    set_paused(&state, &ctx, &hb, &code, false).await
}

/// Pausing and resuming as `PATCH /api/heartbeats` does it (the deadline loop
/// re-evaluates at once).
const SET_PAUSED: &str = "
UPDATE heartbeat.heartbeat SET
    paused = $2,
    resumed_at = CASE WHEN paused AND NOT $2 THEN now() ELSE resumed_at END,
    deadline = now()
WHERE heartbeat_id = $1";

async fn set_paused(
    state: &AppState,
    ctx: &Ctx,
    hb: &Heartbeat,
    code: &str,
    paused: bool,
) -> Response {
    let Ok(client) = state.pool.get().await else {
        return internal();
    };
    if client
        .execute(SET_PAUSED, &[&hb.id, &paused])
        .await
        .is_err()
    {
        return internal();
    }
    answer_check(state, ctx, code).await
}
