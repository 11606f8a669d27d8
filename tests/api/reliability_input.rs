//! Bad input across every route, from one table: each answer is a 4xx (with the
//! JSON error envelope on JSON routes, the dashboard and `/metrics`; the ping
//! protocol answers plain text by contract), never a 5xx, and no `heartbeat.*`
//! table changes.
//!
//! `/mcp` answers as MCP clients expect, one of three ways per row: transport
//! faults (no `Accept`, huge body, wrong method or content type) are a 4xx with
//! the envelope; a body that is not a JSON-RPC message is 400 with a JSON-RPC
//! error object (`-32700` / `-32600`, `id: null`); a well-formed message with an
//! unknown method or mis-shaped params is HTTP 200 carrying a JSON-RPC error; a
//! bad call to a known tool (wrong arguments, refused write) is HTTP 200 carrying
//! a tool result with `isError: true`, so the agent can read why and retry.

use heartbeat::config::Config;
use heartbeat::monitor::MonitorConfig;
use reqwest::Method;

use crate::helpers::{error_code, spawn_app_with, test_config, TestApp};

/// `(method, path, body)`; a body is sent as `application/json`, raw.
type Case = (Method, String, Option<String>);

const SQL_META: &str = "x'; DROP TABLE heartbeat.heartbeat; --";

fn cases() -> Vec<Case> {
    let get = |p: &str| (Method::GET, p.to_string(), None);
    let post = |p: &str, b: &str| (Method::POST, p.to_string(), Some(b.to_string()));
    let patch = |p: &str, b: &str| (Method::PATCH, p.to_string(), Some(b.to_string()));
    let del = |p: &str| (Method::DELETE, p.to_string(), None);
    let huge = format!("{{\"name\": \"{}\"}}", "a".repeat(3 * 1024 * 1024));
    let many_ids = format!(
        "{{\"metric_ids\": [{}]}}",
        (0..20_000)
            .map(|i| format!("\"m{i}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    let sql = serde_json::to_string(SQL_META).unwrap();
    let enc = "x%27%3B%20DROP%20TABLE%20heartbeat.heartbeat%3B%20--";
    let nil = "00000000-0000-0000-0000-000000000000";
    vec![
        // Recompute and jobs.
        post("/api/metrics/recompute", "{"),
        post("/api/metrics/recompute", r#"{"metric_ids": 5}"#),
        post("/api/metrics/recompute", r#"{"metric_ids": []}"#),
        post("/api/metrics/recompute", r#"{"metric_ids": "some"}"#),
        post(
            "/api/metrics/recompute",
            r#"{"metric_ids": ["../../etc/passwd"]}"#,
        ),
        post(
            "/api/metrics/recompute",
            &format!(r#"{{"metric_ids": [{sql}]}}"#),
        ),
        post(
            "/api/metrics/recompute",
            r#"{"metric_ids": "all", "colour": 1}"#,
        ),
        post(
            "/api/metrics/recompute",
            r#"{"metric_ids": "all", "trigger": "nope"}"#,
        ),
        post("/api/metrics/recompute", &many_ids),
        post("/api/metrics/recompute", &huge),
        get("/api/metrics/recompute/not-a-uuid"),
        get(&format!("/api/metrics/recompute/{nil}")),
        get("/api/jobs?limit=-1"),
        get("/api/jobs?limit=99999999999999999999999"),
        get("/api/jobs?kind=nope"),
        get(&format!("/api/jobs?kind={enc}")),
        get("/api/jobs/not-a-kind-or-uuid"),
        post("/api/jobs/not-a-kind", "{}"),
        post("/api/jobs/recompute", r#"{"metric_ids": true}"#),
        post("/api/jobs/recompute", r#"{"unknown": 1}"#),
        post(&format!("/api/jobs/{nil}/cancel"), "{}"),
        post("/api/jobs/..%2F..%2Fetc/cancel", "{}"),
        // Cockpit.
        get("/api/metrics/..%2F..%2Fetc%2Fpasswd/values"),
        get(&format!("/api/metrics/{enc}/values")),
        get("/api/metrics/orders/values?from=yesterday"),
        get("/api/metrics/orders/values?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"),
        get("/api/metrics/orders/values?from=0001-01-01T00:00:00Z&to=9999-12-31T00:00:00Z"),
        get("/api/metrics/orders/values?bogus=1"),
        // Segments and audit cuts.
        get("/api/segments?date=2026-13-45"),
        get("/api/segments?limit=-5"),
        get("/api/segments?offset=-1"),
        get("/api/segments?limit=99999999999999999999999"),
        get(&format!("/api/segments?tier={enc}")),
        get("/api/segments/c1?limit=-1"),
        get("/api/audit/cuts/..%2F..%2Fetc%2Fpasswd"),
        get(&format!("/api/audit/cuts/{enc}")),
        get("/api/audit/cuts/nope?bogus=1"),
        // Heartbeats, webhooks, projects.
        post("/api/heartbeats", "{"),
        post("/api/heartbeats", "null"),
        post("/api/heartbeats", r#"{"name": 5}"#),
        post("/api/heartbeats", r#"{}"#),
        post("/api/heartbeats", r#"{"name": "a", "colour": "red"}"#),
        post("/api/heartbeats", r#"{"name": "a", "period_seconds": -60}"#),
        post(
            "/api/heartbeats",
            r#"{"name": "a", "period_seconds": 99999999999999}"#,
        ),
        post("/api/heartbeats", r#"{"name": "a", "grace_seconds": -1}"#),
        post(
            "/api/heartbeats",
            r#"{"name": "a", "schedule": "61 * * * *"}"#,
        ),
        post(
            "/api/heartbeats",
            r#"{"name": "a", "schedule": "not cron"}"#,
        ),
        post(
            "/api/heartbeats",
            r#"{"name": "a", "schedule": "0 3 * * *", "tz": "Mars/Olympus"}"#,
        ),
        post(
            "/api/heartbeats",
            &format!(r#"{{"name": "a", "schedule": "0 3 * * *", "tz": {sql}}}"#),
        ),
        post(
            "/api/heartbeats",
            &format!(r#"{{"name": "a", "schedule": {sql}}}"#),
        ),
        post(
            "/api/heartbeats",
            &format!(r#"{{"name": {sql}, "period_seconds": -1}}"#),
        ),
        post("/api/heartbeats", &huge),
        get("/api/heartbeats/not-a-uuid"),
        get(&format!("/api/heartbeats/{nil}")),
        get(&format!("/api/heartbeats/{enc}")),
        patch(&format!("/api/heartbeats/{nil}"), r#"{"name": "b"}"#),
        patch("/api/heartbeats/not-a-uuid", r#"{"name": "b"}"#),
        del(&format!("/api/heartbeats/{nil}")),
        del("/api/heartbeats/..%2F..%2F"),
        get(&format!("/api/heartbeats/{nil}/pings")),
        get(&format!("/api/heartbeats/{nil}/flips")),
        post("/api/webhooks", "{"),
        post("/api/webhooks", r#"{"url": 5}"#),
        post("/api/webhooks", r#"{"url": "not a url"}"#),
        post("/api/webhooks", &format!(r#"{{"url": {sql}}}"#)),
        post(
            "/api/webhooks",
            r#"{"url": "http://example.com/", "colour": 1}"#,
        ),
        del(&format!("/api/webhooks/{nil}")),
        del("/api/webhooks/not-a-uuid"),
        post("/api/projects", "{"),
        post("/api/projects", r#"{"name": 5}"#),
        post("/api/projects", r#"{"name": "p", "colour": 1}"#),
        post("/api/projects", &huge),
        // Dashboard: wrong methods, unknown and traversing asset paths.
        post("/", "{}"),
        del("/"),
        (Method::PUT, "/assets/app.js".into(), None),
        post("/assets/style.css", "{}"),
        get("/assets/nope.js"),
        get("/assets/..%2F..%2FCargo.toml"),
        get("/assets/%2e%2e/%2e%2e/etc/passwd"),
        // Ops routes: wrong methods and query strings none of them take.
        post("/metrics", "{}"),
        del("/metrics"),
        get("/metrics?x=1"),
        get(&format!("/metrics?name={enc}")),
        get("/metrics?%00=%FF"),
        post("/api/openapi.json", "{}"),
        (Method::PUT, "/api/openapi.json".into(), Some("{}".into())),
        get("/api/openapi.json?x=1"),
        get(&format!("/api/openapi.json?{enc}")),
        (Method::PUT, "/healthz".into(), None),
        post("/readyz", "{}"),
    ]
}

/// How `/mcp` must answer a row (see the module doc).
#[derive(Debug, Clone, Copy)]
enum McpAnswer {
    /// A 4xx with the `{"error": {"code", "message"}}` envelope.
    Envelope,
    /// HTTP 400 with a JSON-RPC error object of this code and `id: null`.
    RpcError400(i64),
    /// HTTP 200 carrying a JSON-RPC error object.
    RpcError200,
    /// HTTP 200 carrying a tool result with `isError: true`.
    ToolError,
}

/// `(what, method, body, content type, send Accept, expected answer)`.
type McpCase = (&'static str, Method, String, &'static str, bool, McpAnswer);

fn mcp_cases() -> Vec<McpCase> {
    use McpAnswer::*;
    let json = "application/json";
    let rpc = |what, body: &str, answer| (what, Method::POST, body.to_string(), json, true, answer);
    let call = |what, params: &str, answer| {
        rpc(
            what,
            &format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{params}}}"#),
            answer,
        )
    };
    let huge = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{{"pad":"{}"}}}}"#,
        "a".repeat(3 * 1024 * 1024)
    );
    vec![
        // Not JSON-RPC at all.
        rpc("malformed JSON", "{", RpcError400(-32700)),
        rpc(
            "truncated JSON",
            r#"{"jsonrpc":"2.0","id":1,"#,
            RpcError400(-32700),
        ),
        rpc("a bare array", "[]", RpcError400(-32600)),
        rpc("a bare number", "5", RpcError400(-32600)),
        rpc(
            "jsonrpc 1.0",
            r#"{"jsonrpc":"1.0","id":1,"method":"tools/list"}"#,
            RpcError400(-32600),
        ),
        rpc(
            "a numeric method",
            r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
            RpcError400(-32600),
        ),
        rpc(
            "an object id",
            r#"{"jsonrpc":"2.0","id":{"x":1},"method":"tools/list"}"#,
            RpcError400(-32600),
        ),
        // JSON-RPC, but not a method or params this server has.
        rpc(
            "an unknown method",
            r#"{"jsonrpc":"2.0","id":1,"method":"no/such/method"}"#,
            RpcError200,
        ),
        call("a numeric tool name", r#"{"name":5}"#, RpcError200),
        call(
            "string arguments",
            r#"{"name":"create_heartbeat","arguments":"x"}"#,
            RpcError200,
        ),
        // Tool calls the API refuses.
        call(
            "an unknown tool",
            r#"{"name":"make_coffee","arguments":{}}"#,
            RpcError200,
        ),
        call(
            "a wrong argument type",
            r#"{"name":"create_heartbeat","arguments":{"name":5}}"#,
            ToolError,
        ),
        call(
            "a negative period",
            r#"{"name":"create_heartbeat","arguments":{"name":"x","period_minutes":-5}}"#,
            ToolError,
        ),
        call(
            "an unknown argument",
            r#"{"name":"create_heartbeat","arguments":{"name":"x","colour":"red"}}"#,
            ToolError,
        ),
        call(
            "a traversing id",
            r#"{"name":"delete_heartbeat","arguments":{"id":"../../jobs"}}"#,
            ToolError,
        ),
        call(
            "an unknown id",
            r#"{"name":"update_heartbeat","arguments":{"id":"00000000-0000-0000-0000-000000000000","name":"y"}}"#,
            ToolError,
        ),
        call(
            "bad metric ids",
            r#"{"name":"trigger_recompute","arguments":{"metric_ids":5}}"#,
            ToolError,
        ),
        call(
            "SQL in an id",
            r#"{"name":"get_job","arguments":{"job_id":"x'; DROP TABLE heartbeat.heartbeat; --"}}"#,
            ToolError,
        ),
        // Transport faults.
        ("a huge body", Method::POST, huge, json, true, Envelope),
        (
            "no Accept header",
            Method::POST,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.into(),
            json,
            false,
            Envelope,
        ),
        (
            "a text/plain body",
            Method::POST,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.into(),
            "text/plain",
            true,
            Envelope,
        ),
        ("GET", Method::GET, String::new(), json, true, Envelope),
        (
            "DELETE",
            Method::DELETE,
            String::new(),
            json,
            true,
            Envelope,
        ),
        ("PUT", Method::PUT, "{}".into(), json, true, Envelope),
    ]
}

/// Why an `/mcp` answer is not the expected one, if it is not.
async fn check_mcp(app: &TestApp, case: &McpCase) -> Option<String> {
    let (what, method, body, content_type, accept, answer) = case;
    let mut req = app
        .client
        .request(method.clone(), app.url("/mcp"))
        .header("content-type", *content_type);
    if *accept {
        req = req.header("accept", "application/json, text/event-stream");
    }
    if !body.is_empty() {
        req = req.body(body.clone());
    }
    let r = req.send().await.expect("the daemon answers");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let ok = match answer {
        McpAnswer::Envelope => (400..500).contains(&status) && v["error"]["code"].is_string(),
        McpAnswer::RpcError400(code) => {
            status == 400
                && v["jsonrpc"] == "2.0"
                && v["id"].is_null()
                && v["error"]["code"] == *code
                && v["error"]["message"].is_string()
        }
        McpAnswer::RpcError200 => {
            status == 200 && v["error"]["code"].is_i64() && v["error"]["message"].is_string()
        }
        McpAnswer::ToolError => {
            status == 200
                && v["result"]["isError"] == true
                && v["result"]["content"][0]["text"].is_string()
        }
    };
    (!ok).then(|| {
        format!(
            "/mcp {what}: want {answer:?}, got {status} {}",
            &text[..text.len().min(200)]
        )
    })
}

/// The ping protocol: unknown or odd tokens are 4xx in plain text.
fn ping_cases() -> Vec<Case> {
    let mut out = Vec::new();
    let tokens = [
        "nope",
        "..%2F..%2Fetc%2Fpasswd",
        "x%27%3B%20DROP%20TABLE%20heartbeat.ping%3B%20--",
        "%00%01%02",
        "%F0%9F%92%93",
        &"a".repeat(5000),
    ];
    for prefix in ["/hb", "/ping"] {
        for token in tokens {
            out.push((Method::POST, format!("{prefix}/{token}"), None));
            out.push((Method::GET, format!("{prefix}/{token}/fail"), None));
            out.push((Method::POST, format!("{prefix}/{token}/99999999999"), None));
            out.push((Method::POST, format!("{prefix}/{token}/-1"), None));
            out.push((
                Method::POST,
                format!("{prefix}/{token}/start?rid=not-a-uuid"),
                None,
            ));
        }
    }
    out
}

async fn settled_row_counts(app: &TestApp) -> Vec<(String, i64)> {
    let mut last = row_counts(app).await;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = row_counts(app).await;
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

async fn row_counts(app: &TestApp) -> Vec<(String, i64)> {
    let db = app.db().await;
    let tables: Vec<String> = db
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'heartbeat' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = Vec::new();
    for t in tables {
        // Table names come from the catalogue, not from input.
        let n: i64 = db
            .query_one(&format!("SELECT count(*) FROM heartbeat.\"{t}\""), &[])
            .await
            .unwrap()
            .get(0);
        out.push((t, n));
    }
    out
}

async fn send(app: &TestApp, (method, path, body): &Case) -> (u16, String) {
    let mut req = app.client.request(method.clone(), app.url(path));
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.clone());
    }
    let r = req.send().await.expect("the daemon answers");
    let status = r.status().as_u16();
    (status, r.text().await.unwrap_or_default())
}

#[tokio::test]
async fn bad_input_on_every_route_is_a_4xx_with_the_envelope_and_changes_nothing() {
    let app = spawn_app_with(Config {
        monitor: MonitorConfig {
            loops: false,
            ..MonitorConfig::default()
        },
        ..test_config()
    })
    .await;
    // Start-up tasks (the built-in job heartbeats) write once after migrating; take
    // the baseline once the counts have settled.
    let before = settled_row_counts(&app).await;
    let mut failures = Vec::new();
    for case in cases() {
        let (status, text) = send(&app, &case).await;
        let enveloped = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .is_some();
        if !(400..500).contains(&status) || !enveloped {
            failures.push(format!(
                "{} {} {} -> {status} {}",
                case.0,
                &case.1[..case.1.len().min(120)],
                case.2
                    .as_deref()
                    .map(|b| &b[..b.len().min(80)])
                    .unwrap_or(""),
                &text[..text.len().min(200)]
            ));
        }
    }
    for case in mcp_cases() {
        failures.extend(check_mcp(&app, &case).await);
    }
    for case in ping_cases() {
        let (status, text) = send(&app, &case).await;
        if !(400..500).contains(&status) {
            failures.push(format!(
                "{} {} -> {status} {}",
                case.0,
                &case.1[..case.1.len().min(120)],
                &text[..text.len().min(200)]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "not a clean 4xx:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        row_counts(&app).await,
        before,
        "bad input changed the database"
    );
    let (status, _) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "the daemon is still ready after all that");
}

/// serde derives let a struct deserialize from a JSON array (its fields in order),
/// so `[]` with all-default fields reads as `{}`: a recompute of everything.
/// Fix: have `ApiJson` refuse a top-level non-object before deserializing.
#[tokio::test]
async fn a_json_array_body_is_refused_where_an_object_is_expected() {
    let app = crate::helpers::spawn_app().await;
    let (status, body) = send(
        &app,
        &(
            Method::POST,
            "/api/metrics/recompute".to_string(),
            Some("[]".to_string()),
        ),
    )
    .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn routes_that_take_no_query_refuse_an_unknown_parameter_by_name() {
    let app = spawn_app_with(test_config()).await;
    let nil = "00000000-0000-0000-0000-000000000000";
    let paths = [
        "/api/heartbeats".to_string(),
        format!("/api/heartbeats/{nil}/pings"),
        format!("/api/heartbeats/{nil}/flips"),
        "/api/webhooks".to_string(),
        "/api/projects".to_string(),
        "/api/schedule".to_string(),
        "/api/metrics".to_string(),
        "/api/metrics/active-job".to_string(),
        format!("/api/metrics/recompute/{nil}"),
        "/api/jobs/recompute".to_string(),
        "/api/audit/cuts".to_string(),
        "/api/openapi.json".to_string(),
    ];
    for path in &paths {
        let (status, body) = app.get_json(&format!("{path}?staus=down")).await;
        assert_eq!(
            (status, error_code(&body)),
            (422, "invalid_query"),
            "{path}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("staus"), "{path}: {body}");
        // The same route without the query is not refused for it.
        let (status, body) = app.get_json(path).await;
        assert_ne!(status, 422, "{path}: {body}");
    }
    // Writes too, before they do anything.
    let writes = [
        (
            Method::POST,
            "/api/heartbeats".to_string(),
            r#"{"name": "q"}"#,
        ),
        (
            Method::PATCH,
            format!("/api/heartbeats/{nil}"),
            r#"{"paused": true}"#,
        ),
        (Method::DELETE, format!("/api/heartbeats/{nil}"), ""),
        (
            Method::POST,
            "/api/metrics/recompute".to_string(),
            r#"{"metric_ids": "all"}"#,
        ),
        (Method::POST, format!("/api/jobs/{nil}/cancel"), ""),
        (
            Method::POST,
            "/api/webhooks".to_string(),
            r#"{"url": "http://127.0.0.1:9/"}"#,
        ),
        (Method::DELETE, format!("/api/webhooks/{nil}"), ""),
        (
            Method::POST,
            "/api/projects".to_string(),
            r#"{"name": "q"}"#,
        ),
    ];
    for (method, path, body) in writes {
        let case = (method, format!("{path}?staus=down"), Some(body.to_string()));
        let (status, text) = send(&app, &case).await;
        assert_eq!(status, 422, "{} {path}: {text}", case.0);
        assert!(
            text.contains("invalid_query") && text.contains("staus"),
            "{text}"
        );
    }
    let (_, list) = app.get_json("/api/heartbeats").await;
    assert!(!list.to_string().contains("\"q\""), "{list}");
    let (_, active) = app.get_json("/api/metrics/active-job").await;
    assert!(
        active["job"].is_null() || active.get("job").is_none(),
        "{active}"
    );
}

/// PostgreSQL text cannot hold a NUL: a body with one is refused with 422
/// `invalid_input`, naming the field, before anything is stored; a `\u0000`
/// that is only text (an escaped backslash before `u0000`) is not a NUL.
#[tokio::test]
async fn a_nul_in_a_body_is_refused_naming_the_field() {
    let app = spawn_app_with(test_config()).await;
    let nul = |field: &str, body: &str| {
        (
            field.to_string(),
            (
                Method::POST,
                "/api/heartbeats".to_string(),
                Some(body.to_string()),
            ),
        )
    };
    let cases = [
        nul("name", r#"{"name": "a\u0000b"}"#),
        nul("schedule", r#"{"name": "n", "schedule": "\u0000"}"#),
        nul("tz", r#"{"name": "n", "tz": "UTC\u0000"}"#),
        (
            "url".to_string(),
            (
                Method::POST,
                "/api/webhooks".to_string(),
                Some(r#"{"url": "http://x.example/\u0000"}"#.to_string()),
            ),
        ),
        (
            "metric_ids[1]".to_string(),
            (
                Method::POST,
                "/api/metrics/recompute".to_string(),
                Some(r#"{"metric_ids": ["a", "\u0000"]}"#.to_string()),
            ),
        ),
        (
            "name".to_string(),
            (
                Method::POST,
                "/api/projects".to_string(),
                Some(r#"{"name": "p\u0000"}"#.to_string()),
            ),
        ),
    ];
    for (field, case) in &cases {
        let (status, text) = send(&app, case).await;
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (status, error_code(&body)),
            (422, "invalid_input"),
            "{text}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert_eq!(
            message,
            format!("{field}: must not contain NUL (\\u0000)"),
            "{text}"
        );
    }
    let (_, list) = app.get_json("/api/heartbeats").await;
    let stored: Vec<&str> = list["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|hb| hb["name"].as_str())
        .filter(|name| !name.starts_with("job:"))
        .collect();
    assert!(stored.is_empty(), "nothing is stored: {stored:?}");
    // Text that only spells `\u0000` is a name like any other.
    let (status, created) = app
        .post_json("/api/heartbeats", &serde_json::json!({"name": "a\\u0000b"}))
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "a\\u0000b");
}

/// JSON has one number type, and the OpenAPI document's integers include
/// `1046.0`: the server takes an integral float where it takes an integer,
/// and refuses a fraction.
#[tokio::test]
async fn an_integral_float_is_an_integer() {
    let app = spawn_app_with(test_config()).await;
    let (status, created) = app
        .post_json(
            "/api/heartbeats",
            &serde_json::json!({"name": "f", "period_seconds": 1046.0, "grace_seconds": 0.0}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["period_seconds"], 1046);
    assert_eq!(created["grace_seconds"], 0);
    let (status, body) = app
        .post_json(
            "/api/heartbeats",
            &serde_json::json!({"name": "g", "period_seconds": 1046.5}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "invalid_input"),
        "{body}"
    );
}

/// What the OpenAPI document now states, the server holds to: names counted
/// in characters, `GET /api/jobs?limit=` at most 500, `metric_ids` not empty.
#[tokio::test]
async fn the_documented_bounds_are_the_servers() {
    let app = spawn_app_with(test_config()).await;
    let (status, body) = app
        .post_json(
            "/api/heartbeats",
            &serde_json::json!({"name": "é".repeat(200)}),
        )
        .await;
    assert_eq!(
        status, 201,
        "200 two-byte characters are 200 characters: {body}"
    );
    let (status, body) = app
        .post_json(
            "/api/heartbeats",
            &serde_json::json!({"name": "é".repeat(201)}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "invalid_input"),
        "{body}"
    );
    let (status, body) = app
        .post_json(
            "/api/projects",
            &serde_json::json!({"name": "ü".repeat(100)}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .post_json(
            "/api/projects",
            &serde_json::json!({"name": "ü".repeat(101)}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "invalid_input"),
        "{body}"
    );
    let (status, body) = app.get_json("/api/jobs?limit=500").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.get_json("/api/jobs?limit=501").await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "invalid_query"),
        "{body}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("limit"));
    let (status, body) = app
        .post_json(
            "/api/webhooks",
            &serde_json::json!({"url": "http://user:pw@x.example/"}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "invalid_input"),
        "{body}"
    );
}
