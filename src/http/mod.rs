//! The HTTP surface: one router assembled from each area's routes.
//!
//! Two families: JSON routes (`/api`, `/mcp`, probes) whose errors always use the
//! envelope, and public ping routes (`/hb/...`, healthchecks.io's `/ping/...`) that
//! answer plain text as cron clients expect. healthchecks.io's Management API
//! (`/api/v1..v3/`) answers in its own `{"error": "..."}` format, outside both.
//! Unknown paths get the envelope 404.

pub mod health;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ensure_json_errors, envelope, log_internal_errors};
use crate::state::AppState;

/// The whole router.
///
/// Every documented route is registered on an `OpenApiRouter` with its handler's
/// `#[utoipa::path]`, and the router and the document are split once here: the
/// document `GET /api/openapi.json` serves is that split's, so it lists exactly
/// the routes served. Only the dashboard (a page for people) and `/mcp` (JSON-RPC,
/// described by its own tool list) are plain routes outside the document.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit_bytes;
    let ping_prefix = state.config.hc.ping_prefix.clone();
    let served = crate::openapi::ServedDocument::default();
    let api = OpenApiRouter::new()
        .merge(crate::jobs::routes::routes())
        .merge(crate::openapi::routes(served.clone()))
        .merge(crate::schedule::routes::routes())
        .merge(crate::refresh::routes())
        .merge(crate::segments::routes())
        .merge(crate::audit::routes())
        .merge(crate::monitor::routes())
        .merge(crate::notify::routes())
        .merge(crate::hc::badge::routes::api_routes());
    // One auth layer over every `/api` route, applied here so every
    // route merged above is keyed. `/mcp` has its own layer (every MCP call is a
    // POST, so the method-based read/write rule cannot apply; see mcp::server).
    // In open mode (no admin key) every caller is the default project's admin, so
    // the caller is a constant extension: no middleware runs per request.
    let api = if state.config.admin_key.is_some() {
        api.layer(middleware::from_fn_with_state(
            state.clone(),
            crate::auth::routes::require_key,
        ))
    } else {
        api.layer(axum::Extension(crate::auth::OPEN_MODE_CALLER))
    };

    // JSON routes answer every error with the envelope, a wrong method included.
    // `/metrics` is not JSON, but a wrong method on it is still the caller's
    // fault, answered with the envelope rather than an empty 405. Ping routes keep
    // axum's plain 405: their protocol is plain text.
    let json_routes = OpenApiRouter::new()
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        // Merged, not nested: every area declares its full `/api/...` paths, so no
        // request pays for a prefix-stripping URI rewrite (measured in the gate
        // benchmark, docs/benchmarks.md).
        .merge(api)
        .merge(crate::ops::routes())
        .merge(crate::hc::badge::routes::routes())
        .layer(middleware::from_fn(ensure_json_errors));
    let (documented, document) = crate::openapi::base()
        .merge(json_routes)
        .merge(crate::monitor::ping_routes::routes())
        .merge(crate::hc::routes::routes())
        .merge(crate::hc::api_routes::routes())
        .merge(crate::hc::history::routes::routes())
        .split_for_parts();
    served.set(&document);

    let mcp = crate::mcp::routes(documented.clone().with_state(state.clone()), &state)
        .layer(middleware::from_fn(ensure_json_errors));
    let router = Router::new()
        .merge(crate::dashboard::routes().method_not_allowed_fallback(method_not_allowed))
        .merge(mcp)
        .merge(documented)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::ops::routes::track_http,
        ))
        .layer(middleware::from_fn(log_internal_errors))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state);
    crate::hc::routes::with_prefix(router, &ping_prefix)
}

async fn not_found() -> Response {
    envelope(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> Response {
    envelope(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        crate::error::METHOD_NOT_ALLOWED,
    )
}

fn panic_response(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = crate::panic::message(&*err);
    tracing::error!(panic = %detail, "handler panicked");
    envelope(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error; see the daemon's log",
    )
    .into_response()
}
