//! The MCP server (`POST /mcp`): what AI agents call.
//!
//! It speaks Streamable HTTP through the official SDK (`rmcp`), served inside our
//! axum router, stateless and with plain JSON replies: every tool is one
//! request/response, so there is no session to lose across restarts or nodes.
//!
//! Each tool is a thin adapter over the REST API: [`server`] turns a tool call into
//! an in-process request to the same `/api` router (with the caller's
//! `Authorization` header), so validation, project scoping and key roles are the
//! REST API's, exactly. What the adapter adds is the agent-facing shape: minutes
//! instead of seconds for heartbeats, and every failure of a known tool (bad
//! arguments, unknown ids, forbidden writes) as a tool result with `isError:
//! true` and the API's message, never a broken session. An unknown tool is a
//! JSON-RPC error (`-32602`).
//!
//! - [`tools`]: the catalogue (names, descriptions, JSON Schemas, read or write)
//!   and the typed arguments of each tool.
//! - [`server`]: the `rmcp` handler: lists tools, checks the caller's role in one
//!   place, dispatches calls.
//!
//! A body that is not JSON, or JSON that is not a JSON-RPC message, gets HTTP 400
//! with a JSON-RPC error object (`-32700` parse error, `-32600` invalid request,
//! `id: null`), as JSON-RPC 2.0 and the Streamable HTTP transport prescribe; the
//! SDK alone would answer 415, which sends a client hunting for a content-type
//! problem it does not have ([`jsonrpc_errors`]).

pub mod server;
pub mod tools;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::state::AppState;

/// The `/mcp` route. `api` is the REST router with its state (the same routes the
/// daemon serves under `/api`), which tool calls are forwarded to.
pub fn routes(api: Router, state: &AppState) -> Router<AppState> {
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(state.config.body_limit_bytes)
        .with_cancellation_token(state.shutdown.child_token());
    // Open mode only ever binds loopback, where the SDK's default Host allowlist
    // (localhost, 127.0.0.1, ::1) guards against DNS rebinding. A keyed daemon may
    // serve any name, and every call needs a bearer key anyway.
    if state.config.admin_key.is_some() {
        config = config.disable_allowed_hosts();
    }
    let handler = server::McpHandler::new(api);
    let service = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .route_service("/mcp", service)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            jsonrpc_errors,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
}

/// Keeps the body the SDK reads, and when the SDK refuses it as undeserializable
/// (its 415) although it was sent as JSON, answers what JSON-RPC says instead:
/// 400 with `-32700` when the body is not JSON, `-32600` when it is JSON but not
/// a JSON-RPC message.
async fn jsonrpc_errors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let sent_as_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !sent_as_json {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let limit = state.config.body_limit_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return crate::error::envelope(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("request body exceeds {limit} bytes"),
        );
    };
    let resp = next
        .run(Request::from_parts(
            parts,
            axum::body::Body::from(bytes.clone()),
        ))
        .await;
    if resp.status() != StatusCode::UNSUPPORTED_MEDIA_TYPE {
        return resp;
    }
    let (code, message) = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Err(e) => (-32700, format!("parse error: {e}")),
        Ok(_) => (
            -32600,
            "invalid request: not a JSON-RPC 2.0 request, notification or response".to_string(),
        ),
    };
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": code, "message": message},
        })),
    )
        .into_response()
}

/// Every MCP request needs a valid key in keyed mode (401 before any JSON-RPC, as
/// MCP clients expect). Unlike `/api`, whose layer judges writes by HTTP method,
/// every MCP call is a POST: the role is judged per tool by the handler, from the
/// [`crate::auth::Caller`] left in the request's extensions here.
async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    match crate::auth::routes::identify(&state, req.headers()).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}
