//! The MCP handler: lists the tools and runs calls by forwarding them to the REST
//! API in-process.
//!
//! Forwarding (rather than calling each area's Rust functions) keeps one
//! definition of validation, project scoping and key roles: a tool can never allow
//! what the API refuses. Every failure of a known tool becomes a tool result with
//! `isError: true` whose text is the API's own message, so the agent can correct
//! itself and the session carries on; an unknown tool is a JSON-RPC error
//! (`-32602`), as the MCP specification lists it among protocol errors.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

use super::tools::{self, Access, ToolName};
use crate::auth::Caller;

/// Why a tool call did not succeed: the text the agent reads.
#[derive(Debug)]
pub struct ToolFailure(pub String);

impl From<String> for ToolFailure {
    fn from(s: String) -> Self {
        ToolFailure(s)
    }
}

/// Cheap to clone: the SDK builds one per request (stateless mode).
#[derive(Clone)]
pub struct McpHandler {
    /// The REST routes, state included, mounted at `/api` as the daemon serves them.
    api: Router,
}

const INSTRUCTIONS: &str = "Heartbeat keeps a metrics dashboard fresh and watches cron jobs. \
Heartbeat tools take minutes. A heartbeat is down when no ping arrived within period + grace. \
trigger_recompute returns a job_id; poll get_job until state is succeeded, failed or cancelled.";

impl McpHandler {
    pub fn new(api: Router) -> Self {
        Self { api }
    }

    async fn run(
        &self,
        name: &str,
        args: Value,
        http: Option<&Parts>,
    ) -> Result<Value, ToolFailure> {
        let tool = ToolName::parse(name)
            .ok_or_else(|| ToolFailure(format!("no tool '{name}'; tools/list shows the tools")))?;
        caller_may(tool, http)?;
        match tool {
            ToolName::ListHeartbeats => {
                parse::<tools::NoArgs>(tool, args)?;
                let mut body = self
                    .call(http, Method::GET, "/api/heartbeats", None)
                    .await?;
                let list = match &mut body {
                    Value::Array(items) => Some(items),
                    Value::Object(o) => o.get_mut("heartbeats").and_then(Value::as_array_mut),
                    _ => None,
                };
                for hb in list.into_iter().flatten() {
                    tools::heartbeat_in_minutes(hb);
                }
                Ok(body)
            }
            ToolName::GetHeartbeat => {
                let a: tools::HeartbeatRef = parse(tool, args)?;
                let path = format!("/api/heartbeats/{}", a.id.as_str());
                let mut hb = self.call(http, Method::GET, &path, None).await?;
                tools::heartbeat_in_minutes(&mut hb);
                // The detection events with their causes: the last status
                // changes (cause, withheld), the pings a rule flagged (early,
                // too_fast) and every detection event, so an agent sees why,
                // not only what.
                let flips = self
                    .call(http, Method::GET, &format!("{path}/flips"), None)
                    .await?;
                let pings = self
                    .call(http, Method::GET, &format!("{path}/pings"), None)
                    .await?;
                hb["recent_flips"] = tools::first(&flips["flips"], tools::RECENT_EVENTS);
                hb["flagged_pings"] = tools::flagged(&pings["pings"], tools::RECENT_EVENTS);
                // Missed deadlines and timed-out runs too, below the failure
                // threshold (which no flip shows).
                let events = self
                    .call(http, Method::GET, &format!("{path}/events"), None)
                    .await?;
                hb["recent_events"] = tools::first(&events["events"], tools::RECENT_EVENTS);
                Ok(hb)
            }
            ToolName::CreateHeartbeat => {
                let a: tools::CreateHeartbeat = parse(tool, args)?;
                let body = json!({
                    "name": a.name,
                    "period_seconds": tools::period_seconds(a.period_minutes)?,
                    "grace_seconds": u64::from(a.grace_minutes) * 60,
                });
                let mut hb = self
                    .call(http, Method::POST, "/api/heartbeats", Some(body))
                    .await?;
                tools::heartbeat_in_minutes(&mut hb);
                Ok(hb)
            }
            ToolName::UpdateHeartbeat => {
                let a: tools::UpdateHeartbeat = parse(tool, args)?;
                let mut body = Map::new();
                if let Some(name) = a.name {
                    body.insert("name".into(), json!(name));
                }
                if let Some(p) = a.period_minutes {
                    body.insert("period_seconds".into(), json!(tools::period_seconds(p)?));
                }
                if let Some(g) = a.grace_minutes {
                    body.insert("grace_seconds".into(), json!(u64::from(g) * 60));
                }
                if body.is_empty() {
                    return Err(ToolFailure(
                        "nothing to change: give name, period_minutes or grace_minutes".into(),
                    ));
                }
                let path = format!("/api/heartbeats/{}", a.id.as_str());
                let mut hb = self
                    .call(http, Method::PATCH, &path, Some(Value::Object(body)))
                    .await?;
                tools::heartbeat_in_minutes(&mut hb);
                Ok(hb)
            }
            ToolName::DeleteHeartbeat => {
                let a: tools::HeartbeatRef = parse(tool, args)?;
                let path = format!("/api/heartbeats/{}", a.id.as_str());
                self.call(http, Method::DELETE, &path, None).await?;
                Ok(json!({ "deleted": a.id.as_str() }))
            }
            ToolName::TriggerRecompute => {
                let a: tools::TriggerRecompute = parse(tool, args)?;
                let mut body = json!({ "metric_ids": a.metric_ids, "trigger": "api" });
                // Passed on as given, so the API's own parsing and its 422s
                // (invalid_range naming the bound) are the tool's.
                if let Some(from) = a.from {
                    body["from"] = json!(from);
                }
                if let Some(to) = a.to {
                    body["to"] = json!(to);
                }
                if a.dry_run {
                    body["dry_run"] = json!(true);
                }
                self.call(http, Method::POST, "/api/metrics/recompute", Some(body))
                    .await
            }
            ToolName::GetJob => {
                let a: tools::JobRef = parse(tool, args)?;
                let id: uuid::Uuid =
                    a.job_id.trim().parse().map_err(|_| {
                        ToolFailure(format!("'{}' is not a job id (a UUID)", a.job_id))
                    })?;
                self.call(http, Method::GET, &format!("/api/jobs/{id}"), None)
                    .await
            }
            ToolName::GetActiveJob => {
                parse::<tools::NoArgs>(tool, args)?;
                self.call(http, Method::GET, "/api/metrics/active-job", None)
                    .await
            }
            ToolName::ListMetrics => {
                parse::<tools::NoArgs>(tool, args)?;
                self.call(http, Method::GET, "/api/metrics", None).await
            }
            ToolName::ListChannels => {
                parse::<tools::NoArgs>(tool, args)?;
                self.call(http, Method::GET, "/api/channels", None).await
            }
            ToolName::TestChannel => {
                let a: tools::ChannelRef = parse(tool, args)?;
                let path = format!("/api/channels/{}/test", a.uuid()?);
                self.call(http, Method::POST, &path, Some(json!({}))).await
            }
        }
    }

    /// One in-process API request with the caller's credentials; the API's error
    /// message becomes the failure.
    async fn call(
        &self,
        http: Option<&Parts>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ToolFailure> {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(auth) = http.and_then(|p| p.headers.get(header::AUTHORIZATION)) {
            req = req.header(header::AUTHORIZATION, auth);
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let mut req = req
            .body(body)
            .map_err(|e| ToolFailure(format!("internal error building the request: {e}")))?;
        if let Some(info) = http.and_then(|p| p.extensions.get::<ConnectInfo<SocketAddr>>()) {
            req.extensions_mut().insert(*info);
        }
        let resp = self
            .api
            .clone()
            .oneshot(req)
            .await
            .unwrap_or_else(|never| match never {});
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .map_err(|e| ToolFailure(format!("reading the API's answer: {e}")))?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        if status.is_success() {
            return Ok(value);
        }
        Err(ToolFailure(api_error_text(status, &value)))
    }
}

/// `"<code>: <message>"` from the error envelope, or the status when the body is
/// not one (a route that is not there yet answers the envelope 404 too).
fn api_error_text(status: StatusCode, body: &Value) -> String {
    match (
        body["error"]["code"].as_str(),
        body["error"]["message"].as_str(),
    ) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        _ => format!("the API answered {status}"),
    }
}

/// Parses a tool's arguments, naming the tool in the error.
fn parse<T: DeserializeOwned>(tool: ToolName, args: Value) -> Result<T, ToolFailure> {
    serde_json::from_value(args)
        .map_err(|e| ToolFailure(format!("invalid arguments for {}: {e}", tool.as_str())))
}

/// The caller the `/mcp` auth layer identified.
fn caller(http: Option<&Parts>) -> Option<Caller> {
    http.and_then(|p| p.extensions.get::<Caller>()).copied()
}

/// The one role check: may this caller run this tool? The REST API checks roles
/// too; this check answers before anything runs, in the tool's terms.
fn caller_may(tool: ToolName, http: Option<&Parts>) -> Result<(), ToolFailure> {
    match (tool.access(), caller(http)) {
        (Access::Read, _) => Ok(()),
        (Access::Write, Some(c)) if c.role.can_write() => Ok(()),
        (Access::Write, Some(_)) => Err(ToolFailure(format!(
            "forbidden: this key is read-only and {} changes data; use a read-write key",
            tool.as_str()
        ))),
        (Access::Write, None) => Err(ToolFailure(
            "internal: the caller was not identified; see the daemon's log".into(),
        )),
    }
}

fn failure_result(failure: ToolFailure) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(failure.0)])
}

fn success_result(value: Value) -> CallToolResult {
    let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    // Structured content must be an object; lists and nulls are wrapped.
    result.structured_content = Some(match value {
        Value::Object(_) => value,
        other => json!({ "result": other }),
    });
    result
}

impl ServerHandler for McpHandler {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("heartbeat", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        // A read-only key is shown only what it may call.
        let writes = caller(context.extensions.get::<Parts>()).is_none_or(|c| c.role.can_write());
        let tools = ToolName::ALL
            .into_iter()
            .filter(|t| writes || t.access() == Access::Read)
            .map(ToolName::tool)
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        ToolName::parse(name).map(ToolName::tool)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        // An unknown tool is a protocol error (MCP 2025-06-18, tools, "Error
        // Handling"), unlike a known tool that fails, which the model may retry.
        if ToolName::parse(&request.name).is_none() {
            return Err(McpError::invalid_params(
                format!("no tool '{}'; tools/list shows the tools", request.name),
                None,
            ));
        }
        let http = context.extensions.get::<Parts>();
        let args = request.arguments.map(Value::Object).unwrap_or(json!({}));
        let result = match self.run(&request.name, args, http).await {
            Ok(value) => success_result(value),
            Err(failure) => {
                tracing::debug!(tool = %request.name, error = %failure.0, "tool call failed");
                failure_result(failure)
            }
        };
        Ok(result.into())
    }
}
