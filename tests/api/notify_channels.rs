//! Channels: CRUD with masked secrets, routing and muting, the `http` kind's
//! escaping, presets checked by local receivers against each service's
//! documented request format, the test endpoint, delivery history, and a dead
//! channel that does not hold up the others.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use chrono::{DateTime, Utc};
use heartbeat::config::Config;
use heartbeat::monitor::{deadline, MonitorConfig};
use heartbeat::notify::outbox::Deliverer;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, test_config, TestApp};

/// A heartbeat name with every character that could break a URL, a header or
/// a JSON body.
pub const NASTY: &str = "nightly \"backup\" & #1 at 50% — naïve\nsecond line";

pub fn quiet_config() -> Config {
    Config {
        monitor: MonitorConfig {
            loops: false,
            ..MonitorConfig::default()
        },
        ..test_config()
    }
}

/// One request a receiver saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query, as sent (still percent-encoded).
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    /// A header's value; non-ASCII arrives as UTF-8 bytes.
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| String::from_utf8(v.as_bytes().to_vec()).unwrap())
            .unwrap_or_default()
    }
}

/// An HTTP receiver on loopback that records every request and answers with
/// `answer` (or hangs when `hang` is set).
#[derive(Clone, Default)]
pub struct Receiver {
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    pub async fn start(answer: Value) -> (Self, String) {
        Self::start_with(answer, None).await
    }

    pub async fn start_with(answer: Value, hang: Option<Duration>) -> (Self, String) {
        let r = Receiver::default();
        let shared = r.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let r = shared.clone();
                let answer = answer.clone();
                async move {
                    if let Some(d) = hang {
                        tokio::time::sleep(d).await;
                    }
                    r.seen.lock().unwrap().push(Seen {
                        method,
                        uri,
                        headers,
                        body,
                    });
                    (StatusCode::OK, axum::Json(answer))
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

pub async fn add_channel(app: &TestApp, body: Value) -> Value {
    let (status, c) = app.post_json("/api/channels", &body).await;
    assert_eq!(status, 201, "{c}");
    c
}

pub async fn create_heartbeat(app: &TestApp, body: Value) -> Value {
    let (status, hb) = app.post_json("/api/heartbeats", &body).await;
    assert_eq!(status, 201, "{hb}");
    hb
}

pub async fn ping(app: &TestApp, hb: &Value, suffix: &str) -> DateTime<Utc> {
    let url = hb["ping_url"].as_str().unwrap();
    let path = format!("{}{suffix}", &url[url.find("/hb/").unwrap()..]);
    let r = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let (_, hb) = app
        .get_json(&format!("/api/heartbeats/{}", hb["id"].as_str().unwrap()))
        .await;
    hb["last_ping_at"].as_str().unwrap().parse().unwrap()
}

/// A pinged heartbeat (period 60 s, grace 30 s) and the instant it is down.
pub async fn pinged(app: &TestApp, name: &str, extra: Value) -> (Value, DateTime<Utc>) {
    let mut body = json!({"name": name, "period_seconds": 60, "grace_seconds": 30});
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            body[k] = v.clone();
        }
    }
    let hb = create_heartbeat(app, body).await;
    let at = ping(app, &hb, "").await;
    (hb, at + chrono::Duration::seconds(91))
}

pub fn deliverer(app: &TestApp) -> Deliverer {
    Deliverer::new(&app.state.config.monitor, app.address.clone(), None)
}

/// Flips the heartbeat down at `when`, delivers, then pings it up and delivers.
pub async fn down_then_up(app: &TestApp, hb: &Value, when: DateTime<Utc>) {
    let d = deliverer(app);
    let tick = deadline::run_once(&app.state.pool, when).await.unwrap();
    // The first success (pending -> up, silent), then the miss (up -> down).
    assert_eq!(tick.flips, 2);
    d.deliver_once(&app.state.pool, when).await.unwrap();
    let back = ping(app, hb, "").await;
    deadline::run_once(&app.state.pool, back).await.unwrap();
    d.deliver_once(&app.state.pool, back).await.unwrap();
}

#[tokio::test]
async fn channels_are_created_listed_updated_and_deleted_with_secrets_masked() {
    let app = spawn_app_with(quiet_config()).await;
    let c = add_channel(
        &app,
        json!({"name": "pager", "kind": "pagerduty", "config": {"routing_key": "R0123456789abcdefXYZ"}, "repeat_every_seconds": 3600}),
    )
    .await;
    assert_eq!(c["kind"], "pagerduty");
    assert_eq!(c["config"]["routing_key"], "********");
    assert_eq!(c["repeat_every_seconds"], 3600);
    assert_eq!(c["muted"], false);
    let id = c["id"].as_str().unwrap();
    let (_, list) = app.get_json("/api/channels").await;
    assert_eq!(list["channels"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("R0123456789abcdefXYZ"), "{list}");
    // The masked config sent back keeps the stored key; muted changes.
    let r = app
        .client
        .patch(app.url(&format!("/api/channels/{id}")))
        .json(&json!({"muted": true, "config": c["config"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let db = app.db().await;
    let stored: Value = db
        .query_one("SELECT config FROM heartbeat.channel", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(stored["routing_key"], "R0123456789abcdefXYZ");
    let (_, shown) = app.get_json(&format!("/api/channels/{id}")).await;
    assert_eq!(shown["muted"], true);
    let r = app
        .client
        .delete(app.url(&format!("/api/channels/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, _) = app.get_json(&format!("/api/channels/{id}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_bad_kind_config_or_placeholder_is_refused_with_422_naming_it() {
    let app = spawn_app_with(quiet_config()).await;
    for (body, needle) in [
        (json!({"kind": "carrier_pigeon"}), "kind"),
        (json!({"kind": "pagerduty", "config": {}}), "routing_key"),
        (
            json!({"kind": "github", "config": {"token": "t", "repo": "x"}}),
            "repo",
        ),
        (
            json!({"kind": "http", "config": {"down": {"url": "https://x.test/$NAME", "body": "$WHO is down"}}}),
            "$WHO",
        ),
        (
            json!({"kind": "email", "config": {"to": ["not-an-address"]}}),
            "config.to",
        ),
        (
            json!({"kind": "slack", "config": {"url": "https://x.test"}, "repeat_every_seconds": 5}),
            "repeat_every_seconds",
        ),
    ] {
        let (status, e) = app.post_json("/api/channels", &body).await;
        assert_eq!(status, 422, "{body} → {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message} should name {needle}");
    }
    let (_, list) = app.get_json("/api/channels").await;
    assert!(list["channels"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_read_only_key_may_list_channels_but_not_create_them() {
    let mut config = quiet_config();
    config.admin_key = Some("admin-key-0123456789abcdef".into());
    let app = spawn_app_with(config).await;
    let (status, p) = {
        let r = app
            .client
            .post(app.url("/api/projects"))
            .bearer_auth("admin-key-0123456789abcdef")
            .json(&json!({"name": "team"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 201, "{p}");
    let rw = p["read_write_key"].as_str().unwrap();
    let ro = p["read_only_key"].as_str().unwrap();
    let body = json!({"kind": "slack", "config": {"url": "https://hooks.slack.test/abc"}});
    let r = app
        .client
        .post(app.url("/api/channels"))
        .bearer_auth(rw)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = app
        .client
        .post(app.url("/api/channels"))
        .bearer_auth(ro)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = app
        .client
        .get(app.url("/api/channels"))
        .bearer_auth(ro)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["channels"].as_array().unwrap().len(), 1);
    assert_eq!(list["channels"][0]["config"]["url"], "********");
}

#[tokio::test]
async fn an_http_channel_escapes_a_hostile_name_for_url_header_and_json_body() {
    let app = spawn_app_with(quiet_config()).await;
    let (receiver, url) = Receiver::start(json!({})).await;
    add_channel(
        &app,
        json!({"kind": "http", "config": {
            "down": {"method": "POST", "url": format!("{url}/alert/$NAME?status=$STATUS&name=$NAME"),
                     "headers": {"Content-Type": "application/json", "X-Heartbeat": "$NAME"},
                     "body": "{\"text\": \"$NAME is $STATUS\", \"event\": $JSON}"},
            "up": {"method": "GET", "url": format!("{url}/up?name=$NAME")}
        }}),
    )
    .await;
    let (hb, when) = pinged(&app, NASTY, json!({})).await;
    down_then_up(&app, &hb, when).await;
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let down = &seen[0];
    assert_eq!(down.method, Method::POST);
    let path = down.uri.path();
    let segment = path.strip_prefix("/alert/").unwrap();
    assert!(!segment.contains('/'), "{path}");
    let decoded = percent_decode(segment);
    assert_eq!(decoded, NASTY);
    let query: Vec<(String, String)> = down
        .uri
        .query()
        .unwrap()
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_string(), percent_decode(v))
        })
        .collect();
    assert_eq!(
        query,
        vec![
            ("status".to_string(), "down".to_string()),
            ("name".to_string(), NASTY.to_string())
        ]
    );
    assert_eq!(down.header("x-heartbeat"), NASTY.replace('\n', " "));
    let body = down.json();
    assert_eq!(body["text"], format!("{NASTY} is down"));
    assert_eq!(body["event"]["heartbeat"]["name"], NASTY);
    let up = &seen[1];
    assert_eq!(up.method, Method::GET);
    assert_eq!(
        percent_decode(up.uri.query().unwrap().strip_prefix("name=").unwrap()),
        NASTY
    );
}

pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn a_heartbeat_routes_to_all_channels_a_list_or_none_and_muted_ones_get_nothing() {
    let app = spawn_app_with(quiet_config()).await;
    let (a, url_a) = Receiver::start(json!({})).await;
    let (b, url_b) = Receiver::start(json!({})).await;
    let (m, url_m) = Receiver::start(json!({})).await;
    let ca = add_channel(&app, json!({"kind": "slack", "config": {"url": url_a}})).await;
    add_channel(&app, json!({"kind": "slack", "config": {"url": url_b}})).await;
    add_channel(
        &app,
        json!({"kind": "slack", "config": {"url": url_m}, "muted": true}),
    )
    .await;
    let (all, t1) = pinged(&app, "to-all", json!({})).await;
    assert_eq!(all["channels"], "all");
    let (only_a, _) = pinged(&app, "to-a", json!({"channels": [ca["id"]]})).await;
    assert_eq!(only_a["channels"], json!([ca["id"]]));
    let (none, _) = pinged(&app, "to-none", json!({"channels": []})).await;
    assert_eq!(none["channels"], json!([]));
    // Another project's (or no) channel id is refused.
    let (status, _) = app
        .post_json(
            "/api/heartbeats",
            &json!({"name": "bad", "channels": [uuid::Uuid::new_v4()]}),
        )
        .await;
    assert_eq!(status, 422);
    let when = t1 + chrono::Duration::seconds(30);
    let tick = deadline::run_once(&app.state.pool, when).await.unwrap();
    assert_eq!(tick.flips, 6, "each: pending -> up, then up -> down");
    assert_eq!(tick.alerts, 3, "to-all: a and b; to-a: a; to-none: nothing");
    deliverer(&app)
        .deliver_once(&app.state.pool, when)
        .await
        .unwrap();
    let names = |r: &Receiver| -> Vec<String> {
        let mut v: Vec<String> = r
            .seen()
            .iter()
            .map(|s| {
                s.json()["text"]
                    .as_str()
                    .unwrap()
                    .split(' ')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&a), vec!["to-a", "to-all"]);
    assert_eq!(names(&b), vec!["to-all"]);
    assert!(m.seen().is_empty());
    // Routing can be changed: none → all.
    let r = app
        .client
        .patch(app.url(&format!("/api/heartbeats/{}", none["id"].as_str().unwrap())))
        .json(&json!({"channels": "all"}))
        .send()
        .await
        .unwrap();
    let changed: Value = r.json().await.unwrap();
    assert_eq!(changed["channels"], "all");
}

#[tokio::test]
async fn the_test_endpoint_answers_the_outcome_and_history_is_kept_per_channel_and_alert() {
    let app = spawn_app_with(quiet_config()).await;
    let (receiver, url) = Receiver::start(json!({})).await;
    let ok = add_channel(
        &app,
        json!({"kind": "discord", "config": {"url": format!("{url}/api/webhooks/1/tok")}}),
    )
    .await;
    let dead = add_channel(
        &app,
        json!({"kind": "mattermost", "config": {"url": "http://127.0.0.1:9/hooks/x"}}),
    )
    .await;
    let (status, outcome) = app
        .post_json(
            &format!("/api/channels/{}/test", ok["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["ok"], true);
    assert_eq!(outcome["status"], 200);
    assert!(outcome["duration_ms"].is_i64());
    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].json()["content"].as_str().unwrap().contains("Test"));
    let (_, outcome) = app
        .post_json(
            &format!("/api/channels/{}/test", dead["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(outcome["ok"], false);
    assert!(outcome["error"].as_str().is_some(), "{outcome}");
    // The dead channel shows it is failing; its history has the attempt.
    let (_, shown) = app
        .get_json(&format!("/api/channels/{}", dead["id"].as_str().unwrap()))
        .await;
    assert_eq!(shown["failing"], true, "{shown}");
    let (_, alerts) = app
        .get_json(&format!(
            "/api/channels/{}/alerts",
            dead["id"].as_str().unwrap()
        ))
        .await;
    let alerts = alerts["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["event"], "test");
    assert_eq!(alerts[0]["state"], "failed");
    let (_, detail) = app
        .get_json(&format!("/api/alerts/{}", alerts[0]["id"]))
        .await;
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0]["error"].is_string());
    let (_, good) = app
        .get_json(&format!("/api/channels/{}", ok["id"].as_str().unwrap()))
        .await;
    assert_eq!(good["failing"], false);
}

#[tokio::test]
async fn a_channel_that_never_answers_does_not_hold_up_the_others() {
    let mut config = test_config();
    config.monitor.deadline_interval_ms = 50;
    config.monitor.delivery_interval_ms = 50;
    config.monitor.webhook_timeout_secs = 20;
    let app = spawn_app_with(config).await;
    let (_stuck, url_stuck) = Receiver::start_with(json!({}), Some(Duration::from_secs(60))).await;
    let (fast, url_fast) = Receiver::start(json!({})).await;
    // The stuck channel is made first, so its alerts come first in every claim.
    add_channel(&app, json!({"kind": "slack", "config": {"url": url_stuck}})).await;
    add_channel(&app, json!({"kind": "slack", "config": {"url": url_fast}})).await;
    let started = std::time::Instant::now();
    for i in 0..3 {
        let hb = create_heartbeat(
            &app,
            json!({"name": format!("quick-{i}"), "period_seconds": 1, "grace_seconds": 0}),
        )
        .await;
        ping(&app, &hb, "").await;
    }
    for _ in 0..100 {
        if fast.seen().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fast.seen().len(), 3);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the fast channel waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn two_workers_passing_at_once_deliver_each_alert_exactly_once() {
    let app = spawn_app_with(quiet_config()).await;
    let (receiver, url) = Receiver::start(json!({})).await;
    add_channel(&app, json!({"kind": "slack", "config": {"url": url}})).await;
    let mut when = Utc::now();
    for i in 0..20 {
        let (_, at) = pinged(&app, &format!("job-{i}"), json!({})).await;
        when = when.max(at);
    }
    let tick = deadline::run_once(&app.state.pool, when).await.unwrap();
    assert_eq!(tick.alerts, 20);
    // Two nodes: two workers with their own clients, passing at the same instant.
    // A pass claims at most a batch per channel, and a worker skips rows the
    // other holds, so the outbox may take more than one pass to drain; each
    // pass is the two workers at once.
    let (a, b) = (deliverer(&app), deliverer(&app));
    let mut delivered = 0;
    for _ in 0..10 {
        let (ra, rb) = tokio::join!(
            a.deliver_once(&app.state.pool, when),
            b.deliver_once(&app.state.pool, when)
        );
        let pass = ra.unwrap().delivered + rb.unwrap().delivered;
        if pass == 0 {
            break;
        }
        delivered += pass;
    }
    assert_eq!(delivered, 20);
    let mut names: Vec<String> = receiver
        .seen()
        .iter()
        .map(|s| {
            s.json()["text"]
                .as_str()
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(receiver.seen().len(), 20);
    assert_eq!(names.len(), 20);
}

/// Reminder alerts in the outbox.
async fn reminders(app: &TestApp) -> i64 {
    app.db()
        .await
        .query_one(
            "SELECT count(*) FROM heartbeat.alert WHERE event = 'reminder'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn reminders_go_out_once_per_interval_while_down_and_never_twice() {
    use heartbeat::notify::reminder;
    let app = spawn_app_with(quiet_config()).await;
    let (receiver, url) = Receiver::start(json!({})).await;
    add_channel(
        &app,
        json!({"kind": "slack", "config": {"url": url}, "repeat_every_seconds": 60}),
    )
    .await;
    let (hb, when) = pinged(&app, "flaky", json!({})).await;
    deadline::run_once(&app.state.pool, when).await.unwrap();
    let id = hb["id"].as_str().unwrap();
    let (_, flips) = app.get_json(&format!("/api/heartbeats/{id}/flips")).await;
    let down_at: DateTime<Utc> = flips["flips"][0]["at"].as_str().unwrap().parse().unwrap();
    let d = deliverer(&app);
    let pool = &app.state.pool;
    d.deliver_once(pool, when).await.unwrap();
    // Nothing before the first interval has passed.
    reminder::run_once(pool, down_at + chrono::Duration::seconds(59))
        .await
        .unwrap();
    assert_eq!(reminders(&app).await, 0);
    for k in 1..=5i64 {
        let due = down_at + chrono::Duration::seconds(60 * k);
        // Twice at the same instant, on two "nodes" at once, and again later in
        // the same interval: one reminder.
        let (a, b) = tokio::join!(reminder::run_once(pool, due), reminder::run_once(pool, due));
        assert_eq!(a.unwrap() + b.unwrap(), 1, "interval {k}");
        reminder::run_once(pool, due + chrono::Duration::seconds(30))
            .await
            .unwrap();
        d.deliver_once(pool, due + chrono::Duration::seconds(30))
            .await
            .unwrap();
    }
    assert_eq!(reminders(&app).await, 5);
    // A restart: a new daemon on the same database passes over the same
    // intervals and writes nothing.
    let again = crate::helpers::spawn_app_on(quiet_config(), app.database_url.clone()).await;
    for k in 1..=5i64 {
        reminder::run_once(
            &again.state.pool,
            down_at + chrono::Duration::seconds(60 * k),
        )
        .await
        .unwrap();
    }
    assert_eq!(reminders(&app).await, 5);
    let texts: Vec<String> = receiver
        .seen()
        .iter()
        .map(|s| s.json()["text"].as_str().unwrap().to_string())
        .collect();
    let still: Vec<_> = texts.iter().filter(|t| t.contains("still DOWN")).collect();
    assert_eq!(still.len(), 5, "{texts:?}");
    // Recovered: no reminder after, however long.
    let back = ping(&app, &hb, "").await;
    deadline::run_once(pool, back).await.unwrap();
    reminder::run_once(pool, back + chrono::Duration::hours(5))
        .await
        .unwrap();
    assert_eq!(reminders(&app).await, 5);
}

#[tokio::test]
async fn channel_secrets_are_masked_in_log_lines_from_the_moment_they_are_created() {
    let app = spawn_app_with(quiet_config()).await;
    let key = "R9f8e7d6c5b4a3928171605f4e3d2c1b";
    let token = "ghp_Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0F";
    add_channel(
        &app,
        json!({"kind": "pagerduty", "config": {"routing_key": key}}),
    )
    .await;
    add_channel(
        &app,
        json!({"kind": "github", "config": {"token": token, "repo": "a/b"}}),
    )
    .await;
    let line = format!("posting with {key} and Bearer {token}");
    let scrubbed = heartbeat::ops::redact::scrub(&line);
    assert!(!scrubbed.contains(key), "{scrubbed}");
    assert!(!scrubbed.contains(token), "{scrubbed}");
}
