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
//! - [`message`]: which JSON-RPC 2.0 rule a body breaks. A body that is not JSON,
//!   or JSON that is not a JSON-RPC message, gets HTTP 400 with a JSON-RPC error
//!   object (`-32700` parse error, `-32600` invalid request, `id: null`), as
//!   JSON-RPC 2.0 and the Streamable HTTP transport prescribe, and params of the
//!   wrong shape `-32602`; the SDK alone would answer 415 or "method not found",
//!   which sends a client hunting for a problem it does not have
//!   ([`jsonrpc_errors`]).

pub mod message;
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

use serde_json::Value;

use self::message::Verdict;
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

/// Holds every JSON body to the JSON-RPC 2.0 rules before the SDK reads it
/// ([`message::judge`]): a body that is not a JSON-RPC message gets HTTP 400 with
/// `-32700` or `-32600` and `id: null`, params of the wrong shape `-32602` for the
/// request's id. What the SDK answers `-32601` is reworded: "method not found"
/// naming the method and the ones there are, or `-32602` when the method is one
/// this server answers (so its params were what the SDK could not read).
async fn jsonrpc_errors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let sent_as_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if req.method() != axum::http::Method::POST || !sent_as_json {
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
    let method = match message::judge(&bytes) {
        Verdict::Invalid { code, message } => {
            return rpc_error(StatusCode::BAD_REQUEST, Value::Null, code, &message)
        }
        Verdict::BadParams {
            id: Some(id),
            message,
        } => return rpc_error(StatusCode::OK, id, message::INVALID_PARAMS, &message),
        Verdict::BadParams { id: None, message } => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                Value::Null,
                message::INVALID_PARAMS,
                &message,
            )
        }
        Verdict::Pass { method } => method,
    };
    let resp = next
        .run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await;
    match method {
        Some(method) if resp.status() == StatusCode::OK => reword_not_found(resp, &method).await,
        _ => resp,
    }
}

/// The SDK's `-32601` carries only the method's name; see [`jsonrpc_errors`].
async fn reword_not_found(resp: Response, method: &str) -> Response {
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut answer = match serde_json::from_slice::<Value>(&bytes) {
        Ok(v) if v["error"]["code"] == message::METHOD_NOT_FOUND => v,
        _ => return Response::from_parts(parts, axum::body::Body::from(bytes)),
    };
    answer["error"] = if message::METHODS.contains(&method) {
        serde_json::json!({
            "code": message::INVALID_PARAMS,
            "message": format!("invalid params for {method}: they do not match its schema"),
        })
    } else {
        serde_json::json!({
            "code": message::METHOD_NOT_FOUND,
            "message": message::method_not_found(method),
        })
    };
    (StatusCode::OK, axum::Json(answer)).into_response()
}

/// A JSON-RPC error object as the whole answer.
fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({
            "jsonrpc": "2.0",
            "id": id,
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
