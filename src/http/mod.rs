//! The HTTP surface: one router assembled from each area's routes.
//!
//! Two families: JSON routes (`/api`, `/mcp`, probes) whose errors always use the
//! envelope, and public ping routes (`/hb/...`) that answer plain text as cron
//! clients expect. Unknown paths get the envelope 404.

pub mod health;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::error::{ensure_json_errors, envelope, log_internal_errors};
use crate::state::AppState;

/// The whole router.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit_bytes;
    let api = Router::new()
        .merge(crate::jobs::routes::routes())
        .merge(crate::openapi::routes())
        .merge(crate::schedule::routes::routes())
        .merge(crate::refresh::routes())
        .merge(crate::segments::routes())
        .merge(crate::audit::routes())
        .merge(crate::monitor::routes())
        .merge(crate::notify::routes());
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

    let json_routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(crate::mcp::routes(
            api.clone().with_state(state.clone()),
            &state,
        ))
        // Merged, not nested: every area declares its full `/api/...` paths, so no
        // request pays for a prefix-stripping URI rewrite (measured in the gate
        // benchmark, docs/benchmarks.md).
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(ensure_json_errors));

    // The page and `/metrics` are not JSON routes, but a wrong method on them is
    // still the caller's fault, answered with the envelope rather than an empty
    // 405. Ping routes keep axum's plain 405: their protocol is plain text.
    Router::new()
        .merge(crate::dashboard::routes().method_not_allowed_fallback(method_not_allowed))
        .merge(json_routes)
        .merge(crate::monitor::ping_routes::routes())
        .merge(crate::ops::routes().method_not_allowed_fallback(method_not_allowed))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::ops::routes::track_http,
        ))
        .layer(middleware::from_fn(log_internal_errors))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn not_found() -> Response {
    envelope(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> Response {
    envelope(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
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
