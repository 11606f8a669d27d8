//! The issue's remaining delivery cases: every preset's `reminder` request in
//! its service's documented format (a chat message, PagerDuty's re-trigger of
//! the same dedup key, an Opsgenie note on the alert by alias, a comment on the
//! issue the outage opened); a channel that fails twice then succeeds, retried
//! with backoff and delivered once; no reminder for a paused heartbeat; `$TAGS`.
//! Time is driven by explicit `run_once(now)` calls.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Utc};
use heartbeat::monitor::deadline;
use heartbeat::notify::reminder;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp};
use crate::notify_channels::{add_channel, deliverer, pinged, quiet_config, Receiver, Seen, NASTY};

/// The down flip's instant.
async fn down_at(app: &TestApp, hb: &Value) -> DateTime<Utc> {
    let id = hb["id"].as_str().unwrap();
    let (_, flips) = app.get_json(&format!("/api/heartbeats/{id}/flips")).await;
    flips["flips"][0]["at"].as_str().unwrap().parse().unwrap()
}

/// A `kind` channel reminding every minute at a receiver answering `answer`;
/// the heartbeat goes down, then one interval passes. Returns the heartbeat and
/// the requests seen: the down alert's, then the reminder's.
async fn reminded(kind: &str, config: Value, answer: Value) -> (Value, Vec<Seen>, usize) {
    let app = spawn_app_with(quiet_config()).await;
    let (receiver, url) = Receiver::start(answer).await;
    let mut config = config;
    let base = config["url"].as_str().unwrap_or("").to_string();
    config["url"] = json!(format!("{url}{base}"));
    add_channel(
        &app,
        json!({"kind": kind, "config": config, "repeat_every_seconds": 60}),
    )
    .await;
    let (hb, when) = pinged(&app, NASTY, json!({})).await;
    deadline::run_once(&app.state.pool, when).await.unwrap();
    let d = deliverer(&app);
    d.deliver_once(&app.state.pool, when).await.unwrap();
    let downs = receiver.seen().len();
    let due = down_at(&app, &hb).await + chrono::Duration::seconds(60);
    assert_eq!(reminder::run_once(&app.state.pool, due).await.unwrap(), 1);
    let done = d.deliver_once(&app.state.pool, due).await.unwrap();
    assert_eq!(done.delivered, 1, "{kind}: the reminder is delivered");
    (hb, receiver.seen(), downs)
}

#[tokio::test]
async fn every_chat_preset_sends_its_reminder_as_a_still_down_message() {
    let still = format!("{NASTY} is still DOWN");
    for (kind, config, field) in [
        ("slack", json!({"url": "/services/T0/B0/X"}), "/text"),
        ("discord", json!({"url": "/api/webhooks/1/t"}), "/content"),
        ("mattermost", json!({"url": "/hooks/x"}), "/text"),
        ("google_chat", json!({"url": "/v1/spaces/x"}), "/text"),
        (
            "teams",
            json!({"url": "/workflows/x"}),
            "/attachments/0/content/body/0/text",
        ),
        (
            "telegram",
            json!({"bot_token": "123456:ABC-DEF1234ghIkl", "chat_id": 42}),
            "/text",
        ),
    ] {
        let (_hb, seen, downs) = reminded(kind, config, json!({"ok": true})).await;
        assert_eq!(seen.len(), downs + 1, "{kind}");
        let r = seen.last().unwrap();
        assert_eq!(r.method, Method::POST, "{kind}");
        assert!(
            r.header("content-type").starts_with("application/json"),
            "{kind}"
        );
        let body = r.json();
        let text = body.pointer(field).and_then(Value::as_str).unwrap_or("");
        assert!(text.starts_with(&still), "{kind}: {body}");
    }
}

#[tokio::test]
async fn ntfy_and_gotify_reminders_keep_a_high_priority() {
    let (_hb, seen, _) = reminded("ntfy", json!({"topic": "backups"}), json!({"id": "x"})).await;
    let body = seen.last().unwrap().json();
    assert_eq!(body["topic"], "backups");
    assert_eq!(body["title"], format!("{NASTY} is still DOWN"));
    assert_eq!(body["priority"], 4);
    let (_hb, seen, _) = reminded(
        "gotify",
        json!({"url": "", "token": "AbCdEf123456"}),
        json!({"id": 1}),
    )
    .await;
    let r = seen.last().unwrap();
    assert_eq!(r.uri.path(), "/message");
    assert_eq!(r.header("x-gotify-key"), "AbCdEf123456");
    assert_eq!(r.json()["title"], format!("{NASTY} is still DOWN"));
    assert_eq!(r.json()["priority"], 8);
}

#[tokio::test]
async fn pagerduty_re_triggers_the_same_dedup_key_and_opsgenie_adds_a_note_by_alias() {
    let (hb, seen, downs) = reminded(
        "pagerduty",
        json!({"routing_key": "R0123456789abcdefXYZ"}),
        json!({"status": "success", "dedup_key": "x"}),
    )
    .await;
    assert_eq!(seen.len(), downs + 1);
    let key = format!("heartbeat-{}", hb["id"].as_str().unwrap());
    let r = seen.last().unwrap();
    assert_eq!(r.uri.path(), "/v2/enqueue");
    let body = r.json();
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(body["dedup_key"], key);
    assert_eq!(body["routing_key"], "R0123456789abcdefXYZ");
    assert_eq!(body["payload"]["summary"], format!("{NASTY} is still DOWN"));

    let (hb, seen, downs) = reminded(
        "opsgenie",
        json!({"api_key": "eb243592-faa2-4ba2-a551-1afdf565c889"}),
        json!({"result": "Request will be processed", "requestId": "r"}),
    )
    .await;
    assert_eq!(seen.len(), downs + 1);
    let alias = format!("heartbeat-{}", hb["id"].as_str().unwrap());
    let r = seen.last().unwrap();
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.uri.path(), format!("/v2/alerts/{alias}/notes"));
    assert_eq!(r.uri.query(), Some("identifierType=alias"));
    assert_eq!(
        r.header("authorization"),
        "GenieKey eb243592-faa2-4ba2-a551-1afdf565c889"
    );
    assert!(r.json()["note"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{NASTY} is still DOWN")));
}

#[tokio::test]
async fn github_and_gitea_reminders_comment_on_the_issue_the_outage_opened() {
    for (kind, config, prefix) in [
        (
            "github",
            json!({"token": "ghp_0123456789abcdefghij", "repo": "acme/ops"}),
            "/repos/acme/ops/issues",
        ),
        (
            "gitea",
            json!({"url": "", "token": "0123456789abcdef", "repo": "acme/ops"}),
            "/api/v1/repos/acme/ops/issues",
        ),
    ] {
        let (_hb, seen, downs) = reminded(kind, config, json!({"number": 1347})).await;
        assert_eq!(downs, 1, "{kind}: the outage opened one issue");
        assert_eq!(seen[0].uri.path(), prefix);
        let r = seen.last().unwrap();
        assert_eq!(r.method, Method::POST, "{kind}");
        assert_eq!(r.uri.path(), format!("{prefix}/1347/comments"), "{kind}");
        assert!(r.json()["body"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{NASTY} is still DOWN")));
    }
}

/// A receiver that answers 500 to its first `failures` requests, then 200.
async fn flaky(failures: usize) -> (Arc<AtomicUsize>, String) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let app = axum::Router::new().fallback(move || {
        let seen = seen.clone();
        async move {
            if seen.fetch_add(1, Ordering::SeqCst) < failures {
                (StatusCode::INTERNAL_SERVER_ERROR, "try later")
            } else {
                (StatusCode::OK, "ok")
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (count, url)
}

#[tokio::test]
async fn a_channel_that_fails_twice_then_succeeds_is_retried_with_backoff_and_delivered_once() {
    let mut config = quiet_config();
    config.monitor.retry_base_secs = 10;
    config.monitor.max_delivery_attempts = 5;
    let app = spawn_app_with(config).await;
    let (count, url) = flaky(2).await;
    let channel = add_channel(&app, json!({"kind": "slack", "config": {"url": url}})).await;
    let (_hb, when) = pinged(&app, "flaky backup", json!({})).await;
    deadline::run_once(&app.state.pool, when).await.unwrap();
    let d = deliverer(&app);
    let pool = &app.state.pool;
    let first = d.deliver_once(pool, when).await.unwrap();
    assert_eq!((first.delivered, first.retrying), (0, 1));
    // Not due before its backoff (10 s after the first failure).
    let early = d
        .deliver_once(pool, when + chrono::Duration::seconds(9))
        .await
        .unwrap();
    assert_eq!(early.retrying + early.delivered, 0);
    let second = d
        .deliver_once(pool, when + chrono::Duration::seconds(10))
        .await
        .unwrap();
    assert_eq!((second.delivered, second.retrying), (0, 1));
    // Doubled: 20 s after the second failure.
    let t2 = when + chrono::Duration::seconds(10);
    let early = d
        .deliver_once(pool, t2 + chrono::Duration::seconds(19))
        .await
        .unwrap();
    assert_eq!(early.retrying + early.delivered, 0);
    let third = d
        .deliver_once(pool, t2 + chrono::Duration::seconds(20))
        .await
        .unwrap();
    assert_eq!(third.delivered, 1);
    // Delivered: nothing more is sent, however late.
    let later = d
        .deliver_once(pool, t2 + chrono::Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(later.delivered + later.retrying, 0);
    assert_eq!(count.load(Ordering::SeqCst), 3);

    let id = channel["id"].as_str().unwrap();
    let (_, alerts) = app.get_json(&format!("/api/channels/{id}/alerts")).await;
    let alert = &alerts["alerts"][0];
    assert_eq!(alert["state"], "delivered");
    assert_eq!(alert["attempts"], 3);
    let (_, detail) = app.get_json(&format!("/api/alerts/{}", alert["id"])).await;
    let statuses: Vec<i64> = detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 200]);
    let (_, shown) = app.get_json(&format!("/api/channels/{id}")).await;
    assert_eq!(shown["failing"], false, "its last attempt succeeded");
}

#[tokio::test]
async fn a_paused_heartbeat_gets_no_reminder_even_before_the_deadline_loop_sees_the_pause() {
    let app = spawn_app_with(quiet_config()).await;
    let (_receiver, url) = Receiver::start(json!({})).await;
    add_channel(
        &app,
        json!({"kind": "slack", "config": {"url": url}, "repeat_every_seconds": 60}),
    )
    .await;
    let (hb, when) = pinged(&app, "paused one", json!({})).await;
    deadline::run_once(&app.state.pool, when).await.unwrap();
    let down = down_at(&app, &hb).await;
    let id = hb["id"].as_str().unwrap();
    let r = app
        .client
        .patch(app.url(&format!("/api/heartbeats/{id}")))
        .json(&json!({"paused": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    for k in 1..=3 {
        let due = down + chrono::Duration::seconds(60 * k);
        assert_eq!(reminder::run_once(&app.state.pool, due).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn tags_reach_an_http_template() {
    let app = spawn_app_with(quiet_config()).await;
    let (receiver, url) = Receiver::start(json!({})).await;
    add_channel(
        &app,
        json!({"kind": "http", "config": {"down": {"url": format!("{url}/t?tags=$TAGS"),
               "headers": {"Content-Type": "application/json"},
               "body": "{\"tags\": \"$TAGS\"}"}}}),
    )
    .await;
    let (_hb, when) = pinged(&app, "tagged", json!({"tags": ["prod", "db:main"]})).await;
    deadline::run_once(&app.state.pool, when).await.unwrap();
    deliverer(&app)
        .deliver_once(&app.state.pool, when)
        .await
        .unwrap();
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].json()["tags"], "db:main prod");
    assert_eq!(seen[0].uri.query(), Some("tags=db%3Amain%20prod"));
}
