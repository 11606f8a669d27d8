//! Badges over HTTP (the domain is `super`, `crate::hc::badge`):
//!
//! - `GET /badge/{badge_key}/{signature}/{tag}.{svg|json|shields}` and
//!   `GET /badge/{badge_key}/{signature}.{svg|json|shields}` (the whole
//!   project), healthchecks.io's URLs: no key, a `-2` after the signature for
//!   the 2-state style;
//! - `GET /b/{2|3}/{badge_uuid}.{svg|json|shields}`, one heartbeat's badge
//!   (its check JSON's `badge_url`);
//! - `GET /api/badges`, Heartbeat's own keyed listing of the caller project's
//!   badges with a Markdown line each, which the dashboard shows.
//!
//! Badges are cached briefly (`Cache-Control: public, max-age=30`) and may be
//! embedded anywhere (`Access-Control-Allow-Origin: *`). A URL that names no
//! badge answers Heartbeat's JSON 404, the same whether the key, the signature
//! or the tag is wrong, so a guess learns nothing.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult, NoQuery};
use crate::hc::badge::{self, BadgeProject, BadgeUrls, Format};
use crate::hc::store::StoreError;
use crate::state::AppState;

/// The public badge URLs.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tag_badge))
        .routes(routes!(project_badge))
        .routes(routes!(check_badge))
}

/// `GET /api/badges`, merged under the `/api` key layer.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Pool(e) => e.into(),
            StoreError::Db(e) => e.into(),
        }
    }
}

fn no_badge() -> ApiError {
    ApiError::not_found("no such badge")
}

/// `<name>.<format>`, split at the last dot.
fn split_file(file: &str) -> ApiResult<(&str, Format)> {
    let (name, ext) = file.rsplit_once('.').ok_or_else(no_badge)?;
    Ok((name, Format::parse(ext).ok_or_else(no_badge)?))
}

fn base_url(state: &AppState) -> String {
    state
        .config
        .monitor
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", state.config.bind))
        .trim_end_matches('/')
        .to_string()
}

/// The badge document with its headers.
fn answer(format: Format, label: &str, tally: &badge::Tally) -> Response {
    let (body, content_type) = badge::render(format, label, tally);
    let mut resp = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("public, max-age={}", badge::MAX_AGE_SECONDS))
            .expect("ASCII"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    resp
}

/// A tag's badge (`*`: the whole project) after its signature is checked.
async fn serve(
    state: &AppState,
    badge_key: &str,
    signature: &str,
    tag: &str,
    format: Format,
) -> ApiResult<Response> {
    let project = badge::project_by_key(&state.pool, badge_key)
        .await?
        .ok_or_else(no_badge)?;
    let three = badge::check_signature(&project.secret, tag, signature).ok_or_else(no_badge)?;
    let filter = (tag != "*").then_some(tag);
    let statuses = badge::statuses(&state.pool, project.project_id, filter, Utc::now()).await?;
    let tally = badge::tally(statuses, three);
    Ok(answer(format, badge::label(tag), &tally))
}

#[utoipa::path(get, path = "/badge/{badge_key}/{signature}/{file}", operation_id = "hcTagBadge", tag = "badges", params(("badge_key" = String, Path, description = "The project's badge key"), ("signature" = String, Path, description = "The tag's signature; `-2` after it for the 2-state style"), ("file" = String, Path, description = "`<tag>.svg`, `<tag>.json` or `<tag>.shields` (the tag percent-encoded)")), responses((status = 200, description = "The badge of the project's heartbeats with this tag: an SVG image, `{status, total, grace, down}`, or a shields.io endpoint document", content((String = "image/svg+xml"), (BadgeJson = "application/json"))), (status = 404, description = "No such badge", body = crate::error::ErrorEnvelope)))]
async fn tag_badge(
    State(state): State<AppState>,
    Path((badge_key, signature, file)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let (tag, format) = split_file(&file)?;
    serve(&state, &badge_key, &signature, tag, format).await
}

#[utoipa::path(get, path = "/badge/{badge_key}/{file}", operation_id = "hcProjectBadge", tag = "badges", params(("badge_key" = String, Path, description = "The project's badge key"), ("file" = String, Path, description = "`<signature>.svg`, `.json` or `.shields`; `-2` after the signature for the 2-state style")), responses((status = 200, description = "The badge of all the project's heartbeats", content((String = "image/svg+xml"), (BadgeJson = "application/json"))), (status = 404, description = "No such badge", body = crate::error::ErrorEnvelope)))]
async fn project_badge(
    State(state): State<AppState>,
    Path((badge_key, file)): Path<(String, String)>,
) -> ApiResult<Response> {
    let (signature, format) = split_file(&file)?;
    serve(&state, &badge_key, signature, "*", format).await
}

#[utoipa::path(get, path = "/b/{states}/{file}", operation_id = "hcCheckBadge", tag = "badges", params(("states" = String, Path, description = "`2` (up, down) or `3` (up, late, down)"), ("file" = String, Path, description = "`<badge_uuid>.svg`, `.json` or `.shields`")), responses((status = 200, description = "One heartbeat's badge, labelled with its name", content((String = "image/svg+xml"), (BadgeJson = "application/json"))), (status = 404, description = "No such badge", body = crate::error::ErrorEnvelope)))]
async fn check_badge(
    State(state): State<AppState>,
    Path((states, file)): Path<(String, String)>,
) -> ApiResult<Response> {
    let three = match states.as_str() {
        "2" => false,
        "3" => true,
        _ => return Err(no_badge()),
    };
    let (id, format) = split_file(&file)?;
    let id = Uuid::try_parse(id).map_err(|_| no_badge())?;
    let hb = badge::heartbeat_by_badge(&state.pool, id)
        .await?
        .ok_or_else(no_badge)?;
    let tally = badge::tally([hb.evaluate(Utc::now()).status], three);
    Ok(answer(format, &hb.name, &tally))
}

/// One badge of `GET /api/badges`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct BadgeView {
    /// The tag, or `*` for every heartbeat of the project.
    pub tag: String,
    #[serde(flatten)]
    pub urls: BadgeUrls,
    /// `![<tag>](<svg url>)`, to paste into a README.
    pub markdown: String,
}

/// `GET /api/badges`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct BadgeList {
    /// `*` first, then the tags in order.
    pub badges: Vec<BadgeView>,
}

#[utoipa::path(get, path = "/api/badges", operation_id = "listBadges", tag = "badges", responses((status = 200, description = "The caller project's badges: one for the whole project (`*`) and one per tag, each in every format and style, with a Markdown line", body = BadgeList)), security((), ("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Response> {
    let (project, tags): (BadgeProject, _) = badge::project_badges(&state.pool, caller.project_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such project"))?;
    let base = base_url(&state);
    let badges = std::iter::once("*".to_string())
        .chain(tags)
        .map(|tag| {
            let urls = project.urls(&base, &tag);
            let markdown = badge::markdown(badge::label(&tag), &urls);
            BadgeView {
                tag,
                urls,
                markdown,
            }
        })
        .collect();
    Ok(ApiJson(BadgeList { badges }).into_response())
}

/// A badge as JSON, what `.json` and `.shields` answer (the document's schema
/// only; the domain renders them).
#[derive(utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum BadgeJson {
    /// `.json`: healthchecks.io's counts.
    Counts(BadgeCounts),
    /// `.shields`: a shields.io endpoint document.
    Shields(ShieldsEndpoint),
}

/// `{status, total, grace, down}`: the badge's status and how many of its checks
/// there are, late (`grace`) and down.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct BadgeCounts {
    /// `up`, `late` or `down`.
    status: String,
    total: u32,
    grace: u32,
    down: u32,
}

/// shields.io's endpoint badge: <https://shields.io/badges/endpoint-badge>.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ShieldsEndpoint {
    #[schema(rename = "schemaVersion")]
    schema_version: u32,
    label: String,
    message: String,
    color: String,
}
