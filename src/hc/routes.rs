//! healthchecks.io's ping URLs over HTTP: `/ping/<uuid>`, `/ping/<ping_key>/<slug>`
//! (with `?create=1`), and `/ping/<hb_token>` as an alias of `/hb/<token>`, each
//! with `/start`, `/fail`, `/log` or `/<exit-status>`, by HEAD, GET or POST.
//!
//! Answers are healthchecks.io's: plain text without a trailing newline (`OK`,
//! `Created`, `not found`, `ambiguous slug`, `invalid url format`, `invalid uuid
//! format`), with `Ping-Body-Limit`, `Access-Control-Allow-Origin: *` and no
//! caching. The token alias answers exactly as `/hb/` does. Routes are declared
//! at `/ping`; another `hc.ping_prefix` is mapped onto them by [`with_prefix`].

use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::ping::{
    parse_hc_rid, parse_path, resolve_slug, wants_create, HcUrlError, ParsedPing, PingAddress,
    SlugTarget,
};
use super::DEFAULT_PING_PREFIX;
use crate::monitor::heartbeat::HeartbeatToken;
use crate::monitor::ping::PingOutcome;
use crate::monitor::ping_routes::{self, text, Sent};
use crate::state::AppState;

/// `/ping/...`: plain text, no auth, outside the JSON envelope. One handler
/// reads every form from the path; the four routes exist because axum matches
/// segment counts, and each is documented by its own annotation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ping_one))
        .routes(routes!(ping_slash))
        .routes(routes!(ping_two))
        .routes(routes!(ping_three))
}

/// Serves `router` with the ping routes moved from `/ping` to `prefix`: a
/// request under `prefix` is rewritten to `/ping` before routing, and `/ping`
/// itself is no longer served. With the default prefix `router` is returned
/// as it is, so no request pays for the rewrite.
pub fn with_prefix(router: Router, prefix: &str) -> Router {
    if prefix == DEFAULT_PING_PREFIX {
        return router;
    }
    let prefix = prefix.to_string();
    let rewrite = move |mut req: Request| {
        let path = req.uri().path();
        let moved = if let Some(rest) = path.strip_prefix(prefix.as_str()) {
            rest.starts_with('/')
                .then(|| format!("{DEFAULT_PING_PREFIX}{rest}"))
        } else if path == DEFAULT_PING_PREFIX
            || path.starts_with(&format!("{DEFAULT_PING_PREFIX}/"))
        {
            // Not served under the default prefix: the router's fallback answers.
            Some(format!("/-{path}"))
        } else {
            None
        };
        if let Some(path) = moved {
            let pq = match req.uri().query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            let mut parts = req.uri().clone().into_parts();
            if let Ok(pq) = pq.parse() {
                parts.path_and_query = Some(pq);
                if let Ok(uri) = Uri::from_parts(parts) {
                    *req.uri_mut() = uri;
                }
            }
        }
        req
    };
    Router::new().fallback_service(
        tower::ServiceBuilder::new()
            .map_request(rewrite)
            .service(router),
    )
}

#[utoipa::path(method(get, post, head), path = "/ping/{key}", operation_id = "hcPing", tag = "healthchecks.io pings", params(("key" = String, Path, description = "A check UUID (`uuid` in heartbeat JSON), or an hb_ token"), ("rid" = Option<uuid::Uuid>, Query, description = "Run id (a UUID) pairing a start with its finish")), request_body(content = Option<String>, description = "Optional output, truncated at the ping body limit", content_type = "text/plain"), responses((status = 200, description = "`OK`: recorded (committed)", body = String, content_type = "text/plain"), (status = 400, description = "`invalid uuid format` (rid)", body = String, content_type = "text/plain"), (status = 404, description = "`not found`", body = String, content_type = "text/plain"), (status = 503, description = "Database unavailable; retry", body = String, content_type = "text/plain")))]
async fn ping_one(state: State<AppState>, query: RawQuery, req: Request) -> Response {
    ping(state, query, req).await
}

#[utoipa::path(method(get, post, head), path = "/ping/{key}/", operation_id = "hcPingSlash", tag = "healthchecks.io pings", params(("key" = String, Path, description = "A check UUID, or an hb_ token"), ("rid" = Option<uuid::Uuid>, Query)), request_body(content = Option<String>, content_type = "text/plain"), responses((status = 200, description = "`OK`: recorded (committed)", body = String, content_type = "text/plain"), (status = 400, description = "`invalid uuid format` (rid)", body = String, content_type = "text/plain"), (status = 404, description = "`not found`", body = String, content_type = "text/plain"), (status = 503, description = "Database unavailable; retry", body = String, content_type = "text/plain")))]
async fn ping_slash(state: State<AppState>, query: RawQuery, req: Request) -> Response {
    ping(state, query, req).await
}

#[utoipa::path(method(get, post, head), path = "/ping/{key}/{second}", operation_id = "hcPingTwo", tag = "healthchecks.io pings", params(("key" = String, Path, description = "A check UUID or an hb_ token (then `second` is a suffix), or a project's ping_key (then `second` is a slug)"), ("second" = String, Path, description = "start, fail, log or an exit status 0-255; or a slug (a-z, 0-9, -, _)"), ("rid" = Option<uuid::Uuid>, Query), ("create" = Option<String>, Query, description = "`1`: a slug URL creates its missing check")), request_body(content = Option<String>, content_type = "text/plain"), responses((status = 200, description = "`OK`: recorded (committed)", body = String, content_type = "text/plain"), (status = 201, description = "`Created`: `?create=1` created the check, and the ping is recorded", body = String, content_type = "text/plain"), (status = 400, description = "`invalid url format` (exit status above 255, uppercase slug) or `invalid uuid format` (rid)", body = String, content_type = "text/plain"), (status = 404, description = "`not found`", body = String, content_type = "text/plain"), (status = 409, description = "`ambiguous slug`: several checks have it", body = String, content_type = "text/plain"), (status = 503, description = "Database unavailable; retry", body = String, content_type = "text/plain")))]
async fn ping_two(state: State<AppState>, query: RawQuery, req: Request) -> Response {
    ping(state, query, req).await
}

#[utoipa::path(method(get, post, head), path = "/ping/{key}/{second}/{suffix}", operation_id = "hcPingThree", tag = "healthchecks.io pings", params(("key" = String, Path, description = "A project's ping_key"), ("second" = String, Path, description = "A slug (a-z, 0-9, -, _)"), ("suffix" = String, Path, description = "start, fail, log or an exit status 0-255"), ("rid" = Option<uuid::Uuid>, Query), ("create" = Option<String>, Query, description = "`1`: create the missing check")), request_body(content = Option<String>, content_type = "text/plain"), responses((status = 200, description = "`OK`: recorded (committed)", body = String, content_type = "text/plain"), (status = 201, description = "`Created`", body = String, content_type = "text/plain"), (status = 400, description = "`invalid url format` or `invalid uuid format`", body = String, content_type = "text/plain"), (status = 404, description = "`not found`", body = String, content_type = "text/plain"), (status = 409, description = "`ambiguous slug`", body = String, content_type = "text/plain"), (status = 503, description = "Database unavailable; retry", body = String, content_type = "text/plain")))]
async fn ping_three(state: State<AppState>, query: RawQuery, req: Request) -> Response {
    ping(state, query, req).await
}

/// A healthchecks.io answer: its text, its headers.
fn answer(status: StatusCode, body: &'static str, limit: usize) -> Response {
    with_hc_headers(text(status, body, limit))
}

fn with_hc_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=0, no-cache, no-store, must-revalidate, private"),
    );
    resp
}

fn url_error(e: HcUrlError, limit: usize) -> Response {
    let (status, body) = match e {
        HcUrlError::InvalidFormat => (StatusCode::BAD_REQUEST, "invalid url format"),
        HcUrlError::InvalidRid => (StatusCode::BAD_REQUEST, "invalid uuid format"),
        HcUrlError::NotFound => (StatusCode::NOT_FOUND, "not found"),
    };
    answer(status, body, limit)
}

fn unavailable(limit: usize) -> Response {
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        "database unavailable, retry",
        limit,
    )
}

async fn ping(State(state): State<AppState>, RawQuery(query): RawQuery, req: Request) -> Response {
    let limit = state.config.monitor.ping_body_limit_bytes;
    let path = req.uri().path();
    let rest = path
        .strip_prefix(DEFAULT_PING_PREFIX)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or_default();
    let segments: Vec<&str> = rest.split('/').collect();
    if let Some(token) = segments.first().and_then(|t| HeartbeatToken::parse(t)) {
        // The `/hb/` alias: its answers (suffix errors included), plus the
        // healthchecks.io headers.
        let suffix = match segments[1..] {
            [] | [""] => None,
            [s] | [s, ""] => Some(s.to_string()),
            _ => return url_error(HcUrlError::NotFound, limit),
        };
        let resp = ping_routes::handle(state, token.as_str().to_string(), suffix, query, req).await;
        return with_hc_headers(resp);
    }
    let parsed = match parse_path(&segments) {
        Ok(p) => p,
        Err(e) => return url_error(e, limit),
    };
    let ParsedPing {
        address,
        kind,
        exit_code,
    } = parsed;
    let (token, created) = match address {
        // Answered above, before the suffix is read the healthchecks.io way.
        PingAddress::Token(token) => (token, false),
        PingAddress::Uuid(uuid) => {
            let rid = match parse_hc_rid(query.as_deref()) {
                Ok(r) => r,
                Err(e) => return url_error(e, limit),
            };
            let token = match state.hc_uuids.resolve(&state.pool, uuid).await {
                Ok(Some(t)) => t,
                Ok(None) => return answer(StatusCode::NOT_FOUND, "not found", limit),
                Err(_) => return unavailable(limit),
            };
            let resp = record(&state, token, kind, exit_code, rid, req, limit, false).await;
            if resp.status() == StatusCode::NOT_FOUND {
                state.hc_uuids.forget(uuid);
            }
            return resp;
        }
        PingAddress::Slug { ping_key, slug } => {
            if let Err(e) = parse_hc_rid(query.as_deref()) {
                return url_error(e, limit);
            }
            let create = wants_create(query.as_deref());
            let max = state.config.monitor.max_heartbeats_per_project;
            match resolve_slug(&state.pool, &ping_key, &slug, create, max).await {
                Ok(SlugTarget::Found(t)) => (t, false),
                Ok(SlugTarget::Created(t)) => (t, true),
                Ok(SlugTarget::NotFound) => {
                    return answer(StatusCode::NOT_FOUND, "not found", limit)
                }
                Ok(SlugTarget::Ambiguous) => {
                    return answer(StatusCode::CONFLICT, "ambiguous slug", limit)
                }
                Err(_) => return unavailable(limit),
            }
        }
    };
    let rid = parse_hc_rid(query.as_deref()).ok().flatten();
    record(&state, token, kind, exit_code, rid, req, limit, created).await
}

/// Records the ping and answers `OK` (or `Created` for a check `?create=1`
/// just made).
#[allow(clippy::too_many_arguments)]
async fn record(
    state: &AppState,
    token: HeartbeatToken,
    kind: crate::monitor::ping::PingKind,
    exit_code: Option<i32>,
    rid: Option<uuid::Uuid>,
    req: Request,
    limit: usize,
    created: bool,
) -> Response {
    let ping = Sent::read(req, limit)
        .await
        .into_ping(token, kind, exit_code, rid);
    match ping_routes::record(state, ping).await {
        Ok(PingOutcome::Recorded) if created => answer(StatusCode::CREATED, "Created", limit),
        Ok(PingOutcome::Recorded) => answer(StatusCode::OK, "OK", limit),
        Ok(PingOutcome::UnknownToken) => answer(StatusCode::NOT_FOUND, "not found", limit),
        Err(_) => unavailable(limit),
    }
}
