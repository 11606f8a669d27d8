//! The detection events where operators and agents look: `/metrics` counts
//! them, and the MCP `get_heartbeat` tool shows the recent status changes with
//! their causes, the pings a rule flagged and the detection events.

use serde_json::{json, Value};

use crate::mcp::McpClient;
use crate::monitor::{create, quiet_app};

#[tokio::test]
async fn an_early_success_is_counted_in_metrics_and_shown_by_the_mcp_tool() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "twice", "period_seconds": 3600, "min_interval_seconds": 3600,
               "failure_threshold": 5}),
    )
    .await;
    let url = hb["ping_url"].as_str().unwrap();
    let path = &url[url.find("/hb/").unwrap()..];
    for _ in 0..2 {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("heartbeat_detection_events_total{event=\"early\"} 1"),
        "{metrics}"
    );
    let (mut mcp, _) = McpClient::connect(&app, None).await;
    let got: Value = mcp.call_ok("get_heartbeat", json!({"id": hb["id"]})).await;
    let flagged = got["flagged_pings"].as_array().expect("flagged pings");
    assert_eq!(flagged.len(), 1, "{got}");
    assert_eq!(flagged[0]["event"], "early");
    assert!(flagged[0]["reason"]
        .as_str()
        .unwrap()
        .contains("min_interval_seconds 3600"));
    assert!(got["recent_flips"].is_array(), "{got}");
    // The detection events too (the flagged ping is one; missed deadlines
    // and timeouts below the threshold would be listed beside it).
    let recent = got["recent_events"].as_array().expect("recent events");
    assert_eq!(recent.len(), 1, "{got}");
    assert_eq!(recent[0]["event"], "early");
    assert!(recent[0]["ping_seq"].is_i64(), "{got}");
    assert_eq!(got["min_interval_seconds"], 3600);
}
