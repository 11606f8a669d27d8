//! MCP's `trigger_recompute` with a backfill range: `from`, `to` and `dry_run`
//! mean what they mean to `POST /api/metrics/recompute`, and a refused range is
//! a tool error carrying the API's `invalid_range` message, which names the bound.

use chrono::{DateTime, Duration as Span, Utc};
use serde_json::json;

use crate::helpers::spawn_app_with;
use crate::mcp::McpClient;
use crate::refresh_support::{config_with, definitions, hourly_counter};

fn last_midnight() -> DateTime<Utc> {
    Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

#[tokio::test]
async fn trigger_recompute_backfills_a_range_and_its_job_shows_the_range_per_metric() {
    let dir = definitions(&[
        ("a", &hourly_counter("a", "counter")),
        ("b", &hourly_counter("b", "counter")),
    ]);
    let app = spawn_app_with(config_with(&dir)).await;
    let (mut mcp, _) = McpClient::connect(&app, None).await;
    let m = last_midnight();
    let (from, to) = (m - Span::hours(48), m - Span::hours(24));

    let started = mcp
        .call_ok(
            "trigger_recompute",
            json!({"metric_ids": ["a"], "from": from.to_rfc3339(), "to": to.to_rfc3339()}),
        )
        .await;
    let job_id = started["job_id"].as_str().expect("a job_id").to_string();
    assert_eq!(started["coalesced"], false, "{started}");

    let job = mcp.call_ok("get_job", json!({"job_id": job_id})).await;
    assert_eq!(job["trigger"], "api", "{job}");
    assert_eq!(job["scope"]["ranges"]["a"][0]["from"], json!(from), "{job}");
    assert_eq!(job["scope"]["ranges"]["a"][0]["to"], json!(to), "{job}");
    assert!(
        job["scope"]["ranges"].get("b").is_none(),
        "only the metric asked: {job}"
    );
}

#[tokio::test]
async fn a_dry_run_through_mcp_answers_the_buckets_and_runs_nothing() {
    let dir = definitions(&[("orders", &hourly_counter("order", "counter"))]);
    let app = spawn_app_with(config_with(&dir)).await;
    let (mut mcp, _) = McpClient::connect(&app, None).await;
    let m = last_midnight();
    let (from, to) = (m - Span::hours(72), m - Span::hours(48));

    let plan = mcp
        .call_ok(
            "trigger_recompute",
            json!({"metric_ids": ["orders"], "from": from.format("%Y-%m-%d").to_string(),
                   "to": to.format("%Y-%m-%d").to_string(), "dry_run": true}),
        )
        .await;
    assert_eq!(plan["dry_run"], true, "{plan}");
    assert_eq!(plan["metrics"][0]["metric_id"], "orders", "{plan}");
    assert_eq!(plan["metrics"][0]["buckets"], 24, "{plan}");
    assert_eq!(plan["metrics"][0]["runs"][0]["from"], json!(from), "{plan}");
    let (_, jobs) = app.get_json("/api/jobs").await;
    assert!(
        jobs["jobs"].as_array().unwrap().is_empty(),
        "nothing ran: {jobs}"
    );
}

#[tokio::test]
async fn a_refused_range_is_a_tool_error_naming_the_bound_and_the_session_carries_on() {
    let dir = definitions(&[("orders", &hourly_counter("order", "counter"))]);
    let app = spawn_app_with(config_with(&dir)).await;
    let (mut mcp, _) = McpClient::connect(&app, None).await;
    let m = last_midnight();
    let (early, late) = (
        (m - Span::hours(72)).to_rfc3339(),
        (m - Span::hours(48)).to_rfc3339(),
    );

    let refused = [
        (
            json!({"from": late, "to": early}),
            "invalid_range: to (",
            "must be after from",
        ),
        (
            json!({"from": "2001-01-01"}),
            "invalid_range: from (",
            "refresh.history_days",
        ),
        (
            json!({"from": "last tuesday"}),
            "invalid_range: from:",
            "neither an RFC 3339 time",
        ),
        (
            json!({"to": "2026-01-01"}),
            "invalid_range:",
            "to needs from",
        ),
        (
            json!({"dry_run": true}),
            "invalid_input:",
            "dry_run needs from",
        ),
    ];
    for (arguments, starts, names) in refused {
        let msg = mcp.call_err("trigger_recompute", arguments.clone()).await;
        assert!(msg.starts_with(starts), "{arguments}: {msg}");
        assert!(msg.contains(names), "{arguments}: {msg}");
    }
    // Strict arguments: a wrong type names the field.
    let msg = mcp
        .call_err("trigger_recompute", json!({"dry_run": "yes"}))
        .await;
    assert!(
        msg.contains("invalid arguments for trigger_recompute"),
        "{msg}"
    );
    let (_, jobs) = app.get_json("/api/jobs").await;
    assert!(
        jobs["jobs"].as_array().unwrap().is_empty(),
        "no refused call started a job: {jobs}"
    );
    // The session is still usable.
    let ok = mcp
        .call_ok("trigger_recompute", json!({"from": early, "to": late}))
        .await;
    assert!(ok["job_id"].is_string(), "{ok}");
}

#[tokio::test]
async fn the_tool_schema_lists_from_to_and_dry_run() {
    let app = spawn_app_with(crate::helpers::test_config()).await;
    let (mut mcp, _) = McpClient::connect(&app, None).await;
    let tools = mcp.request("tools/list", json!({})).await.result();
    let tool = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "trigger_recompute")
        .cloned()
        .unwrap();
    let props = &tool["inputSchema"]["properties"];
    assert_eq!(props["from"]["type"], "string", "{tool}");
    assert_eq!(props["to"]["type"], "string", "{tool}");
    assert_eq!(props["dry_run"]["type"], "boolean", "{tool}");
    assert_eq!(tool["inputSchema"]["required"], json!([]), "{tool}");
    let description = tool["description"].as_str().unwrap();
    assert!(
        description.contains("from") && description.contains("dry_run"),
        "{description}"
    );
}
