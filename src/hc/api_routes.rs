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
//!
//! Every Management API path also answers an `OPTIONS` preflight, and carries
//! healthchecks.io's CORS headers on its answers ([`cors`]), here and in
//! `super::history::routes`.

use std::borrow::Cow;

use axum::body::Bytes;
use axum::extract::Request;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::check::{to_check, ApiVersion, CheckJson, Urls};
use super::spec::CheckSpec;
use super::store::{self, Lookup, StoreError, StoredCheck, WriteError};
use crate::auth::{identify, AuthError, Caller, Role};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_checks, create_check, checks_preflight))
        .routes(routes!(
            get_check,
            update_check,
            delete_check,
            check_preflight
        ))
        .routes(routes!(pause_check, pause_preflight))
        .routes(routes!(resume_check, resume_preflight))
        .layer(axum::middleware::from_fn(cors))
}

#[utoipa::path(options, path = "/api/{version}/checks/", operation_id = "hcChecksPreflight", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3")), responses((status = 204, description = "CORS preflight: `Access-Control-Allow-Origin: *`, `Access-Control-Allow-Headers: X-Api-Key`, the path's methods in `Access-Control-Allow-Methods`, `Access-Control-Max-Age: 600`"), (status = 404, description = "Unknown version", body = HcError)))]
async fn checks_preflight(uri: Uri) -> Response {
    preflight(&uri).unwrap_or_else(|| NOT_FOUND.into_response())
}

#[utoipa::path(options, path = "/api/{version}/checks/{code}", operation_id = "hcCheckPreflight", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3"), ("code" = String, Path)), responses((status = 204, description = "CORS preflight: `Access-Control-Allow-Origin: *`, `Access-Control-Allow-Headers: X-Api-Key`, the path's methods in `Access-Control-Allow-Methods`, `Access-Control-Max-Age: 600`"), (status = 404, description = "Unknown version", body = HcError)))]
async fn check_preflight(uri: Uri) -> Response {
    preflight(&uri).unwrap_or_else(|| NOT_FOUND.into_response())
}

#[utoipa::path(options, path = "/api/{version}/checks/{code}/pause", operation_id = "hcPausePreflight", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3"), ("code" = String, Path)), responses((status = 204, description = "CORS preflight: `Access-Control-Allow-Origin: *`, `Access-Control-Allow-Headers: X-Api-Key`, the path's methods in `Access-Control-Allow-Methods`, `Access-Control-Max-Age: 600`"), (status = 404, description = "Unknown version", body = HcError)))]
async fn pause_preflight(uri: Uri) -> Response {
    preflight(&uri).unwrap_or_else(|| NOT_FOUND.into_response())
}

#[utoipa::path(options, path = "/api/{version}/checks/{code}/resume", operation_id = "hcResumePreflight", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3"), ("code" = String, Path)), responses((status = 204, description = "CORS preflight: `Access-Control-Allow-Origin: *`, `Access-Control-Allow-Headers: X-Api-Key`, the path's methods in `Access-Control-Allow-Methods`, `Access-Control-Max-Age: 600`"), (status = 404, description = "Unknown version", body = HcError)))]
async fn resume_preflight(uri: Uri) -> Response {
    preflight(&uri).unwrap_or_else(|| NOT_FOUND.into_response())
}

/// healthchecks.io's error body.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct HcError {
    pub error: String,
}

/// The body of `POST checks/` and `POST checks/<uuid>`, for the document: the
/// handlers read it with `CheckSpec::parse`, healthchecks.io's strict rules.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct CheckFields {
    name: Option<String>,
    /// v3; v1 and v2 derive it from the name (and take it too).
    slug: Option<String>,
    /// Space-separated.
    tags: Option<String>,
    desc: Option<String>,
    /// Seconds, 60 to 31536000.
    timeout: Option<i64>,
    /// Seconds, 60 to 31536000.
    grace: Option<i64>,
    /// A cron expression; wins over `timeout`.
    schedule: Option<String>,
    tz: Option<String>,
    manual_resume: Option<bool>,
    /// `""` or `"POST"`.
    methods: Option<String>,
    /// `"*"`, `""` or a comma list of channel ids.
    channels: Option<String>,
    /// Fields that name an existing check to update instead (create only).
    unique: Option<Vec<String>>,
    /// The key, when no `X-Api-Key` header carries it.
    api_key: Option<String>,
}

/// `GET checks/`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct CheckList {
    pub checks: Vec<CheckJson>,
}

/// A refused call, answered as healthchecks.io answers it.
pub(in crate::hc) enum Refusal {
    /// A status and `{"error": "..."}`.
    Error(StatusCode, Cow<'static, str>),
    /// An answer healthchecks.io writes with Django's bare `HttpResponse`: a
    /// status, a plain text (possibly empty) and Django's default content type.
    Bare(StatusCode, &'static str),
}

impl Refusal {
    pub(in crate::hc) fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self::Error(status, message.into())
    }
}

/// Django's default content type, which healthchecks.io's bare answers carry.
const DJANGO_CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// Another project's check, or a create at the project's check limit:
/// healthchecks.io's `HttpResponseForbidden()`, a 403 without a body.
pub(in crate::hc) const FORBIDDEN: Refusal = Refusal::Bare(StatusCode::FORBIDDEN, "");

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Error(status, message) => {
                (status, Json(json!({ "error": message }))).into_response()
            }
            Refusal::Bare(status, text) => (
                status,
                [(axum::http::header::CONTENT_TYPE, DJANGO_CONTENT_TYPE)],
                text,
            )
                .into_response(),
        }
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "healthchecks.io API: database error");
        Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl From<WriteError> for Refusal {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Limit => FORBIDDEN,
            WriteError::NameTaken(_) => Refusal::new(StatusCode::CONFLICT, e.to_string()),
            WriteError::Invalid(m) => Refusal::new(StatusCode::BAD_REQUEST, m),
            WriteError::Store(e) => e.into(),
        }
    }
}

pub(in crate::hc) const NOT_FOUND: Refusal =
    Refusal::Error(StatusCode::NOT_FOUND, Cow::Borrowed("not found"));

pub(in crate::hc) type HcResult = Result<Response, Refusal>;

/// The caller from `X-Api-Key`, or else from `api_key` in a JSON body, as
/// healthchecks.io reads and refuses it.
async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    body: Option<&Value>,
) -> Result<Caller, Refusal> {
    let key = match headers.get("x-api-key") {
        Some(v) => v.to_str().ok(),
        None => body.and_then(|b| b.get("api_key")).and_then(Value::as_str),
    }
    .filter(|k| !k.is_empty());
    match identify(&state.pool, state.config.admin_key.as_deref(), key).await {
        Ok(c) => Ok(c),
        Err(AuthError::MissingKey) => {
            Err(Refusal::new(StatusCode::UNAUTHORIZED, "missing api key"))
        }
        Err(AuthError::UnknownKey) => Err(Refusal::new(StatusCode::UNAUTHORIZED, "wrong api key")),
        Err(e) => {
            tracing::error!(error = %e, "healthchecks.io API: key lookup failed");
            Err(Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error",
            ))
        }
    }
}

pub(in crate::hc) struct Ctx {
    pub(in crate::hc) caller: Caller,
    pub(in crate::hc) version: ApiVersion,
    /// `http://host:port`, where the daemon is reached.
    pub(in crate::hc) base: String,
}

pub(in crate::hc) async fn ctx(
    state: &AppState,
    version: &str,
    headers: &HeaderMap,
    body: Option<&Value>,
) -> Result<Ctx, Refusal> {
    let version = ApiVersion::parse(version).ok_or(NOT_FOUND)?;
    let caller = caller(state, headers, body).await?;
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
    pub(in crate::hc) fn readonly(&self) -> bool {
        self.caller.role == Role::ReadOnly
    }

    fn view(&self, state: &AppState, check: &StoredCheck) -> CheckJson {
        let urls = Urls {
            base: &self.base,
            ping_prefix: &state.config.hc.ping_prefix,
            version: self.version,
        };
        to_check(
            &check.hb,
            check.n_pings,
            &check.fields,
            Utc::now(),
            self.readonly(),
            &urls,
        )
    }
}

/// The caller's check with UUID `code` (or, for reading, its `unique_key`):
/// 404 when none has it, 403 when it is another project's.
pub(in crate::hc) async fn fetch(
    state: &AppState,
    ctx: &Ctx,
    code: &str,
) -> Result<StoredCheck, Refusal> {
    match store::find(&state.pool, ctx.caller.project_id, code, true).await? {
        Lookup::Found(c) => Ok(*c),
        Lookup::NotFound => Err(NOT_FOUND),
        Lookup::OtherProject => Err(FORBIDDEN),
    }
}

#[utoipa::path(get, path = "/api/{version}/checks/", operation_id = "hcListChecks", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3"), ("X-Api-Key" = Option<String>, Header), ("tag" = Option<Vec<String>>, Query, description = "Only checks with every tag given (repeatable)"), ("slug" = Option<String>, Query, description = "Only checks with this slug")), responses((status = 200, description = "The project's checks", body = CheckList), (status = 401, description = "`{\"error\": \"missing api key\"}` or `wrong api key`", body = HcError), (status = 404, description = "Unknown version", body = HcError)))]
async fn list_checks(
    State(state): State<AppState>,
    Path(version): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> HcResult {
    let ctx = ctx(&state, &version, &headers, None).await?;
    let tags: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "tag")
        .map(|(_, v)| v.as_str())
        .collect();
    let slug = query.iter().find(|(k, _)| k == "slug").map(|(_, v)| v);
    let checks = store::list(&state.pool, ctx.caller.project_id)
        .await?
        .iter()
        // Every `tag` given must be among the check's tags.
        .filter(|c| tags.iter().all(|t| c.hb.tags.iter().any(|h| h == t)))
        .filter(|c| slug.is_none_or(|s| c.hb.slug == *s))
        .map(|c| ctx.view(&state, c))
        .collect();
    Ok(Json(CheckList { checks }).into_response())
}

#[utoipa::path(get, path = "/api/{version}/checks/{code}", operation_id = "hcGetCheck", tag = "healthchecks.io management API", params(("version" = String, Path), ("code" = String, Path, description = "The check's UUID, or its unique_key"), ("X-Api-Key" = Option<String>, Header)), responses((status = 200, description = "The check", body = CheckJson), (status = 401, description = "Missing or wrong key", body = HcError), (status = 403, description = "Another project's check: no body (healthchecks.io's bare 403)"), (status = 404, description = "Not found", body = HcError)))]
async fn get_check(
    State(state): State<AppState>,
    Path((version, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> HcResult {
    let ctx = ctx(&state, &version, &headers, None).await?;
    let check = fetch(&state, &ctx, &code).await?;
    Ok(Json(ctx.view(&state, &check)).into_response())
}

/// A call healthchecks.io serves to read-write keys only (its `@authorize`):
/// a read-only key is answered 401 `wrong api key`.
pub(in crate::hc) async fn read_write(
    state: &AppState,
    version: &str,
    headers: &HeaderMap,
) -> Result<Ctx, Refusal> {
    let ctx = ctx(state, version, headers, None).await?;
    if ctx.readonly() {
        return Err(Refusal::new(StatusCode::UNAUTHORIZED, "wrong api key"));
    }
    Ok(ctx)
}

/// A write: refused to read-only keys (401 `wrong api key`, as healthchecks.io
/// answers a read-only key on a write endpoint); the UUID form only.
async fn writable(
    state: &AppState,
    version: &str,
    code: &str,
    headers: &HeaderMap,
) -> Result<(Ctx, StoredCheck), Refusal> {
    let ctx = read_write(state, version, headers).await?;
    if crate::hc::ping::canonical_uuid(code).is_none() {
        return Err(NOT_FOUND);
    }
    let check = fetch(state, &ctx, code).await?;
    Ok((ctx, check))
}

#[utoipa::path(delete, path = "/api/{version}/checks/{code}", operation_id = "hcDeleteCheck", tag = "healthchecks.io management API", params(("version" = String, Path), ("code" = String, Path), ("X-Api-Key" = Option<String>, Header)), responses((status = 200, description = "The deleted check", body = CheckJson), (status = 401, description = "Missing, wrong or read-only key", body = HcError), (status = 403, description = "Another project's check: no body (healthchecks.io's bare 403)"), (status = 404, description = "Not found", body = HcError)))]
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

#[utoipa::path(post, path = "/api/{version}/checks/{code}/pause", operation_id = "hcPauseCheck", tag = "healthchecks.io management API", params(("version" = String, Path), ("code" = String, Path), ("X-Api-Key" = Option<String>, Header)), responses((status = 200, description = "The paused check", body = CheckJson), (status = 401, description = "Missing, wrong or read-only key", body = HcError), (status = 403, description = "Another project's check: no body (healthchecks.io's bare 403)"), (status = 404, description = "Not found", body = HcError)))]
async fn pause_check(
    State(state): State<AppState>,
    Path((version, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> HcResult {
    let (ctx, check) = writable(&state, &version, &code, &headers).await?;
    set_paused(&state, &ctx, &check, &code, true).await
}

#[utoipa::path(post, path = "/api/{version}/checks/{code}/resume", operation_id = "hcResumeCheck", tag = "healthchecks.io management API", params(("version" = String, Path), ("code" = String, Path), ("X-Api-Key" = Option<String>, Header)), responses((status = 200, description = "The resumed check", body = CheckJson), (status = 401, description = "Missing, wrong or read-only key", body = HcError), (status = 403, description = "Another project's check: no body (healthchecks.io's bare 403)"), (status = 404, description = "Not found", body = HcError), (status = 409, description = "`check is not paused`, as plain text (healthchecks.io's bare answer)", body = String, content_type = "text/html")))]
async fn resume_check(
    State(state): State<AppState>,
    Path((version, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> HcResult {
    let (ctx, check) = writable(&state, &version, &code, &headers).await?;
    if !check.hb.paused {
        // healthchecks.io's `HttpResponse("check is not paused", status=409)`.
        return Err(Refusal::Bare(StatusCode::CONFLICT, "check is not paused"));
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

/// A JSON body as healthchecks.io reads one: empty is `{}`, anything else must
/// parse (400 `could not parse request body`).
fn json_body(body: &Bytes) -> Result<Value, Refusal> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|_| Refusal::new(StatusCode::BAD_REQUEST, "could not parse request body"))
}

/// A write's caller: read-write keys only (401 `wrong api key` for a
/// read-only one, as healthchecks.io answers it).
async fn writer(
    state: &AppState,
    version: &str,
    headers: &HeaderMap,
    body: &Value,
) -> Result<Ctx, Refusal> {
    let ctx = ctx(state, version, headers, Some(body)).await?;
    if ctx.readonly() {
        return Err(Refusal::new(StatusCode::UNAUTHORIZED, "wrong api key"));
    }
    Ok(ctx)
}

fn spec(body: &Value) -> Result<CheckSpec, Refusal> {
    CheckSpec::parse(body).map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.0))
}

#[utoipa::path(post, path = "/api/{version}/checks/", operation_id = "hcCreateCheck", tag = "healthchecks.io management API", params(("version" = String, Path), ("X-Api-Key" = Option<String>, Header)), request_body(content = CheckFields, description = "healthchecks.io's check fields: name, slug (v3), tags, desc, timeout, grace, schedule, tz, manual_resume, methods, channels, unique, and `api_key` when no header carries it", content_type = "application/json"), responses((status = 404, description = "Unknown version", body = HcError), (status = 201, description = "Created", body = CheckJson), (status = 200, description = "`unique` matched an existing check, which was updated", body = CheckJson), (status = 400, description = "`{\"error\": \"json validation error: ...\"}` or `could not parse request body`", body = HcError), (status = 401, description = "Missing, wrong or read-only key", body = HcError), (status = 403, description = "The project's check limit is reached: no body (healthchecks.io's bare 403)"), (status = 409, description = "Another check of the project has this name", body = HcError)))]
async fn create_check(
    State(state): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> HcResult {
    let body = json_body(&body)?;
    let ctx = writer(&state, &version, &headers, &body).await?;
    let spec = spec(&body)?;
    let limit = state.config.monitor.max_heartbeats_per_project;
    let derive_slug = ctx.version != ApiVersion::V3;
    let (id, created) = store::create(
        &state.pool,
        ctx.caller.project_id,
        &spec,
        derive_slug,
        limit,
    )
    .await?;
    let check = match store::find_by_id(&state.pool, id).await? {
        Some(c) => c,
        None => return Err(NOT_FOUND),
    };
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(ctx.view(&state, &check))).into_response())
}

#[utoipa::path(post, path = "/api/{version}/checks/{code}", operation_id = "hcUpdateCheck", tag = "healthchecks.io management API", params(("version" = String, Path), ("code" = String, Path, description = "The check's UUID"), ("X-Api-Key" = Option<String>, Header)), request_body(content = CheckFields, description = "The fields to change, as for a create; fields not given are kept", content_type = "application/json"), responses((status = 200, description = "The updated check", body = CheckJson), (status = 400, description = "`json validation error: ...`", body = HcError), (status = 401, description = "Missing, wrong or read-only key", body = HcError), (status = 403, description = "Another project's check: no body (healthchecks.io's bare 403)"), (status = 404, description = "Not found", body = HcError), (status = 409, description = "Another check of the project has this name", body = HcError)))]
async fn update_check(
    State(state): State<AppState>,
    Path((version, code)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> HcResult {
    let body = json_body(&body)?;
    let ctx = writer(&state, &version, &headers, &body).await?;
    if crate::hc::ping::canonical_uuid(&code).is_none() {
        return Err(NOT_FOUND);
    }
    let check = fetch(&state, &ctx, &code).await?;
    let spec = spec(&body)?;
    let derive_slug = ctx.version != ApiVersion::V3;
    store::update(
        &state.pool,
        ctx.caller.project_id,
        check.hb.id,
        &spec,
        derive_slug,
    )
    .await?;
    let check = fetch(&state, &ctx, &code).await?;
    Ok(Json(ctx.view(&state, &check)).into_response())
}

// healthchecks.io's CORS on its Management API, as its `cors()` decorator
// (`hc/api/decorators.py`) answers: every answer of a call carries
// `Access-Control-Allow-Origin: *`, `Access-Control-Allow-Headers: X-Api-Key`,
// the path's methods and `Access-Control-Max-Age: 600`, and an `OPTIONS`
// preflight is answered 204. `status/` has no CORS there, nor here. `cors` is a
// layer on this router and `super::history::routes`'; each path's `OPTIONS`
// handler, declared beside the path's other methods so the document lists it,
// answers `preflight`.

/// The methods a Management API path serves, `OPTIONS` included, as
/// healthchecks.io lists them; None for a path without CORS (`status/`, an
/// unknown version or path).
pub(in crate::hc) fn allowed_methods(path: &str) -> Option<&'static str> {
    let (version, rest) = path.strip_prefix("/api/")?.split_once('/')?;
    ApiVersion::parse(version)?;
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["checks", ""] => Some("GET, POST, OPTIONS"),
        ["checks", code] if !code.is_empty() => Some("GET, POST, DELETE, OPTIONS"),
        ["checks", _, "pause" | "resume"] => Some("POST, OPTIONS"),
        ["checks", _, "pings" | "flips", ""]
        | ["checks", _, "pings", _, "body"]
        | ["channels" | "badges", ""] => Some("GET, OPTIONS"),
        _ => None,
    }
}

fn add_headers(resp: &mut Response, methods: &'static str) {
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("X-Api-Key"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
}

/// The layer: the CORS headers on every answer of a path that has them
/// (refusals included, as healthchecks.io's decorator wraps its auth).
pub(in crate::hc) async fn cors(req: Request, next: Next) -> Response {
    let methods = allowed_methods(req.uri().path());
    let mut resp = next.run(req).await;
    if let Some(methods) = methods {
        add_headers(&mut resp, methods);
    }
    resp
}

/// The answer to an `OPTIONS` request: 204 with the headers; None for a path
/// without CORS (an unknown version), which the caller answers 404.
pub(in crate::hc) fn preflight(uri: &Uri) -> Option<Response> {
    let methods = allowed_methods(uri.path())?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    add_headers(&mut resp, methods);
    Some(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_path_lists_the_methods_healthchecks_io_serves_on_it() {
        let one = "/api/v3/checks/5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278";
        assert_eq!(
            allowed_methods("/api/v1/checks/"),
            Some("GET, POST, OPTIONS")
        );
        assert_eq!(allowed_methods(one), Some("GET, POST, DELETE, OPTIONS"));
        assert_eq!(
            allowed_methods(&format!("{one}/pause")),
            Some("POST, OPTIONS")
        );
        for get in [
            format!("{one}/pings/"),
            format!("{one}/pings/3/body"),
            format!("{one}/flips/"),
            "/api/v2/channels/".into(),
            "/api/v2/badges/".into(),
        ] {
            assert_eq!(allowed_methods(&get), Some("GET, OPTIONS"), "{get}");
        }
        for none in [
            "/api/v3/status/",
            "/api/v9/checks/",
            "/api/heartbeats",
            "/ping/x",
        ] {
            assert_eq!(allowed_methods(none), None, "{none}");
        }
    }
}
