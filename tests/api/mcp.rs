//! The MCP server as an agent sees it: a real Streamable HTTP session against
//! `POST /mcp` (initialize, notifications/initialized, tools/list, tools/call),
//! spoken with raw JSON-RPC exactly as the transport spec describes it.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use heartbeat::jobs::body::{JobBody, JobContext, JobError};
use heartbeat::jobs::model::JobKind;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with_bodies, test_config, TestApp};

const PROTOCOL_VERSION: &str = "2025-06-18";

/// A minimal MCP client over Streamable HTTP.
pub struct McpClient {
    http: reqwest::Client,
    url: String,
    bearer: Option<String>,
    session: Option<String>,
    protocol: String,
    next_id: u64,
}

/// What a JSON-RPC request got back.
#[derive(Debug)]
pub enum Reply {
    Result(Value),
    Error(Value),
}

impl Reply {
    pub fn result(self) -> Value {
        match self {
            Reply::Result(v) => v,
            Reply::Error(e) => panic!("expected a result, got the JSON-RPC error {e}"),
        }
    }
}

impl McpClient {
    /// Connects and completes the initialize handshake.
    pub async fn connect(app: &TestApp, bearer: Option<&str>) -> (McpClient, Value) {
        let mut client = McpClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            url: app.url("/mcp"),
            bearer: bearer.map(str::to_string),
            session: None,
            protocol: PROTOCOL_VERSION.to_string(),
            next_id: 1,
        };
        let init = client
            .request(
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "heartbeat-tests", "version": "0"}
                }),
            )
            .await
            .result();
        client.protocol = init["protocolVersion"]
            .as_str()
            .expect("initialize names the protocol version")
            .to_string();
        let status = client
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await
            .status();
        assert_eq!(status, 202, "a notification is accepted with 202");
        (client, init)
    }

    fn post(&self, body: Value) -> impl std::future::Future<Output = reqwest::Response> + '_ {
        let mut req = self
            .http
            .post(&self.url)
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", &self.protocol)
            .json(&body);
        if let Some(s) = &self.session {
            req = req.header("Mcp-Session-Id", s);
        }
        if let Some(b) = &self.bearer {
            req = req.bearer_auth(b);
        }
        async move { req.send().await.expect("POST /mcp") }
    }

    pub async fn request(&mut self, method: &str, params: Value) -> Reply {
        let id = self.next_id;
        self.next_id += 1;
        let resp = self
            .post(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        assert!(
            resp.status().is_success(),
            "{method}: HTTP {}: {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
        if let Some(s) = resp.headers().get("mcp-session-id") {
            self.session = Some(s.to_str().unwrap().to_string());
        }
        let is_sse = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap_or("").starts_with("text/event-stream"));
        let text = resp.text().await.unwrap();
        // An SSE reply carries the response as the `data:` of one of its events.
        let messages: Vec<Value> = if is_sse {
            text.lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .filter_map(|d| serde_json::from_str(d.trim()).ok())
                .collect()
        } else {
            vec![serde_json::from_str(&text).expect("a JSON-RPC body")]
        };
        let msg = messages
            .into_iter()
            .find(|m| m["id"] == json!(id))
            .unwrap_or_else(|| panic!("{method}: no response with id {id} in {text}"));
        assert_eq!(msg["jsonrpc"], "2.0");
        if msg.get("error").is_some() {
            Reply::Error(msg["error"].clone())
        } else {
            Reply::Result(msg["result"].clone())
        }
    }

    /// `tools/call`; returns the CallToolResult.
    pub async fn call(&mut self, tool: &str, arguments: Value) -> Value {
        self.request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await
            .result()
    }

    /// Calls a tool that must succeed; returns its structured content.
    pub async fn call_ok(&mut self, tool: &str, arguments: Value) -> Value {
        let r = self.call(tool, arguments.clone()).await;
        assert_ne!(
            r["isError"],
            json!(true),
            "{tool}({arguments}) failed: {}",
            tool_text(&r)
        );
        r["structuredContent"].clone()
    }

    /// Calls a tool that must fail as a tool error; returns its message.
    pub async fn call_err(&mut self, tool: &str, arguments: Value) -> String {
        let r = self.call(tool, arguments.clone()).await;
        assert_eq!(
            r["isError"],
            json!(true),
            "{tool}({arguments}) should have failed: {r}"
        );
        tool_text(&r)
    }
}

pub fn tool_text(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Holds a recompute running until cancelled or 5 s pass, so requests can
/// coalesce onto it.
struct SlowBody;

impl JobBody for SlowBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        Box::pin(async move {
            ctx.begin_phase("ingest", 1);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(5)) => Ok(Value::Null),
                _ = ctx.cancel_token().cancelled() => Err(JobError::Cancelled),
            }
        })
    }
}

#[tokio::test]
async fn an_mcp_session_initializes_and_lists_every_tool_with_its_schema() {
    let app = spawn_app().await;
    let (mut mcp, init) = McpClient::connect(&app, None).await;
    assert_eq!(init["serverInfo"]["name"], "heartbeat");
    assert!(init["capabilities"]["tools"].is_object());

    let tools = mcp.request("tools/list", json!({})).await.result();
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in [
        "list_heartbeats",
        "get_heartbeat",
        "create_heartbeat",
        "update_heartbeat",
        "delete_heartbeat",
        "trigger_recompute",
        "get_job",
        "get_active_job",
        "list_metrics",
        "list_channels",
        "test_channel",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let create = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "create_heartbeat")
        .unwrap();
    assert_eq!(
        create["inputSchema"]["required"],
        json!(["name", "period_minutes", "grace_minutes"]),
        "heartbeat tools take minutes"
    );
    assert_eq!(create["annotations"]["readOnlyHint"], false);
}

#[tokio::test]
async fn trigger_recompute_returns_a_job_that_get_job_and_get_active_job_follow() {
    let app = spawn_app_with_bodies(
        test_config(),
        vec![(JobKind::Recompute, Arc::new(SlowBody) as Arc<dyn JobBody>)],
    )
    .await;
    let (mut mcp, _) = McpClient::connect(&app, None).await;

    let first = mcp.call_ok("trigger_recompute", json!({})).await;
    let job_id = first["job_id"].as_str().expect("a job_id").to_string();
    assert_eq!(first["coalesced"], false);

    // A second request for all metrics is covered by the running job.
    let second = mcp
        .call_ok("trigger_recompute", json!({"metric_ids": "all"}))
        .await;
    assert_eq!(second["coalesced"], true);
    assert_eq!(second["job_id"], json!(job_id));

    let job = mcp.call_ok("get_job", json!({"job_id": job_id})).await;
    assert_eq!(job["job_id"], json!(job_id));
    assert_eq!(job["kind"], "recompute");
    assert_eq!(job["trigger"], "api");

    let active = mcp.call_ok("get_active_job", json!({})).await;
    assert_eq!(active["job"]["job_id"], json!(job_id));
    assert_eq!(active["job"]["phase"], "ingest");

    app.state
        .jobs
        .cancel(job_id.parse().unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_tool_arguments_are_tool_errors_and_the_session_carries_on() {
    let app = spawn_app().await;
    let (mut mcp, _) = McpClient::connect(&app, None).await;

    let msg = mcp
        .call_err("trigger_recompute", json!({"metric_ids": "some"}))
        .await;
    assert!(msg.contains("metric_ids must be \"all\""), "{msg}");
    let msg = mcp
        .call_err(
            "trigger_recompute",
            json!({"metric_ids": ["no_such_metric"]}),
        )
        .await;
    assert!(
        msg.contains("unknown_metric_ids") && msg.contains("no_such_metric"),
        "{msg}"
    );
    let msg = mcp
        .call_err("trigger_recompute", json!({"metric_idz": "all"}))
        .await;
    assert!(msg.contains("unknown field `metric_idz`"), "{msg}");
    let msg = mcp.call_err("get_job", json!({"job_id": "nope"})).await;
    assert!(msg.contains("not a job id"), "{msg}");
    let msg = mcp
        .call_err(
            "get_job",
            json!({"job_id": uuid::Uuid::now_v7().to_string()}),
        )
        .await;
    assert!(msg.starts_with("not_found:"), "{msg}");
    let msg = mcp.call_err("get_job", json!({})).await;
    assert!(msg.contains("missing field `job_id`"), "{msg}");
    let msg = mcp.call_err("get_active_job", json!({"x": 1})).await;
    assert!(msg.contains("unknown field `x`"), "{msg}");
    let msg = mcp
        .call_err("get_heartbeat", json!({"id": "../../jobs"}))
        .await;
    assert!(msg.contains("is not a heartbeat id"), "{msg}");
    // An unknown tool is a protocol error, not a tool result.
    match mcp
        .request(
            "tools/call",
            json!({"name": "make_coffee", "arguments": {}}),
        )
        .await
    {
        Reply::Error(e) => {
            assert_eq!(e["code"], -32602, "{e}");
            let message = e["message"].as_str().unwrap_or_default();
            assert!(message.contains("no tool 'make_coffee'"), "{e}");
        }
        Reply::Result(r) => panic!("an unknown tool answered a result: {r}"),
    }

    // Still the same healthy session.
    let tools = mcp.request("tools/list", json!({})).await.result();
    assert!(tools["tools"].as_array().unwrap().len() >= 9);
    let active = mcp.call_ok("get_active_job", json!({})).await;
    assert_eq!(active["job"], Value::Null);
}

#[tokio::test]
async fn a_malformed_json_rpc_message_gets_a_json_rpc_error_not_a_crash() {
    let app = spawn_app().await;
    let (mut mcp, _) = McpClient::connect(&app, None).await;
    let reply = mcp.request("no/such/method", json!({})).await;
    assert!(
        matches!(reply, Reply::Error(ref e) if e["code"] == -32601),
        "{reply:?}"
    );
    let resp = app
        .client
        .post(app.url("/mcp"))
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    // The server is fine afterwards.
    mcp.request("tools/list", json!({})).await.result();
}

#[tokio::test]
async fn heartbeat_tools_create_read_update_and_delete_in_minutes() {
    let app = spawn_app().await;
    let (mut mcp, _) = McpClient::connect(&app, None).await;

    let hb = mcp
        .call_ok(
            "create_heartbeat",
            json!({"name": "nightly backup", "period_minutes": 60, "grace_minutes": 5}),
        )
        .await;
    let id = hb["id"].as_str().expect("an id").to_string();
    assert_eq!(hb["period_minutes"], 60);
    assert_eq!(hb["grace_minutes"], 5);
    assert!(hb.get("period_seconds").is_none(), "minutes only: {hb}");
    assert_eq!(hb["status"], "pending");
    let ping_url = hb["ping_url"].as_str().unwrap().to_string();
    assert!(ping_url.contains("/hb/hb_"), "{ping_url}");

    let list = mcp.call_ok("list_heartbeats", json!({})).await;
    // Open mode sees every project, the built-in job heartbeats included.
    let listed = list["heartbeats"].as_array().expect("a heartbeat list");
    let ours = listed
        .iter()
        .find(|h| h["id"] == json!(id))
        .expect("the new heartbeat is listed");
    assert_eq!(ours["name"], "nightly backup");
    assert_eq!(ours["status"], "pending");
    assert_eq!(ours["period_minutes"], 60);
    assert!(listed.iter().all(|h| h["status"].is_string()));

    // A ping (on the port the test server really listens on) turns it up.
    let path = &ping_url[ping_url.find("/hb/").unwrap()..];
    let r = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let got = mcp.call_ok("get_heartbeat", json!({"id": id})).await;
    assert_eq!(got["status"], "up");
    assert!(!got["last_ping_at"].is_null());

    let updated = mcp
        .call_ok(
            "update_heartbeat",
            json!({"id": id, "period_minutes": 30, "grace_minutes": 2}),
        )
        .await;
    assert_eq!(updated["period_minutes"], 30);
    assert_eq!(updated["grace_minutes"], 2);
    assert_eq!(updated["name"], "nightly backup", "unchanged fields stay");
    assert_eq!(updated["status"], "up", "editing keeps the status");
    let renamed = mcp
        .call_ok("update_heartbeat", json!({"id": id, "name": "backup"}))
        .await;
    assert_eq!(renamed["name"], "backup");
    assert_eq!(renamed["period_minutes"], 30);

    // Bad arguments, each a tool error naming the problem.
    let msg = mcp
        .call_err(
            "create_heartbeat",
            json!({"name": "x", "period_minutes": 0, "grace_minutes": 1}),
        )
        .await;
    assert!(msg.contains("period_minutes must be at least 1"), "{msg}");
    let msg = mcp
        .call_err(
            "create_heartbeat",
            json!({"name": "x", "period_minutes": "sixty", "grace_minutes": 1}),
        )
        .await;
    assert!(
        msg.contains("invalid arguments for create_heartbeat"),
        "{msg}"
    );
    let msg = mcp
        .call_err(
            "create_heartbeat",
            json!({"name": "x", "period_minutes": 5}),
        )
        .await;
    assert!(msg.contains("missing field `grace_minutes`"), "{msg}");
    let msg = mcp
        .call_err(
            "create_heartbeat",
            json!({"name": "x", "period_seconds": 60, "period_minutes": 1, "grace_minutes": 1}),
        )
        .await;
    assert!(msg.contains("unknown field `period_seconds`"), "{msg}");
    let msg = mcp
        .call_err(
            "create_heartbeat",
            json!({"name": "", "period_minutes": 5, "grace_minutes": 1}),
        )
        .await;
    assert!(msg.contains("name"), "the API's own message: {msg}");
    let msg = mcp.call_err("update_heartbeat", json!({"id": id})).await;
    assert!(msg.contains("nothing to change"), "{msg}");
    let msg = mcp
        .call_err("update_heartbeat", json!({"id": id, "grace_minutes": -1}))
        .await;
    assert!(
        msg.contains("invalid arguments for update_heartbeat"),
        "{msg}"
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    let msg = mcp.call_err("get_heartbeat", json!({"id": unknown})).await;
    assert!(msg.starts_with("not_found:"), "{msg}");

    let deleted = mcp.call_ok("delete_heartbeat", json!({"id": id})).await;
    assert_eq!(deleted["deleted"], json!(id));
    let msg = mcp.call_err("get_heartbeat", json!({"id": id})).await;
    assert!(msg.starts_with("not_found:"), "{msg}");
    let msg = mcp.call_err("delete_heartbeat", json!({"id": id})).await;
    assert!(msg.starts_with("not_found:"), "{msg}");
    let list = mcp.call_ok("list_heartbeats", json!({})).await;
    let ids: Vec<&Value> = list["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["id"])
        .collect();
    assert!(!ids.contains(&&json!(id)), "deleted: {ids:?}");
}

#[tokio::test]
async fn list_metrics_shows_each_metric_with_its_z_and_band_after_a_recompute() {
    let app = spawn_app().await;
    let (mut mcp, _) = McpClient::connect(&app, None).await;
    let started = mcp
        .call_ok("trigger_recompute", json!({"metric_ids": "all"}))
        .await;
    let job_id = started["job_id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let job = mcp.call_ok("get_job", json!({"job_id": job_id})).await;
        match job["state"].as_str().unwrap() {
            "succeeded" => break,
            "failed" | "cancelled" => panic!("the recompute did not succeed: {job}"),
            _ => {}
        }
        assert!(std::time::Instant::now() < deadline, "recompute too slow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = mcp.call_ok("list_metrics", json!({})).await;
    let metrics = metrics["metrics"].as_array().expect("a metric list");
    assert!(!metrics.is_empty(), "the repo's metric files are listed");
    for m in metrics {
        for field in ["id", "latest_value", "mean", "stddev", "z", "band"] {
            assert!(m.get(field).is_some(), "{field} missing in {m}");
        }
    }
    let msg = mcp.call_err("list_metrics", json!({"all": true})).await;
    assert!(msg.contains("unknown field `all`"), "{msg}");
}

pub const ADMIN: &str = "mcp-admin-key-0123456789";

pub async fn new_project(app: &TestApp, name: &str) -> (String, String) {
    let r = app
        .client
        .post(app.url("/api/projects"))
        .bearer_auth(ADMIN)
        .json(&json!({"name": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let p: Value = r.json().await.unwrap();
    (
        p["read_write_key"].as_str().unwrap().to_string(),
        p["read_only_key"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn keyed_mcp_needs_a_key_and_a_read_only_key_may_call_only_read_tools() {
    let mut config = crate::helpers::test_config();
    config.admin_key = Some(ADMIN.into());
    config.monitor.loops = false;
    let app = crate::helpers::spawn_app_with(config).await;

    for key in [None, Some("not-a-key")] {
        let mut req = app
            .client
            .post(app.url("/mcp"))
            .header("Accept", "application/json, text/event-stream")
            .json(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"}}}),
            );
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 401, "key {key:?}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(crate::helpers::error_code(&body), "unauthorized");
    }

    let (rw, ro) = new_project(&app, "ops").await;
    let (other_rw, _) = new_project(&app, "other").await;

    let (mut writer, _) = McpClient::connect(&app, Some(&rw)).await;
    let hb = writer
        .call_ok(
            "create_heartbeat",
            json!({"name": "etl", "period_minutes": 15, "grace_minutes": 5}),
        )
        .await;
    let id = hb["id"].as_str().unwrap().to_string();

    let (mut reader, _) = McpClient::connect(&app, Some(&ro)).await;
    let tools = reader.request("tools/list", json!({})).await.result();
    let mut names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "get_active_job",
            "get_heartbeat",
            "get_job",
            "list_channels",
            "list_heartbeats",
            "list_metrics"
        ],
        "a read-only key is shown only the read tools"
    );
    let list = reader.call_ok("list_heartbeats", json!({})).await;
    assert_eq!(list["heartbeats"][0]["id"], json!(id));
    reader.call_ok("get_heartbeat", json!({"id": id})).await;
    reader.call_ok("get_active_job", json!({})).await;
    for (tool, args) in [
        (
            "create_heartbeat",
            json!({"name": "x", "period_minutes": 1, "grace_minutes": 1}),
        ),
        ("update_heartbeat", json!({"id": id, "name": "y"})),
        ("delete_heartbeat", json!({"id": id})),
        ("trigger_recompute", json!({})),
    ] {
        let msg = reader.call_err(tool, args).await;
        assert!(msg.contains("read-only"), "{tool}: {msg}");
    }
    reader.call_ok("get_heartbeat", json!({"id": id})).await;

    // Another project's key does not see the heartbeat at all.
    let (mut stranger, _) = McpClient::connect(&app, Some(&other_rw)).await;
    let msg = stranger.call_err("get_heartbeat", json!({"id": id})).await;
    assert!(msg.starts_with("not_found:"), "{msg}");
    let msg = stranger
        .call_err("delete_heartbeat", json!({"id": id}))
        .await;
    assert!(msg.starts_with("not_found:"), "{msg}");
    let list = stranger.call_ok("list_heartbeats", json!({})).await;
    assert_eq!(list["heartbeats"], json!([]));
}
