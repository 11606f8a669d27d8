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
//! instead of seconds for heartbeats, and every failure (bad arguments, unknown
//! ids, forbidden writes) as a tool result with `isError: true` and the API's
//! message, never a broken session.
//!
//! - [`tools`]: the catalogue (names, descriptions, JSON Schemas, read or write)
//!   and the typed arguments of each tool.
//! - [`server`]: the `rmcp` handler: lists tools, checks the caller's role in one
//!   place, dispatches calls.

pub mod server;
pub mod tools;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
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
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
}

/// Every MCP request needs a valid key in keyed mode (401 before any JSON-RPC, as
/// MCP clients expect). Unlike `/api`, whose layer judges writes by HTTP method,
/// every MCP call is a POST: the role is judged per tool by the handler, from the
/// [`crate::auth::Caller`] left in the request's extensions here.
async fn authenticate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match crate::auth::identify(&state, presented.as_deref()).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}
