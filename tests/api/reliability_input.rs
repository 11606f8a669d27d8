//! Bad input across every route, from one table: each answer is a 4xx (with the
//! JSON error envelope on JSON routes; the ping protocol answers plain text by
//! contract), never a 5xx, and no `heartbeat.*` table changes.

use heartbeat::config::Config;
use heartbeat::monitor::MonitorConfig;
use reqwest::Method;

use crate::helpers::{spawn_app_with, test_config, TestApp};

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
    ]
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
