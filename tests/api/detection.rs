//! Detection rules as a user meets them, under a controlled clock (one
//! deadline-loop iteration at a chosen `now`): the daemon's own job heartbeats
//! that cannot be switched off by accident, failure and recovery thresholds, and
//! tags.

#![allow(dead_code)] // helpers for the threshold tests that follow

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use heartbeat::config::Config;
use heartbeat::monitor::{deadline, MonitorConfig};
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app_with, test_config, TestApp};

/// Loops off: each test drives the deadline loop itself.
fn quiet_config() -> Config {
    Config {
        monitor: MonitorConfig {
            loops: false,
            ..MonitorConfig::default()
        },
        ..test_config()
    }
}

async fn quiet_app() -> TestApp {
    spawn_app_with(quiet_config()).await
}

async fn create(app: &TestApp, body: Value) -> Value {
    let (status, hb) = app.post_json("/api/heartbeats", &body).await;
    assert_eq!(status, 201, "{hb}");
    hb
}

async fn get_hb(app: &TestApp, id: &str) -> Value {
    let (status, hb) = app.get_json(&format!("/api/heartbeats/{id}")).await;
    assert_eq!(status, 200, "{hb}");
    hb
}

async fn patch(app: &TestApp, id: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .patch(app.url(&format!("/api/heartbeats/{id}")))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn delete(app: &TestApp, id: &str) -> (u16, Value) {
    let r = app
        .client
        .delete(app.url(&format!("/api/heartbeats/{id}")))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ping_path(hb: &Value) -> String {
    let url = hb["ping_url"].as_str().unwrap();
    url[url.find("/hb/").unwrap()..].to_string()
}

async fn ping(app: &TestApp, path: &str) -> DateTime<Utc> {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    let token = path.trim_start_matches("/hb/");
    let token = token.split(['/', '?']).next().unwrap();
    let db = app.state.pool.get().await.unwrap();
    db.query_one(
        "SELECT last_ping_at FROM heartbeat.heartbeat WHERE token = $1",
        &[&token],
    )
    .await
    .unwrap()
    .get(0)
}

async fn tick(app: &TestApp, now: DateTime<Utc>) -> deadline::Tick {
    deadline::run_once(&app.state.pool, now).await.unwrap()
}

async fn flips(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, body) = app.get_json(&format!("/api/heartbeats/{id}/flips")).await;
    assert_eq!(status, 200, "{body}");
    body["flips"].as_array().unwrap().clone()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

async fn job_heartbeat(app: &TestApp, kind: &str) -> Option<Value> {
    let (_, list) = app.get_json("/api/heartbeats").await;
    list["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == format!("job:{kind}"))
        .cloned()
}

async fn wait_job_heartbeat(app: &TestApp, kind: &str) -> Value {
    for _ in 0..200 {
        if let Some(hb) = job_heartbeat(app, kind).await {
            return hb;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no job:{kind} heartbeat");
}

#[tokio::test]
async fn a_job_heartbeat_can_be_paused_but_not_deleted_or_retimed() {
    let app = quiet_app().await;
    let hb = wait_job_heartbeat(&app, "audit").await;
    assert_eq!(hb["job"], true, "{hb}");
    let id = hb["id"].as_str().unwrap();

    let (status, body) = delete(&app, id).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(error_code(&body), "job_heartbeat");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("job:audit") && message.contains("cannot be deleted"),
        "{message}"
    );

    for (field, value) in [
        ("period_seconds", json!(60)),
        ("grace_seconds", json!(60)),
        ("schedule", json!("0 * * * *")),
        ("tz", json!("Europe/Paris")),
        ("name", json!("renamed")),
    ] {
        let (status, body) = patch(&app, id, json!({ field: value })).await;
        assert_eq!(status, 409, "{field}: {body}");
        assert_eq!(error_code(&body), "job_heartbeat");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field) && message.contains("cron table"),
            "{message}"
        );
    }
    // Unchanged values are no change; pausing is allowed.
    let (status, body) = patch(
        &app,
        id,
        json!({"schedule": hb["schedule"], "tz": "UTC", "paused": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "paused");
    assert_eq!(body["schedule"], hb["schedule"]);
    // A user's own heartbeat is not a job heartbeat, and can be deleted.
    let own = create(&app, json!({"name": "job:mine"})).await;
    assert_eq!(own["job"], false);
    assert_eq!(delete(&app, own["id"].as_str().unwrap()).await.0, 204);
}

#[tokio::test]
async fn a_job_heartbeat_deleted_behind_the_apis_back_comes_back_within_one_interval() {
    let interval = Duration::from_millis(300);
    let mut config = quiet_config();
    config.monitor.deadline_interval_ms = interval.as_millis() as u64;
    let app = spawn_app_with(config).await;
    let before = wait_job_heartbeat(&app, "segments").await;
    let db = app.db().await;
    let gone = Instant::now();
    let n = db
        .execute(
            "DELETE FROM heartbeat.heartbeat WHERE name = 'job:segments'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let back = loop {
        if let Some(hb) = job_heartbeat(&app, "segments").await {
            break hb;
        }
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "job:segments never came back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let took = gone.elapsed();
    // One interval, plus room for a busy test machine to schedule the loop.
    assert!(
        took <= interval + Duration::from_millis(700),
        "came back after {took:?}"
    );
    // The same heartbeat: id, token (the jobs ping it), timing.
    for field in ["id", "ping_url", "schedule", "tz", "grace_seconds"] {
        assert_eq!(back[field], before[field], "{field}");
    }
    assert_eq!(back["status"], "pending");
}
