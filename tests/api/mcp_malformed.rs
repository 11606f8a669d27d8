//! `/mcp` answers every malformed JSON-RPC shape as docs/mcp.md's table says,
//! one row at a time: the HTTP status, the JSON-RPC error code and the `id` the
//! error is for (JSON-RPC 2.0, "Request object" and "Error object"; MCP's
//! narrowing: ids are strings or integers, never null; no batches).

use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

/// POSTs `body` to `/mcp` as an MCP client would; returns (status, body as JSON
/// or `Null` when empty).
async fn post(app: &TestApp, body: &str) -> (u16, Value) {
    let r = app
        .client
        .post(app.url("/mcp"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2025-06-18")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// One row of the table: `(what, body, HTTP status, JSON-RPC code, id)`.
type Row = (&'static str, String, u16, i64, Value);

fn rows() -> Vec<Row> {
    let req = |rest: &str| format!(r#"{{"jsonrpc":"2.0","id":7,{rest}}}"#);
    let null = Value::Null;
    vec![
        ("not JSON", "{nope".into(), 400, -32700, null.clone()),
        ("an empty batch", "[]".into(), 400, -32600, null.clone()),
        (
            "a batch",
            format!("[{}]", req(r#""method":"ping""#)),
            400,
            -32600,
            null.clone(),
        ),
        ("a string", r#""ping""#.into(), 400, -32600, null.clone()),
        ("a number", "5".into(), 400, -32600, null.clone()),
        ("null", "null".into(), 400, -32600, null.clone()),
        ("an empty object", "{}".into(), 400, -32600, null.clone()),
        (
            "no jsonrpc member",
            r#"{"id":7,"method":"ping"}"#.into(),
            400,
            -32600,
            null.clone(),
        ),
        (
            "jsonrpc 1.0",
            r#"{"jsonrpc":"1.0","id":7,"method":"ping"}"#.into(),
            400,
            -32600,
            null.clone(),
        ),
        (
            "no method",
            req(r#""params":{}"#),
            400,
            -32600,
            null.clone(),
        ),
        (
            "a numeric method",
            req(r#""method":5"#),
            400,
            -32600,
            null.clone(),
        ),
        (
            "a null method",
            req(r#""method":null"#),
            400,
            -32600,
            null.clone(),
        ),
        (
            "a null id",
            r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#.into(),
            400,
            -32600,
            null.clone(),
        ),
        (
            "a fractional id",
            r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#.into(),
            400,
            -32600,
            null.clone(),
        ),
        (
            "an object id",
            r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#.into(),
            400,
            -32600,
            null.clone(),
        ),
        (
            "params a string",
            req(r#""method":"tools/list","params":"x""#),
            400,
            -32600,
            null.clone(),
        ),
        (
            "params a number",
            req(r#""method":"tools/list","params":3"#),
            400,
            -32600,
            null.clone(),
        ),
        (
            "params a boolean",
            req(r#""method":"tools/list","params":true"#),
            400,
            -32600,
            null.clone(),
        ),
        (
            "params null",
            req(r#""method":"tools/list","params":null"#),
            400,
            -32600,
            null.clone(),
        ),
        (
            "params a string, unknown method",
            req(r#""method":"no/such","params":"x""#),
            400,
            -32600,
            null.clone(),
        ),
        (
            "params an array",
            req(r#""method":"tools/list","params":[]"#),
            200,
            -32602,
            json!(7),
        ),
        (
            "params an array, string id",
            r#"{"jsonrpc":"2.0","id":"q","method":"tools/call","params":["list_heartbeats"]}"#
                .into(),
            200,
            -32602,
            json!("q"),
        ),
        (
            "tools/call without params",
            req(r#""method":"tools/call""#),
            200,
            -32602,
            json!(7),
        ),
        (
            "tools/call without a name",
            req(r#""method":"tools/call","params":{"arguments":{}}"#),
            200,
            -32602,
            json!(7),
        ),
        (
            "tools/call with a numeric name",
            req(r#""method":"tools/call","params":{"name":5}"#),
            200,
            -32602,
            json!(7),
        ),
        (
            "tools/call with string arguments",
            req(r#""method":"tools/call","params":{"name":"list_heartbeats","arguments":"x"}"#),
            200,
            -32602,
            json!(7),
        ),
        (
            "tools/call of an unknown tool",
            req(r#""method":"tools/call","params":{"name":"make_coffee"}"#),
            200,
            -32602,
            json!(7),
        ),
        (
            "initialize without its fields",
            req(r#""method":"initialize","params":{}"#),
            200,
            -32602,
            json!(7),
        ),
        (
            "an unknown method",
            req(r#""method":"no/such/method""#),
            200,
            -32601,
            json!(7),
        ),
        (
            "an unadvertised capability",
            req(r#""method":"resources/list""#),
            200,
            -32601,
            json!(7),
        ),
        (
            "a notification with array params",
            r#"{"jsonrpc":"2.0","method":"notifications/initialized","params":[]}"#.into(),
            400,
            -32602,
            null.clone(),
        ),
        (
            "a notification with string params",
            r#"{"jsonrpc":"2.0","method":"notifications/initialized","params":"x"}"#.into(),
            400,
            -32600,
            null.clone(),
        ),
        (
            "a response",
            r#"{"jsonrpc":"2.0","id":7,"result":{}}"#.into(),
            400,
            -32600,
            Value::Null,
        ),
    ]
}

#[tokio::test]
async fn every_malformed_shape_gets_the_answer_docs_mcp_md_gives_it() {
    let app = spawn_app().await;
    let mut wrong = Vec::new();
    for (what, body, status, code, id) in rows() {
        let (got_status, got) = post(&app, &body).await;
        let ok = got_status == status
            && got["jsonrpc"] == "2.0"
            && got["error"]["code"] == code
            && got["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
            && got.get("result").is_none()
            && got["id"] == id;
        if !ok {
            wrong.push(format!(
                "{what}: want {status} {code} id {id}, got {got_status} {got}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test]
async fn the_messages_name_what_is_wrong() {
    let app = spawn_app().await;
    let message = |v: &Value| {
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let (_, v) = post(
        &app,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#,
    )
    .await;
    assert!(message(&v).contains("\"name\" must be a string"), "{v}");
    let (_, v) = post(&app, r#"{"jsonrpc":"2.0","id":1,"method":"no/such"}"#).await;
    assert!(message(&v).contains("'no/such'"), "{v}");
    assert!(message(&v).contains("tools/call"), "{v}");
    let (_, v) = post(
        &app,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":"x"}"#,
    )
    .await;
    assert!(message(&v).contains("\"params\""), "{v}");
    let (_, v) = post(&app, "[]").await;
    assert!(message(&v).contains("batch"), "{v}");
}

#[tokio::test]
async fn well_formed_messages_still_work_and_notifications_get_202() {
    let app = spawn_app().await;
    let (status, v) = post(
        &app,
        r#"{"jsonrpc":"2.0","id":"x","method":"tools/list","params":{}}"#,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["id"], "x");
    assert!(v["result"]["tools"].is_array(), "{v}");
    let (status, v) = post(&app, r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#).await;
    assert_eq!(status, 200, "params may be left out: {v}");
    let (status, v) = post(&app, r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#).await;
    assert_eq!((status, v["result"].clone()), (200, json!({})));
    for notification in [
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/no_such_thing","params":{}}"#,
    ] {
        let (status, v) = post(&app, notification).await;
        assert_eq!(status, 202, "{notification}: {v}");
        assert_eq!(v, Value::Null, "no body for a notification");
    }
}
