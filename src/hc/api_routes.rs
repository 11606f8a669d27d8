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
use axum::Json;
use chrono::Utc;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::check::{to_check, ApiVersion, CheckJson, Urls};
use super::store::{self, Lookup, StoreError, StoredCheck};
use crate::auth::{identify, AuthError, Caller, Role};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_checks))
        .routes(routes!(get_check, delete_check))
        .routes(routes!(pause_check))
        .routes(routes!(resume_check))
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

/// An answer in healthchecks.io's error format: a status and `{"error": "..."}`.
struct Refusal(StatusCode, &'static str);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "healthchecks.io API: database error");
        Refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

const NOT_FOUND: Refusal = Refusal(StatusCode::NOT_FOUND, "not found");

type HcResult = Result<Response, Refusal>;

/// The caller from `X-Api-Key`, as healthchecks.io refuses it.
async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, Refusal> {
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty());
    match identify(&state.pool, state.config.admin_key.as_deref(), key).await {
        Ok(c) => Ok(c),
        Err(AuthError::MissingKey) => Err(Refusal(StatusCode::UNAUTHORIZED, "missing api key")),
        Err(AuthError::UnknownKey) => Err(Refusal(StatusCode::UNAUTHORIZED, "wrong api key")),
        Err(e) => {
            tracing::error!(error = %e, "healthchecks.io API: key lookup failed");
            Err(Refusal(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))
        }
    }
}

struct Ctx {
    caller: Caller,
    version: ApiVersion,
    base: String,
}

async fn ctx(state: &AppState, version: &str, headers: &HeaderMap) -> Result<Ctx, Refusal> {
    let version = ApiVersion::parse(version).ok_or(NOT_FOUND)?;
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

    fn view(&self, state: &AppState, check: &StoredCheck) -> CheckJson {
        let urls = Urls {
            base: &self.base,
            ping_prefix: &state.config.hc.ping_prefix,
            version: self.version,
        };
        to_check(&check.hb, check.n_pings, Utc::now(), self.readonly(), &urls)
    }
}

/// The caller's check with UUID `code` (or, for reading, its `unique_key`):
/// 404 when none has it, 403 when it is another project's.
async fn fetch(state: &AppState, ctx: &Ctx, code: &str) -> Result<StoredCheck, Refusal> {
    match store::find(&state.pool, ctx.caller.project_id, code, true).await? {
        Lookup::Found(c) => Ok(*c),
        Lookup::NotFound => Err(NOT_FOUND),
        Lookup::OtherProject => Err(Refusal(StatusCode::FORBIDDEN, "wrong project")),
    }
}

#[utoipa::path(get, path = "/api/{version}/checks/", operation_id = "hcListChecks", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3"), ("X-Api-Key" = Option<String>, Header)), responses((status = 200, description = "The project's checks", body = CheckList), (status = 401, description = "`{\"error\": \"missing api key\"}` or `wrong api key`", body = HcError), (status = 404, description = "Unknown version", body = HcError)))]
async fn list_checks(
    State(state): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> HcResult {
    let ctx = ctx(&state, &version, &headers).await?;
    let checks = store::list(&state.pool, ctx.caller.project_id)
        .await?
        .iter()
        .map(|c| ctx.view(&state, c))
        .collect();
    Ok(Json(CheckList { checks }).into_response())
}

#[utoipa::path(get, path = "/api/{version}/checks/{code}", operation_id = "hcGetCheck", tag = "healthchecks.io management API", params(("version" = String, Path), ("code" = String, Path, description = "The check's UUID, or its unique_key"), ("X-Api-Key" = Option<String>, Header)), responses((status = 200, description = "The check", body = CheckJson), (status = 401, description = "Missing or wrong key", body = HcError), (status = 403, description = "Another project's check", body = HcError), (status = 404, description = "Not found", body = HcError)))]
async fn get_check(
    State(state): State<AppState>,
    Path((version, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> HcResult {
    let ctx = ctx(&state, &version, &headers).await?;
    let check = fetch(&state, &ctx, &code).await?;
    Ok(Json(ctx.view(&state, &check)).into_response())
}

/// A write: refused to read-only keys (401 `wrong api key`, as healthchecks.io
/// answers a read-only key on a write endpoint); the UUID form only.
async fn writable(
    state: &AppState,
    version: &str,
    code: &str,
    headers: &HeaderMap,
) -> Result<(Ctx, StoredCheck), Refusal> {
    let ctx = ctx(state, version, headers).await?;
    if ctx.readonly() {
        return Err(Refusal(StatusCode::UNAUTHORIZED, "wrong api key"));
    }
    if Uuid::try_parse(code).is_err() {
        return Err(NOT_FOUND);
    }
    let check = fetch(state, &ctx, code).await?;
    Ok((ctx, check))
}

#[utoipa::path(delete, path = "/api/{version}/checks/{code}", operation_id = "hcDeleteCheck", tag = "healthchecks.io management API", params(("version" = String, Path), ("code" = String, Path), ("X-Api-Key" = Option<String>, Header)), responses((status = 200, description = "The deleted check", body = CheckJson), (status = 401, description = "Missing, wrong or read-only key", body = HcError), (status = 403, description = "Another project's check", body = HcError), (status = 404, description = "Not found", body = HcError)))]
async fn delete_check(
    State(state): State<AppState>,
    Path((version, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> HcResult {
    let (ctx, check) = writable(&state, &version, &code, &headers).await?;
    store::delete(&state.pool, check.hb.id).await?;
    state.hc_uuids.forget(check.hb.ping_uuid);
    Ok(Json(ctx.view(&state, &check)).into_response())
}

#[utoipa::path(post, path = "/api/{version}/checks/{code}/pause", operation_id = "hcPauseCheck", tag = "healthchecks.io management API", params(("version" = String, Path), ("code" = String, Path), ("X-Api-Key" = Option<String>, Header)), responses((status = 200, description = "The paused check", body = CheckJson), (status = 401, description = "Missing, wrong or read-only key", body = HcError), (status = 403, description = "Another project's check", body = HcError), (status = 404, description = "Not found", body = HcError)))]
async fn pause_check(
    State(state): State<AppState>,
    Path((version, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> HcResult {
    let (ctx, check) = writable(&state, &version, &code, &headers).await?;
    set_paused(&state, &ctx, &check, &code, true).await
}

#[utoipa::path(post, path = "/api/{version}/checks/{code}/resume", operation_id = "hcResumeCheck", tag = "healthchecks.io management API", params(("version" = String, Path), ("code" = String, Path), ("X-Api-Key" = Option<String>, Header)), responses((status = 200, description = "The resumed check", body = CheckJson), (status = 401, description = "Missing, wrong or read-only key", body = HcError), (status = 403, description = "Another project's check", body = HcError), (status = 404, description = "Not found", body = HcError), (status = 409, description = "`{\"error\": \"check is not paused\"}`", body = HcError)))]
async fn resume_check(
    State(state): State<AppState>,
    Path((version, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> HcResult {
    let (ctx, check) = writable(&state, &version, &code, &headers).await?;
    if !check.hb.paused {
        return Err(Refusal(StatusCode::CONFLICT, "check is not paused"));
    }
    set_paused(&state, &ctx, &check, &code, false).await
}

async fn set_paused(
    state: &AppState,
    ctx: &Ctx,
    check: &StoredCheck,
    code: &str,
    paused: bool,
) -> HcResult {
    store::set_paused(&state.pool, check.hb.id, paused).await?;
    let check = fetch(state, ctx, code).await?;
    Ok(Json(ctx.view(state, &check)).into_response())
}
