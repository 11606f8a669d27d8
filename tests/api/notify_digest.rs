//! Digests: a channel's scheduled summary of every heartbeat, written once per
//! fire time however many nodes pass and across a restart, delivered through
//! the outbox; the same panel from `GET /api/digest` and `heartbeat status
//! --digest`, and the added columns and failing channels in `heartbeat status`.

use chrono::{DateTime, Utc};
use heartbeat::monitor::client::{status_report, StatusOptions};
use heartbeat::monitor::deadline;
use heartbeat::monitor::schedule::HeartbeatSchedule;
use heartbeat::notify::digest;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_on, spawn_app_with, TestApp};
use crate::notify_channels::{
    add_channel, create_heartbeat, deliverer, ping, pinged, quiet_config, Receiver,
};

/// Digest rows in the outbox, with their fire times, oldest first.
async fn digests(app: &TestApp) -> Vec<DateTime<Utc>> {
    app.db()
        .await
        .query(
            "SELECT digest_at FROM heartbeat.alert WHERE event = 'digest' ORDER BY digest_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

const DAILY: &str = "0 7 * * *";
const ZONE: &str = "Europe/Paris";

/// The next 07:00 in Paris after the real now (the channel exists from now).
fn next_seven() -> DateTime<Utc> {
    HeartbeatSchedule::parse(DAILY, ZONE)
        .unwrap()
        .next_after(Utc::now() + chrono::Duration::seconds(1))
        .unwrap()
}

#[tokio::test]
async fn a_digest_goes_out_once_per_fire_time_on_any_number_of_nodes_and_after_a_restart() {
    let app = spawn_app_with(quiet_config()).await;
    let (hook, hook_url) = Receiver::start(json!({})).await;
    let (slack, slack_url) = Receiver::start(json!({})).await;
    let webhook = add_channel(
        &app,
        json!({"kind": "webhook", "config": {"url": hook_url},
               "digest_schedule": DAILY, "digest_tz": ZONE}),
    )
    .await;
    assert_eq!(webhook["digest_schedule"], DAILY);
    assert_eq!(webhook["digest_tz"], ZONE);
    add_channel(
        &app,
        json!({"kind": "slack", "config": {"url": slack_url}, "digest_schedule": DAILY,
               "digest_tz": ZONE}),
    )
    .await;
    // Down (60 s period, last pinged now), up and never pinged (a week's period).
    let (down, when) = pinged(&app, "backup", json!({})).await;
    let pinged_at = when - chrono::Duration::seconds(91);
    deadline::run_once(&app.state.pool, when).await.unwrap();
    let week = json!({"period_seconds": 7 * 86_400, "grace_seconds": 60});
    let up = create_heartbeat(&app, json!({"name": "fresh", "period_seconds": 7 * 86_400})).await;
    ping(&app, &up, "").await;
    let mut never = week.clone();
    never["name"] = json!("never");
    create_heartbeat(&app, never).await;
    // Deliver the down alerts now, so what follows is only digests.
    let d = deliverer(&app);
    d.deliver_once(&app.state.pool, when).await.unwrap();
    let before = (hook.seen().len(), slack.seen().len());

    let pool = &app.state.pool;
    let fire = next_seven();
    assert_eq!(
        digest::run_once(pool, fire - chrono::Duration::seconds(1))
            .await
            .unwrap(),
        0,
        "nothing before the fire time"
    );
    // Two nodes at the fire time, then again within the hour: one per channel.
    let (a, b) = tokio::join!(digest::run_once(pool, fire), digest::run_once(pool, fire));
    assert_eq!(a.unwrap() + b.unwrap(), 2);
    assert_eq!(
        digest::run_once(pool, fire + chrono::Duration::minutes(30))
            .await
            .unwrap(),
        0
    );
    // A restart: a new daemon on the same database owes nothing for this fire.
    let again = spawn_app_on(quiet_config(), app.database_url.clone()).await;
    assert_eq!(
        digest::run_once(&again.state.pool, fire + chrono::Duration::hours(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(digests(&app).await, vec![fire, fire]);

    let at = fire + chrono::Duration::seconds(1);
    d.deliver_once(pool, at).await.unwrap();
    let seen = hook.seen();
    assert_eq!(seen.len(), before.0 + 1, "one digest to the webhook");
    let body = seen.last().unwrap().json();
    assert_eq!(body["event"], "digest");
    assert_eq!(
        body["at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        fire
    );
    let rows = body["heartbeats"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["backup", "never", "fresh"], "down ones first");
    let statuses: Vec<&str> = rows.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["down", "pending", "up"]);
    let backup = &rows[0];
    assert_eq!(backup["id"], down["id"]);
    assert_eq!(
        backup["last_success_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        pinged_at
    );
    assert_eq!(backup["interval_seconds"], 60);
    let age = backup["age_seconds"].as_i64().unwrap();
    // Built at the pass's instant, the fire time.
    assert_eq!(age, (fire - pinged_at).num_seconds());
    let expected_ratio = (age as f64 / 60.0 * 100.0).round() / 100.0;
    assert_eq!(backup["age_ratio"].as_f64().unwrap(), expected_ratio);
    assert!(rows[1]["last_success_at"].is_null());
    assert!(rows[1]["age_ratio"].is_null());
    assert_eq!(rows[2]["interval_seconds"], 7 * 86_400);
    assert_eq!(body["title"], "Heartbeat digest: 1 down, 1 pending, 1 up");

    // Slack's documented incoming-webhook format: `{"text": ...}`.
    let s = slack.seen();
    assert_eq!(s.len(), before.1 + 1, "one digest to slack");
    let text = s.last().unwrap().json()["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.starts_with("Heartbeat digest: 1 down, 1 pending, 1 up\n\nSTATUS"),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[3].starts_with("down    backup"), "{text}");
    assert!(lines[4].starts_with("pending never"), "{text}");
    assert!(lines[5].starts_with("up      fresh"), "{text}");

    // Stopped over the next fire time and back two hours later: that digest
    // is still owed, and written once.
    let next = next_fire(fire);
    let late = next + chrono::Duration::hours(2);
    assert_eq!(digest::run_once(pool, late).await.unwrap(), 2);
    assert_eq!(digest::run_once(&again.state.pool, late).await.unwrap(), 0);
    assert_eq!(digests(&app).await, vec![fire, fire, next, next]);
}

fn next_fire(after: DateTime<Utc>) -> DateTime<Utc> {
    HeartbeatSchedule::parse(DAILY, ZONE)
        .unwrap()
        .next_after(after)
        .unwrap()
}

#[tokio::test]
async fn a_muted_channel_lets_its_fire_times_pass_and_owes_none_after() {
    let app = spawn_app_with(quiet_config()).await;
    let (_, url) = Receiver::start(json!({})).await;
    let channel = add_channel(
        &app,
        json!({"kind": "webhook", "config": {"url": url}, "digest_schedule": DAILY,
               "digest_tz": ZONE, "muted": true}),
    )
    .await;
    let fire = next_seven();
    let pool = &app.state.pool;
    assert_eq!(digest::run_once(pool, fire).await.unwrap(), 0);
    let id = channel["id"].as_str().unwrap();
    let r = app
        .client
        .patch(app.url(&format!("/api/channels/{id}")))
        .json(&json!({"muted": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        digest::run_once(pool, fire + chrono::Duration::minutes(5))
            .await
            .unwrap(),
        0
    );
    assert!(digests(&app).await.is_empty());
    // Clearing the schedule stops the digests.
    let r = app
        .client
        .patch(app.url(&format!("/api/channels/{id}")))
        .json(&json!({"digest_schedule": null}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert!(body["digest_schedule"].is_null(), "{body}");
    assert_eq!(digest::run_once(pool, next_fire(fire)).await.unwrap(), 0);
}

#[tokio::test]
async fn a_bad_digest_schedule_zone_or_kind_is_refused_naming_the_field() {
    let app = spawn_app_with(quiet_config()).await;
    for (body, field) in [
        (
            json!({"kind": "slack", "config": {"url": "https://hooks.slack.test/x"},
                   "digest_schedule": "0 25 * * *"}),
            "digest_schedule",
        ),
        (
            json!({"kind": "slack", "config": {"url": "https://hooks.slack.test/x"},
                   "digest_schedule": "0 7 * * *", "digest_tz": "Mars/Base"}),
            "digest_tz",
        ),
        (
            json!({"kind": "pagerduty", "config": {"routing_key": "R0123456789abcdef"},
                   "digest_schedule": "0 7 * * *"}),
            "digest_schedule",
        ),
        (
            json!({"kind": "slack", "config": {"url": "https://hooks.slack.test/x"},
                   "digest_schedule": "0 7 * * *\u{0}"}),
            "digest_schedule",
        ),
    ] {
        let (status, e) = app.post_json("/api/channels", &body).await;
        assert_eq!(status, 422, "{body} {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{message}");
    }
}

#[tokio::test]
async fn heartbeat_status_shows_the_digest_columns_the_panel_and_failing_channels() {
    let app = spawn_app_with(quiet_config()).await;
    let hb = create_heartbeat(
        &app,
        json!({"name": "backup", "period_seconds": 3600, "tags": ["team"]}),
    )
    .await;
    let success = ping(&app, &hb, "").await;
    ping(&app, &hb, "/fail").await;
    let other = create_heartbeat(
        &app,
        json!({"name": "alpha", "period_seconds": 3600, "tags": ["team"]}),
    )
    .await;
    ping(&app, &other, "").await;
    // A channel nobody answers: its test fails, and it shows as failing.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let channel = add_channel(
        &app,
        json!({"kind": "webhook", "name": "ops hook", "config": {"url": dead_url}}),
    )
    .await;
    let (_, outcome) = app
        .post_json(
            &format!("/api/channels/{}/test", channel["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(outcome["ok"], false, "{outcome}");

    let (status, panel) = app.get_json("/api/digest?tag=team").await;
    assert_eq!(status, 200, "{panel}");
    let rows: Vec<digest::PanelRow> = serde_json::from_value(panel["heartbeats"].clone()).unwrap();
    assert_eq!(rows[0].name, "backup");
    assert_eq!(rows[0].status, "down");
    assert_eq!(
        rows[0].last_success_at,
        Some(success),
        "the success before the failure"
    );
    assert_eq!(rows[0].interval_seconds, Some(3600));
    assert_eq!(rows[1].name, "alpha");
    assert_eq!(rows.len(), 2, "only the tagged ones");

    let (any_down, text) = status_report(
        &app.address,
        None,
        StatusOptions {
            digest: true,
            tag: Some("team"),
            ..StatusOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(any_down);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("STATUS NAME   LAST SUCCESS ") && lines[0].ends_with("AGE/INTERVAL"),
        "{text}"
    );
    assert!(lines[1].starts_with("down   backup "), "{text}");
    assert!(
        lines[1].contains(&success.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "{text}"
    );
    assert!(lines[1].contains(" 1 h "), "{text}");
    assert!(lines[2].starts_with("up     alpha "), "{text}");
    assert_eq!(lines.len(), 3);

    let (_, table) = status_report(
        &app.address,
        None,
        StatusOptions {
            tag: Some("team"),
            ..StatusOptions::default()
        },
    )
    .await
    .unwrap();
    let header = table.lines().next().unwrap();
    for column in [
        "LAST PING",
        "DEADLINE",
        "LAST SUCCESS",
        "AGE",
        "INTERVAL",
        "AGE/INTERVAL",
    ] {
        assert!(header.contains(column), "{table}");
    }
    let backup = table.lines().find(|l| l.contains("backup")).unwrap();
    assert!(
        backup.contains(&success.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
        "{table}"
    );
    assert!(backup.contains("1 h"), "{table}");
    assert!(
        table.contains("channel ops hook (webhook) is failing: "),
        "{table}"
    );

    // The panel's JSON is the API's.
    let (_, json_out) = status_report(
        &app.address,
        None,
        StatusOptions {
            digest: true,
            as_json: true,
            tag: Some("team"),
        },
    )
    .await
    .unwrap();
    let parsed: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(parsed["heartbeats"][0]["name"], "backup");
}

/// `heartbeat_channels_failing{kind}` from `/metrics`.
async fn failing_gauge(app: &TestApp, kind: &str) -> f64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("heartbeat_channels_failing{{kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_failing_channel_shows_in_metrics_until_a_delivery_succeeds() {
    let app = spawn_app_with(quiet_config()).await;
    assert_eq!(failing_gauge(&app, "webhook").await, 0.0);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let channel = add_channel(
        &app,
        json!({"kind": "webhook", "config": {"url": dead_url}}),
    )
    .await;
    let id = channel["id"].as_str().unwrap();
    let test = |app: &TestApp| {
        let path = format!("/api/channels/{id}/test");
        let app = app.client.post(app.url(&path));
        async move {
            let r: Value = app
                .json(&json!({}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            r
        }
    };
    assert_eq!(test(&app).await["ok"], false);
    assert_eq!(failing_gauge(&app, "webhook").await, 1.0);
    assert_eq!(failing_gauge(&app, "slack").await, 0.0);
    // Fixed: the next delivery succeeds, and the gauge and the API say so.
    let (_, url) = Receiver::start(json!({})).await;
    let r = app
        .client
        .patch(app.url(&format!("/api/channels/{id}")))
        .json(&json!({"config": {"url": url}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(test(&app).await["ok"], true);
    assert_eq!(failing_gauge(&app, "webhook").await, 0.0);
    let (_, shown) = app.get_json(&format!("/api/channels/{id}")).await;
    assert_eq!(shown["failing"], false, "{shown}");
}
