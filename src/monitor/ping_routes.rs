//! The public ping protocol over HTTP: `/hb/{token}`, with `/start`, `/fail`,
//! `/log` and exit-code suffixes. `/ping/...` (healthchecks.io's URLs, and
//! `/ping/{token}` as an alias) is `crate::hc::routes`, which reuses the pieces
//! here.
//!
//! Cron clients read these answers, so they are plain text (`OK`, `not found`),
//! never the JSON envelope, and every answer announces the body limit in
//! `Ping-Body-Limit`. A 200 means the ping is committed: the handler waits for
//! the group-commit writer (`super::ping`), and answers 503 when the database
//! could not take the batch, so clients retry. No key is needed.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use futures::StreamExt;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::heartbeat::HeartbeatToken;
use super::ping::{
    parse_rid, parse_suffix, PingKind, PingOutcome, PingRecord, PingUrlError, PingWriteError,
};
use crate::state::AppState;

/// `/hb/...`: plain text, no auth, outside the JSON envelope. `/ping/{token}`
/// answers the same (`crate::hc::routes` sends tokens here). Each path's GET,
/// POST and HEAD come from its handler's annotation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ping))
        .routes(routes!(ping_suffix))
}

#[utoipa::path(method(get, post, head), path = "/hb/{token}", operation_id = "ping", tag = "pings", params(("token" = String, Path, pattern = "^hb_[A-Za-z0-9_-]{16}$", description = "hb_ + 16 URL-safe base64 characters"), ("rid" = Option<uuid::Uuid>, Query, description = "Run id pairing a start with its finish")), request_body(content = Option<String>, description = "Optional output, truncated at the ping body limit", content_type = "text/plain"), responses((status = 200, description = "Recorded (committed)", body = String, content_type = "text/plain"), (status = 400, description = "Bad suffix or rid", body = String, content_type = "text/plain"), (status = 404, description = "Unknown token", body = String, content_type = "text/plain"), (status = 503, description = "Database unavailable; retry", body = String, content_type = "text/plain")))]
async fn ping(
    State(state): State<AppState>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Response {
    handle(state, token, None, query, req).await
}

#[utoipa::path(method(get, post, head), path = "/hb/{token}/{suffix}", operation_id = "pingWithSuffix", tag = "pings", params(("token" = String, Path, pattern = "^hb_[A-Za-z0-9_-]{16}$"), ("suffix" = String, Path, pattern = "^(start|fail|log|0*([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5]))$", description = "start, fail, log or an exit code 0-255 (0 = success)"), ("rid" = Option<uuid::Uuid>, Query)), request_body(content = Option<String>, content_type = "text/plain"), responses((status = 200, description = "Recorded (committed)", body = String, content_type = "text/plain"), (status = 400, description = "Bad suffix or rid", body = String, content_type = "text/plain"), (status = 404, description = "Unknown token", body = String, content_type = "text/plain"), (status = 503, description = "Database unavailable; retry", body = String, content_type = "text/plain")))]
async fn ping_suffix(
    State(state): State<AppState>,
    Path((token, suffix)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    req: Request,
) -> Response {
    handle(state, token, Some(suffix), query, req).await
}

/// A plain-text answer announcing the body limit.
pub(crate) fn text(status: StatusCode, body: impl IntoResponse, limit: usize) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert("ping-body-limit", HeaderValue::from(limit));
    resp
}

/// Answers a `/hb/{token}[/{suffix}]` ping.
pub(crate) async fn handle(
    state: AppState,
    token: String,
    suffix: Option<String>,
    query: Option<String>,
    req: Request,
) -> Response {
    let limit = state.config.monitor.ping_body_limit_bytes;
    let (kind, exit_code) = match parse_suffix(suffix.as_deref()) {
        Ok(k) => k,
        Err(e) => return bad_request(e, limit),
    };
    let rid = match parse_rid(query.as_deref()) {
        Ok(r) => r,
        Err(e) => return bad_request(e, limit),
    };
    let Some(token) = HeartbeatToken::parse(&token) else {
        return text(StatusCode::NOT_FOUND, "not found\n", limit);
    };
    let ping = Sent::read(req, limit)
        .await
        .into_ping(token, kind, exit_code, rid);
    match record(&state, ping).await {
        Ok(PingOutcome::Recorded) => text(StatusCode::OK, "OK\n", limit),
        Ok(PingOutcome::UnknownToken) => text(StatusCode::NOT_FOUND, "not found\n", limit),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "database unavailable, retry\n",
            limit,
        ),
    }
}

/// What a ping request carries beyond its URL.
pub(crate) struct Sent {
    /// When it arrived.
    pub at: chrono::DateTime<Utc>,
    /// The client's address.
    pub source: Option<String>,
    pub user_agent: Option<String>,
    /// The body's first `limit` bytes.
    pub body: Option<String>,
    /// The listener's scheme ([`LISTENER_SCHEME`]).
    pub scheme: &'static str,
    /// `GET`, `HEAD` or `POST`: the only methods the ping routes serve.
    pub method: Option<&'static str>,
}

/// The scheme pings are recorded with. The daemon's listener speaks plain
/// HTTP (TLS, when there is any, ends at a proxy in front of it), and it has no
/// setting naming trusted proxies, so an `X-Forwarded-Proto` header is not
/// believed: any client could send one.
pub(crate) const LISTENER_SCHEME: &str = "http";

/// A ping request's method as the static text the batch writer binds.
fn method_name(method: &axum::http::Method) -> Option<&'static str> {
    use axum::http::Method;
    match *method {
        Method::GET => Some("GET"),
        Method::HEAD => Some("HEAD"),
        Method::POST => Some("POST"),
        _ => None,
    }
}

impl Sent {
    pub(crate) async fn read(req: Request, limit: usize) -> Self {
        let at = Utc::now();
        let source = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let user_agent = req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(200).collect());
        let method = method_name(req.method());
        let body = read_truncated(req.into_body(), limit).await;
        Self {
            at,
            source,
            user_agent,
            body,
            scheme: LISTENER_SCHEME,
            method,
        }
    }

    /// The ping this request makes of `token`, whichever URL form named it.
    pub(crate) fn into_ping(
        self,
        token: HeartbeatToken,
        kind: PingKind,
        exit_code: Option<i32>,
        rid: Option<uuid::Uuid>,
    ) -> PingRecord {
        PingRecord {
            token,
            kind,
            exit_code,
            rid,
            at: self.at,
            source: self.source,
            user_agent: self.user_agent,
            body: self.body,
            scheme: Some(self.scheme),
            method: self.method,
        }
    }
}

/// Records `ping` through the group-commit writer and counts it once committed.
pub(crate) async fn record(
    state: &AppState,
    ping: PingRecord,
) -> Result<PingOutcome, PingWriteError> {
    let (kind, exit_code) = (ping.kind, ping.exit_code);
    let outcome = state.pings.record(ping).await?;
    if outcome == PingOutcome::Recorded {
        let label = match exit_code {
            Some(_) => "exit_code",
            None => kind.as_str(),
        };
        state.metrics.ping_received(label);
    }
    Ok(outcome)
}
/// A suffix or `rid` that names no ping (the caller's fault), as a line.
fn bad_request(e: PingUrlError, limit: usize) -> Response {
    text(StatusCode::BAD_REQUEST, format!("{e}\n"), limit)
}

/// The body's first `limit` bytes as text (lossy UTF-8, no NULs, which PostgreSQL
/// text cannot hold); the rest is not read. None when empty.
async fn read_truncated(body: Body, limit: usize) -> Option<String> {
    let mut kept = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { break };
        let room = limit - kept.len();
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if kept.len() >= limit {
            break;
        }
    }
    if kept.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&kept).replace('\0', "");
    Some(text)
}
