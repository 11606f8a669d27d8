//! healthchecks.io's Management API, the reads beyond a check itself:
//! `GET checks/<uuid>/pings/`, `GET checks/<uuid>/pings/<n>/body`,
//! `GET checks/<uuid|unique_key>/flips/`, `GET channels/`, `GET badges/` and
//! `GET status/`, under `/api/v1/`, `/api/v2/` and `/api/v3/`.
//!
//! Keys as healthchecks.io takes them (see `crate::hc::api_routes`): pings, bodies
//! and channels need a read-write key (a read-only one is answered 401 `wrong
//! api key`); flips and badges take either; `status/` takes none. The
//! answers' shapes are the domain's (`super`).

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::hc::api_routes::{
    cors, ctx, fetch, preflight, read_write, HcError, HcResult, Refusal, NOT_FOUND,
};
use crate::hc::badge::{self, BadgeUrls};
use crate::hc::check::ApiVersion;
use crate::hc::history::{self, BodyUrls, ChannelList, FlipFilter, FlipList, PingList};
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_pings, pings_preflight))
        .routes(routes!(ping_body, body_preflight))
        .routes(routes!(list_flips, flips_preflight))
        .routes(routes!(list_channels, channels_preflight))
        .routes(routes!(list_badges, badges_preflight))
        .routes(routes!(status))
        .layer(axum::middleware::from_fn(cors))
}

#[utoipa::path(options, path = "/api/{version}/checks/{code}/pings/", operation_id = "hcPingsPreflight", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3"), ("code" = String, Path)), responses((status = 204, description = "CORS preflight: `Access-Control-Allow-Origin: *`, `Access-Control-Allow-Headers: X-Api-Key`, the path's methods in `Access-Control-Allow-Methods`, `Access-Control-Max-Age: 600`"), (status = 404, description = "Unknown version", body = HcError)))]
async fn pings_preflight(uri: Uri) -> Response {
    preflight(&uri).unwrap_or_else(|| NOT_FOUND.into_response())
}

#[utoipa::path(options, path = "/api/{version}/checks/{code}/pings/{n}/body", operation_id = "hcPingBodyPreflight", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3"), ("code" = String, Path), ("n" = String, Path)), responses((status = 204, description = "CORS preflight: `Access-Control-Allow-Origin: *`, `Access-Control-Allow-Headers: X-Api-Key`, the path's methods in `Access-Control-Allow-Methods`, `Access-Control-Max-Age: 600`"), (status = 404, description = "Unknown version", body = HcError)))]
async fn body_preflight(uri: Uri) -> Response {
    preflight(&uri).unwrap_or_else(|| NOT_FOUND.into_response())
}

#[utoipa::path(options, path = "/api/{version}/checks/{code}/flips/", operation_id = "hcFlipsPreflight", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3"), ("code" = String, Path)), responses((status = 204, description = "CORS preflight: `Access-Control-Allow-Origin: *`, `Access-Control-Allow-Headers: X-Api-Key`, the path's methods in `Access-Control-Allow-Methods`, `Access-Control-Max-Age: 600`"), (status = 404, description = "Unknown version", body = HcError)))]
async fn flips_preflight(uri: Uri) -> Response {
    preflight(&uri).unwrap_or_else(|| NOT_FOUND.into_response())
}

#[utoipa::path(options, path = "/api/{version}/channels/", operation_id = "hcChannelsPreflight", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3")), responses((status = 204, description = "CORS preflight: `Access-Control-Allow-Origin: *`, `Access-Control-Allow-Headers: X-Api-Key`, the path's methods in `Access-Control-Allow-Methods`, `Access-Control-Max-Age: 600`"), (status = 404, description = "Unknown version", body = HcError)))]
async fn channels_preflight(uri: Uri) -> Response {
    preflight(&uri).unwrap_or_else(|| NOT_FOUND.into_response())
}

#[utoipa::path(options, path = "/api/{version}/badges/", operation_id = "hcBadgesPreflight", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3")), responses((status = 204, description = "CORS preflight: `Access-Control-Allow-Origin: *`, `Access-Control-Allow-Headers: X-Api-Key`, the path's methods in `Access-Control-Allow-Methods`, `Access-Control-Max-Age: 600`"), (status = 404, description = "Unknown version", body = HcError)))]
async fn badges_preflight(uri: Uri) -> Response {
    preflight(&uri).unwrap_or_else(|| NOT_FOUND.into_response())
}

#[utoipa::path(get, path = "/api/{version}/checks/{code}/pings/", operation_id = "hcListPings", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3"), ("code" = String, Path, description = "The check's UUID"), ("X-Api-Key" = Option<String>, Header)), responses((status = 200, description = "The check's logged pings, newest first", body = PingList), (status = 401, description = "Missing, wrong or read-only key", body = HcError), (status = 403, description = "Another project's check: no body (healthchecks.io's bare 403)"), (status = 404, description = "Not found", body = HcError)))]
async fn list_pings(
    State(state): State<AppState>,
    Path((version, code)): Path<(String, String)>,
    headers: HeaderMap,
) -> HcResult {
    let ctx = read_write(&state, &version, &headers).await?;
    if crate::hc::ping::canonical_uuid(&code).is_none() {
        return Err(NOT_FOUND);
    }
    let check = fetch(&state, &ctx, &code).await?;
    let urls = BodyUrls {
        base: &ctx.base,
        version: ctx.version,
        uuid: check.hb.ping_uuid,
    };
    let kept = state.config.monitor.pings_kept;
    let list = history::pings(&state.pool, check.hb.id, kept, &urls).await?;
    Ok(Json(list).into_response())
}

#[utoipa::path(get, path = "/api/{version}/checks/{code}/pings/{n}/body", operation_id = "hcPingBody", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3"), ("code" = String, Path, description = "The check's UUID"), ("n" = String, Path, description = "The ping's number (`n` in its JSON)"), ("X-Api-Key" = Option<String>, Header)), responses((status = 200, description = "The ping's body as it was kept", body = String, content_type = "text/plain"), (status = 401, description = "Missing, wrong or read-only key", body = HcError), (status = 403, description = "Another project's check: no body (healthchecks.io's bare 403)"), (status = 404, description = "No such check, no such ping kept, or a ping without a body", body = HcError)))]
async fn ping_body(
    State(state): State<AppState>,
    Path((version, code, n)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> HcResult {
    let ctx = read_write(&state, &version, &headers).await?;
    if crate::hc::ping::canonical_uuid(&code).is_none() {
        return Err(NOT_FOUND);
    }
    let check = fetch(&state, &ctx, &code).await?;
    // healthchecks.io's `<int:n>` (digits only, so no sign): anything else is
    // a path it does not serve.
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NOT_FOUND);
    }
    let n: i64 = n.parse().map_err(|_| NOT_FOUND)?;
    match history::ping_body(&state.pool, check.hb.id, n).await? {
        Some(body) => {
            // Exactly `text/plain`, as healthchecks.io documents and answers it.
            Ok(([(header::CONTENT_TYPE, "text/plain")], body).into_response())
        }
        None => Err(NOT_FOUND),
    }
}

#[utoipa::path(get, path = "/api/{version}/checks/{code}/flips/", operation_id = "hcListFlips", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3"), ("code" = String, Path, description = "The check's UUID, or its unique_key"), ("X-Api-Key" = Option<String>, Header), ("seconds" = Option<i64>, Query, description = "Only flips of the last `seconds` (0 to 31536000; 0: all)"), ("start" = Option<i64>, Query, description = "Only flips at or after this UNIX time (0 to 10000000000)"), ("end" = Option<i64>, Query, description = "Only flips before this UNIX time (0 to 10000000000)")), responses((status = 200, description = "The check's flips to up (`up: 1`) and down (`up: 0`), newest first", body = FlipList), (status = 400, description = "`{\"error\": \"invalid query parameter: ...\"}`", body = HcError), (status = 401, description = "Missing or wrong key", body = HcError), (status = 403, description = "Another project's check: no body (healthchecks.io's bare 403)"), (status = 404, description = "Not found", body = HcError)))]
async fn list_flips(
    State(state): State<AppState>,
    Path((version, code)): Path<(String, String)>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> HcResult {
    let ctx = ctx(&state, &version, &headers, None).await?;
    let check = fetch(&state, &ctx, &code).await?;
    let filter = FlipFilter::parse(&query)
        .map_err(|e| Refusal::new(StatusCode::BAD_REQUEST, e.to_string()))?;
    let list = history::flips(&state.pool, check.hb.id, &filter, Utc::now()).await?;
    Ok(Json(list).into_response())
}

#[utoipa::path(get, path = "/api/{version}/channels/", operation_id = "hcListChannels", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3"), ("X-Api-Key" = Option<String>, Header)), responses((status = 200, description = "The project's notification channels", body = ChannelList), (status = 401, description = "Missing, wrong or read-only key", body = HcError), (status = 404, description = "Unknown version", body = HcError)))]
async fn list_channels(
    State(state): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> HcResult {
    let ctx = read_write(&state, &version, &headers).await?;
    let list = history::channels(&state.pool, ctx.caller.project_id).await?;
    Ok(Json(list).into_response())
}

/// `GET badges/`: every tag's badge URLs, and `*` for the whole project.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct BadgeMap {
    /// By tag; `*` is the whole project.
    pub badges: std::collections::BTreeMap<String, BadgeUrls>,
}

#[utoipa::path(get, path = "/api/{version}/badges/", operation_id = "hcListBadges", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3"), ("X-Api-Key" = Option<String>, Header)), responses((status = 200, description = "Badge URLs by tag (`*`: the whole project), each as svg, svg3, json, json3, shields, shields3", body = BadgeMap), (status = 401, description = "Missing or wrong key", body = HcError), (status = 404, description = "Unknown version", body = HcError)))]
async fn list_badges(
    State(state): State<AppState>,
    Path(version): Path<String>,
    headers: HeaderMap,
) -> HcResult {
    let ctx = ctx(&state, &version, &headers, None).await?;
    let Some((project, tags)) = badge::project_badges(&state.pool, ctx.caller.project_id).await?
    else {
        return Err(NOT_FOUND);
    };
    let badges = std::iter::once("*".to_string())
        .chain(tags)
        .map(|tag| {
            let urls = project.urls(&ctx.base, &tag);
            (tag, urls)
        })
        .collect();
    Ok(Json(BadgeMap { badges }).into_response())
}

#[utoipa::path(get, path = "/api/{version}/status/", operation_id = "hcStatus", tag = "healthchecks.io management API", params(("version" = String, Path, description = "v1, v2 or v3")), responses((status = 200, description = "`OK`: the database answers", body = String, content_type = "text/plain"), (status = 404, description = "Unknown version", body = HcError), (status = 503, description = "The database does not answer", body = String, content_type = "text/plain")))]
async fn status(State(state): State<AppState>, Path(version): Path<String>) -> Response {
    if ApiVersion::parse(&version).is_none() {
        return NOT_FOUND.into_response();
    }
    let plain = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if history::database_answers(&state.pool).await {
        (StatusCode::OK, plain, "OK").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            plain,
            "database unavailable",
        )
            .into_response()
    }
}
