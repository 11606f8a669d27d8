//! The ops area's HTTP edge: `GET /metrics` (outside `/api`: scrapers need no
//! key) and the middleware that counts and times every request. The recorder
//! itself and what it renders live in `super::prometheus`, which knows no HTTP.

use std::time::Instant;

use axum::extract::{MatchedPath, RawQuery, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::prometheus::{Scrape, CONTENT_TYPE};
use crate::state::AppState;

/// `/metrics`, with its OpenAPI operation.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics_route))
}

/// `GET /metrics`. It takes no parameters, and a query string is refused (422)
/// rather than ignored, so a scrape config's `params:` that this daemon does not
/// understand shows up as a failing target instead of silently meaning nothing.
#[utoipa::path(
    get,
    path = "/metrics", operation_id = "getMetrics",
    tag = "probes",
    responses((status = 200, description = "Prometheus text exposition format (version 0.0.4)", body = String, content_type = "text/plain"))
)]
pub async fn metrics_route(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    if query.is_some_and(|q| !q.is_empty()) {
        return crate::error::envelope(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            "GET /metrics takes no query parameters",
        );
    }
    let table_rows = super::table_rows::estimates(&state.pool).await;
    // Read at scrape time, like the row estimates: a broken alert path shows
    // here as soon as a delivery fails, on every node.
    match crate::notify::channel::failing_by_kind(&state.pool).await {
        Ok(by_kind) => state.metrics.channels_failing(&by_kind),
        Err(e) => tracing::debug!(error = %e, "could not count failing channels"),
    }
    let body = state.metrics.render(&Scrape {
        jobs: &state.jobs,
        schedule: &state.schedule,
        pool: &state.pool,
        liveness: &state.liveness,
        table_rows: &table_rows,
    });
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}

/// Counts every request by method, route template (never the raw path, so ids and
/// tokens neither blow up cardinality nor leak) and status, and times it.
pub async fn track_http(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let m = &state.metrics;
    m.counter(
        "heartbeat_http_requests_total",
        &[("method", &method), ("route", &route), ("status", &status)],
    )
    .increment(1);
    m.histogram(
        "heartbeat_http_request_duration_seconds",
        &[("method", &method), ("route", &route)],
    )
    .record(started.elapsed().as_secs_f64());
    resp
}
