//! The dead man's switch as a user sees it: heartbeats, pings, statuses under a
//! controlled clock (one deadline-loop iteration at a chosen `now`), flips, the
//! alert outbox and its delivery, keys and project isolation, self-monitoring.

use std::time::Duration;

use chrono::{DateTime, Utc};
use heartbeat::config::Config;
use heartbeat::monitor::{deadline, MonitorConfig};
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app_on, spawn_app_with, test_config, TestApp};

/// Loops off: each test drives the deadline loop and delivery itself.
pub(crate) fn quiet_config() -> Config {
    Config {
        monitor: MonitorConfig {
            loops: false,
            ..MonitorConfig::default()
        },
        ..test_config()
    }
}

pub(crate) async fn quiet_app() -> TestApp {
    spawn_app_with(quiet_config()).await
}

pub(crate) async fn create(app: &TestApp, body: Value) -> Value {
    let (status, hb) = app.post_json("/api/heartbeats", &body).await;
    assert_eq!(status, 201, "{hb}");
    hb
}

pub(crate) async fn get_hb(app: &TestApp, id: &str) -> Value {
    let (status, hb) = app.get_json(&format!("/api/heartbeats/{id}")).await;
    assert_eq!(status, 200, "{hb}");
    hb
}

/// The path of a heartbeat's ping URL, e.g. `/hb/hb_...`.
fn ping_path(hb: &Value) -> String {
    let url = hb["ping_url"].as_str().unwrap();
    url[url.find("/hb/").unwrap()..].to_string()
}

async fn ping(app: &TestApp, path: &str) -> (u16, String) {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

async fn tick(app: &TestApp, now: DateTime<Utc>) -> deadline::Tick {
    deadline::run_once(&app.state.pool, now).await.unwrap()
}

async fn flips(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, body) = app.get_json(&format!("/api/heartbeats/{id}/flips")).await;
    assert_eq!(status, 200, "{body}");
    body["flips"].as_array().unwrap().clone()
}

async fn last_ping_at(app: &TestApp, id: &str) -> DateTime<Utc> {
    get_hb(app, id).await["last_ping_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The sequence numbers of a heartbeat's ping rows as stored, oldest first.
async fn stored_seqs(app: &TestApp, id: &str) -> Vec<i64> {
    let id: uuid::Uuid = id.parse().unwrap();
    let db = app.state.pool.get().await.unwrap();
    db.query(
        "SELECT seq FROM heartbeat.ping WHERE heartbeat_id = $1 ORDER BY seq",
        &[&id],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

#[tokio::test]
async fn a_new_heartbeat_is_pending_with_ready_to_paste_lines() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "backup", "period_seconds": 300, "grace_seconds": 60}),
    )
    .await;
    assert_eq!(hb["status"], "pending");
    assert_eq!(hb["period_seconds"], 300);
    assert_eq!(hb["grace_seconds"], 60);
    assert!(hb["last_ping_at"].is_null());
    let url = hb["ping_url"].as_str().unwrap();
    let token = url.rsplit('/').next().unwrap();
    assert!(token.starts_with("hb_") && token.len() == 19, "{token}");
    assert!(hb["curl"].as_str().unwrap().contains(url));
    let crontab = hb["crontab"].as_str().unwrap();
    assert!(
        crontab.starts_with("*/5 * * * *") && crontab.contains(url),
        "{crontab}"
    );
    let (status, list) = app.get_json("/api/heartbeats").await;
    assert_eq!(status, 200);
    assert!(list["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["id"] == hb["id"]));
}

#[tokio::test]
async fn invalid_heartbeats_are_refused_naming_the_field() {
    let app = quiet_app().await;
    for (body, field) in [
        (json!({"period_seconds": 60}), "name"),
        (json!({"name": "a", "period_seconds": 0}), "period_seconds"),
        (json!({"name": "a", "grace_seconds": -1}), "grace_seconds"),
        (json!({"name": "a", "schedule": "61 * * * *"}), "schedule"),
        (
            json!({"name": "a", "schedule": "* * * * *", "tz": "Mars/Base"}),
            "tz",
        ),
        (
            json!({"name": "a", "schedule": "* * * * *", "period_seconds": 60}),
            "period_seconds",
        ),
    ] {
        let (status, err) = app.post_json("/api/heartbeats", &body).await;
        assert_eq!(status, 422, "{body} -> {err}");
        assert!(
            err["error"]["message"].as_str().unwrap().contains(field),
            "{err}"
        );
    }
    let (status, err) = app
        .post_json("/api/heartbeats", &json!({"name": "a", "colour": 1}))
        .await;
    assert_eq!(status, 422, "{err}");
}

#[tokio::test]
async fn pings_answer_ok_in_plain_text_with_the_body_limit_header() {
    let app = quiet_app().await;
    let hb = create(&app, json!({"name": "nightly"})).await;
    let path = ping_path(&hb);
    for p in [
        path.clone(),
        path.replace("/hb/", "/ping/"),
        format!("{path}/start"),
        format!("{path}/0"),
        format!("{path}/log"),
    ] {
        let r = app.client.get(app.url(&p)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{p}");
        assert_eq!(r.headers()["ping-body-limit"], "16384");
        assert_eq!(r.text().await.unwrap().trim(), "OK");
    }
    let r = app.client.head(app.url(&path)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .post(app.url(&path))
        .body("done")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        get_hb(&app, hb["id"].as_str().unwrap()).await["status"],
        "up"
    );
}

#[tokio::test]
async fn bad_pings_get_plain_text_errors() {
    let app = quiet_app().await;
    let hb = create(&app, json!({"name": "nightly"})).await;
    let path = ping_path(&hb);
    assert_eq!(
        ping(&app, "/hb/hb_AAAAAAAAAAAAAAAA").await,
        (404, "not found\n".into())
    );
    assert_eq!(ping(&app, "/hb/nonsense").await.0, 404);
    assert_eq!(ping(&app, "/ping/hb_AAAAAAAAAAAAAAAA/fail").await.0, 404);
    for bad in ["256", "-1", "oops"] {
        let (status, text) = ping(&app, &format!("{path}/{bad}")).await;
        assert_eq!(status, 400, "{bad}");
        assert!(text.contains("exit code"), "{text}");
    }
    let (status, text) = ping(&app, &format!("{path}?rid=not-a-uuid")).await;
    assert_eq!(status, 400);
    assert!(text.contains("rid"), "{text}");
    let (_, pings) = app
        .get_json(&format!(
            "/api/heartbeats/{}/pings",
            hb["id"].as_str().unwrap()
        ))
        .await;
    assert!(pings["pings"].as_array().unwrap().is_empty(), "{pings}");
}

#[tokio::test]
async fn pings_are_listed_with_kind_exit_code_duration_source_agent_and_a_truncated_body() {
    let mut config = quiet_config();
    config.monitor.ping_body_limit_bytes = 1024;
    config.monitor.pings_kept = 5;
    let app = spawn_app_with(config).await;
    let hb = create(&app, json!({"name": "etl"})).await;
    let id = hb["id"].as_str().unwrap();
    let path = ping_path(&hb);
    let rid = uuid::Uuid::new_v4();
    assert_eq!(ping(&app, &format!("{path}/start?rid={rid}")).await.0, 200);
    tokio::time::sleep(Duration::from_millis(30)).await;
    let long = "x".repeat(5000);
    let r = app
        .client
        .post(app.url(&format!("{path}/3?rid={rid}")))
        .header("user-agent", "cron-test/1")
        .body(long)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["ping-body-limit"], "1024");
    let (_, body) = app.get_json(&format!("/api/heartbeats/{id}/pings")).await;
    let pings = body["pings"].as_array().unwrap();
    assert_eq!(pings.len(), 2);
    let finish = &pings[0];
    assert_eq!(finish["kind"], "fail");
    assert_eq!(finish["exit_code"], 3);
    assert_eq!(finish["rid"], rid.to_string());
    assert!(finish["duration_ms"].as_i64().unwrap() >= 30, "{finish}");
    assert_eq!(finish["source"], "127.0.0.1");
    assert_eq!(finish["user_agent"], "cron-test/1");
    assert_eq!(finish["body"].as_str().unwrap().len(), 1024);
    assert_eq!(pings[1]["kind"], "start");
    // Only the most recent pings are kept, in storage too: one at a time, then 20
    // at once (several of one heartbeat's pings in one group commit).
    for _ in 0..7 {
        assert_eq!(ping(&app, &path).await.0, 200);
    }
    let (_, body) = app.get_json(&format!("/api/heartbeats/{id}/pings")).await;
    assert_eq!(body["pings"].as_array().unwrap().len(), 5, "{body}");
    assert_eq!(stored_seqs(&app, id).await, vec![5, 6, 7, 8, 9]);
    let burst = (0..20).map(|_| ping(&app, &path));
    for (status, _) in futures::future::join_all(burst).await {
        assert_eq!(status, 200);
    }
    assert_eq!(stored_seqs(&app, id).await, vec![25, 26, 27, 28, 29]);
}

#[tokio::test]
async fn a_daemon_with_another_pings_kept_refits_the_history_keeping_the_newest() {
    let mut config = quiet_config();
    config.monitor.pings_kept = 10;
    let mut first = spawn_app_with(config.clone()).await;
    let hb = create(&first, json!({"name": "etl"})).await;
    let id = hb["id"].as_str().unwrap();
    let path = ping_path(&hb);
    for _ in 0..15 {
        assert_eq!(ping(&first, &path).await.0, 200);
    }
    assert_eq!(stored_seqs(&first, id).await, (6..=15).collect::<Vec<_>>());
    first.shut_down().await;

    // Smaller: the newest 4 stay, and the next ping overwrites the oldest of them.
    config.monitor.pings_kept = 4;
    let mut second = spawn_app_on(config.clone(), first.database_url.clone()).await;
    assert_eq!(stored_seqs(&second, id).await, vec![12, 13, 14, 15]);
    assert_eq!(ping(&second, &path).await.0, 200);
    assert_eq!(stored_seqs(&second, id).await, vec![13, 14, 15, 16]);
    second.shut_down().await;

    // Larger: nothing is lost, and the history grows to the new size.
    config.monitor.pings_kept = 6;
    let mut third = spawn_app_on(config.clone(), first.database_url.clone()).await;
    assert_eq!(stored_seqs(&third, id).await, vec![13, 14, 15, 16]);
    for _ in 0..3 {
        assert_eq!(ping(&third, &path).await.0, 200);
    }
    assert_eq!(stored_seqs(&third, id).await, (14..=19).collect::<Vec<_>>());
    let (_, body) = third.get_json(&format!("/api/heartbeats/{id}/pings")).await;
    let listed: Vec<i64> = body["pings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, vec![19, 18, 17, 16, 15, 14]);
    third.shut_down().await;

    // A database from before the ring, as migration 0008 leaves it: every ping in
    // a negative slot, no recorded size. The first start places them.
    let db = heartbeat::db::connect_direct(&first.database_url)
        .await
        .unwrap();
    db.batch_execute(
        "UPDATE heartbeat.ping SET slot = -(seq + 1); DELETE FROM heartbeat.ping_ring;",
    )
    .await
    .unwrap();
    let upgraded = spawn_app_on(config, first.database_url.clone()).await;
    let slots: Vec<(i64, i64)> = db
        .query("SELECT seq, slot FROM heartbeat.ping ORDER BY seq", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(slots, (14..=19).map(|s| (s, s % 6)).collect::<Vec<_>>());
    assert_eq!(ping(&upgraded, &path).await.0, 200);
    assert_eq!(
        stored_seqs(&upgraded, id).await,
        (15..=20).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_period_heartbeat_goes_up_late_down_and_up_again_with_flips_dated_at_the_deadline() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "hourly", "period_seconds": 3600, "grace_seconds": 300}),
    )
    .await;
    let id = hb["id"].as_str().unwrap();
    assert_eq!(ping(&app, &ping_path(&hb)).await.0, 200);
    let pinged = last_ping_at(&app, id).await;
    let hb = get_hb(&app, id).await;
    assert_eq!(hb["status"], "up");
    let deadline: DateTime<Utc> = hb["next_deadline"].as_str().unwrap().parse().unwrap();
    assert_eq!(deadline, pinged + secs(3900));

    // The first success is a flip too, pending -> up, dated at the ping.
    let t = tick(&app, pinged).await;
    assert_eq!((t.flips, t.alerts), (1, 0), "a first success never alerts");
    let f = flips(&app, id).await;
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0]["from"].as_str(), f[0]["to"].as_str()),
        (Some("pending"), Some("up"))
    );
    let at: DateTime<Utc> = f[0]["at"].as_str().unwrap().parse().unwrap();
    assert_eq!(at, pinged, "the first success is dated at the ping");

    // Exactly at the deadline nothing flips (late is not a flip); one second
    // later it is down.
    assert_eq!(tick(&app, pinged + secs(3700)).await.flips, 0);
    assert_eq!(tick(&app, pinged + secs(3900)).await.flips, 0);
    assert_eq!(flips(&app, id).await.len(), 1);
    let t = tick(&app, pinged + secs(3901)).await;
    assert_eq!(t.flips, 1);
    let f = flips(&app, id).await;
    assert_eq!(f.len(), 2);
    assert_eq!(f[0]["from"], "up");
    assert_eq!(f[0]["to"], "down");
    let at: DateTime<Utc> = f[0]["at"].as_str().unwrap().parse().unwrap();
    assert_eq!(at, pinged + secs(3900), "the flip is dated at the deadline");
    // The loop does not flip it twice.
    assert_eq!(tick(&app, pinged + secs(7200)).await.flips, 0);

    // A ping brings it back up: one more flip, dated at the ping.
    assert_eq!(ping(&app, &ping_path(&hb)).await.0, 200);
    let recovered = last_ping_at(&app, id).await;
    assert_eq!(tick(&app, recovered).await.flips, 1);
    let f = flips(&app, id).await;
    assert_eq!(
        (f[0]["from"].as_str(), f[0]["to"].as_str()),
        (Some("down"), Some("up"))
    );
    let at: DateTime<Utc> = f[0]["at"].as_str().unwrap().parse().unwrap();
    assert_eq!(at, recovered);
}

#[tokio::test]
async fn a_fail_ping_is_down_at_once_and_a_success_brings_it_back() {
    let app = quiet_app().await;
    let hb = create(&app, json!({"name": "job", "period_seconds": 3600})).await;
    let id = hb["id"].as_str().unwrap();
    let path = ping_path(&hb);
    assert_eq!(ping(&app, &path).await.0, 200);
    assert_eq!(ping(&app, &format!("{path}/fail")).await.0, 200);
    assert_eq!(get_hb(&app, id).await["status"], "down");
    let failed_at = last_ping_at(&app, id).await;
    assert_eq!(tick(&app, failed_at).await.flips, 1);
    assert_eq!(flips(&app, id).await[0]["to"], "down");
    assert_eq!(ping(&app, &format!("{path}/0")).await.0, 200);
    assert_eq!(get_hb(&app, id).await["status"], "up");
    let ok_at = last_ping_at(&app, id).await;
    assert_eq!(tick(&app, ok_at).await.flips, 1);
    assert_eq!(flips(&app, id).await[0]["to"], "up");
}

#[tokio::test]
async fn a_start_without_a_finish_goes_down_when_grace_passes() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "slow", "period_seconds": 86400, "grace_seconds": 600}),
    )
    .await;
    let id = hb["id"].as_str().unwrap();
    let path = ping_path(&hb);
    assert_eq!(ping(&app, &path).await.0, 200);
    let first = last_ping_at(&app, id).await;
    assert_eq!(tick(&app, first).await.flips, 1, "pending -> up");
    assert_eq!(ping(&app, &format!("{path}/start")).await.0, 200);
    let started = last_ping_at(&app, id).await;
    assert_eq!(tick(&app, started + secs(600)).await.flips, 0);
    assert_eq!(tick(&app, started + secs(601)).await.flips, 1);
    let f = flips(&app, id).await;
    assert_eq!(f[0]["to"], "down");
    assert_eq!(
        f[0]["at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        started + secs(600)
    );
}

#[tokio::test]
async fn pausing_silences_a_heartbeat_and_resuming_restarts_its_clock() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "p", "period_seconds": 60, "grace_seconds": 0}),
    )
    .await;
    let id = hb["id"].as_str().unwrap();
    assert_eq!(ping(&app, &ping_path(&hb)).await.0, 200);
    let r = app
        .client
        .patch(app.url(&format!("/api/heartbeats/{id}")))
        .json(&json!({"paused": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let now = Utc::now();
    tick(&app, now + secs(1)).await;
    assert_eq!(get_hb(&app, id).await["status"], "paused");
    assert_eq!(
        tick(&app, now + secs(86_400)).await.flips,
        0,
        "a paused heartbeat never flips"
    );
    let r = app
        .client
        .patch(app.url(&format!("/api/heartbeats/{id}")))
        .json(&json!({"paused": false}))
        .send()
        .await
        .unwrap();
    let hb: Value = r.json().await.unwrap();
    assert_eq!(hb["status"], "up", "{hb}");
}

#[tokio::test]
async fn editing_a_heartbeat_keeps_its_last_ping_history_and_status() {
    let app = quiet_app().await;
    let hb = create(&app, json!({"name": "old", "period_seconds": 3600})).await;
    let id = hb["id"].as_str().unwrap();
    assert_eq!(ping(&app, &ping_path(&hb)).await.0, 200);
    assert_eq!(ping(&app, &format!("{}/fail", ping_path(&hb))).await.0, 200);
    let failed_at = last_ping_at(&app, id).await;
    tick(&app, failed_at).await;
    let r = app
        .client
        .patch(app.url(&format!("/api/heartbeats/{id}")))
        .json(&json!({"name": "new", "period_seconds": 7200, "grace_seconds": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let edited: Value = r.json().await.unwrap();
    assert_eq!(edited["name"], "new");
    assert_eq!(edited["period_seconds"], 7200);
    assert_eq!(edited["status"], "down");
    assert_eq!(
        edited["ping_url"], hb["ping_url"],
        "the token survives an edit"
    );
    assert_eq!(
        edited["last_ping_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        failed_at
    );
    let (_, pings) = app.get_json(&format!("/api/heartbeats/{id}/pings")).await;
    assert_eq!(pings["pings"].as_array().unwrap().len(), 2);
    tick(&app, Utc::now()).await;
    assert_eq!(flips(&app, id).await.len(), 1, "an edit adds no flip");
    // Switching to a schedule keeps it too.
    let r = app
        .client
        .patch(app.url(&format!("/api/heartbeats/{id}")))
        .json(&json!({"schedule": "0 3 * * *", "tz": "Europe/Paris"}))
        .send()
        .await
        .unwrap();
    let edited: Value = r.json().await.unwrap();
    assert_eq!(edited["schedule"], "0 3 * * *");
    assert!(edited["period_seconds"].is_null());
    assert_eq!(edited["status"], "down");
}

#[tokio::test]
async fn a_schedule_heartbeat_expects_the_next_fire_time_and_flips_when_it_is_missed() {
    let app = quiet_app().await;
    let hb = create(&app, json!({"name": "daily", "schedule": "30 4 * * *", "tz": "Europe/Paris", "grace_seconds": 600})).await;
    let id = hb["id"].as_str().unwrap();
    assert_eq!(ping(&app, &ping_path(&hb)).await.0, 200);
    let pinged = last_ping_at(&app, id).await;
    tick(&app, pinged).await;
    let hb = get_hb(&app, id).await;
    assert_eq!(hb["status"], "up");
    let due: DateTime<Utc> = hb["next_due_at"].as_str().unwrap().parse().unwrap();
    let local = due.with_timezone(&chrono_tz::Europe::Paris);
    assert_eq!(local.format("%H:%M").to_string(), "04:30");
    assert!(due > pinged && due <= pinged + secs(25 * 3600));
    assert_eq!(tick(&app, due + secs(600)).await.flips, 0);
    assert_eq!(tick(&app, due + secs(601)).await.flips, 1);
    assert_eq!(
        flips(&app, id).await[0]["at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap(),
        due + secs(600)
    );
}

#[tokio::test]
async fn a_project_holds_at_most_50_heartbeats() {
    let app = quiet_app().await;
    for i in 0..50 {
        create(&app, json!({"name": format!("hb-{i}")})).await;
    }
    let (status, err) = app
        .post_json("/api/heartbeats", &json!({"name": "one-too-many"}))
        .await;
    assert_eq!(status, 409, "{err}");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("50"),
        "{err}"
    );
}

#[tokio::test]
async fn the_heartbeat_limit_is_configurable() {
    let mut config = quiet_config();
    config.monitor.max_heartbeats_per_project = 2;
    let app = spawn_app_with(config).await;
    create(&app, json!({"name": "a"})).await;
    create(&app, json!({"name": "b"})).await;
    let (status, err) = app
        .post_json("/api/heartbeats", &json!({"name": "c"}))
        .await;
    assert_eq!(status, 409);
    assert_eq!(error_code(&err), "heartbeat_limit");
}

#[tokio::test]
async fn deleting_a_heartbeat_makes_its_pings_404() {
    let app = quiet_app().await;
    let hb = create(&app, json!({"name": "gone"})).await;
    let id = hb["id"].as_str().unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/api/heartbeats/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(ping(&app, &ping_path(&hb)).await.0, 404);
    assert_eq!(app.get_json(&format!("/api/heartbeats/{id}")).await.0, 404);
}

#[tokio::test]
async fn overlapping_batches_on_the_same_heartbeats_commit_every_ping_once() {
    // Two batches in flight as often as possible (the next starts as soon as one
    // ping is queued), all of them on the same five heartbeats, in random order.
    let mut config = quiet_config();
    config.monitor.ping_writers = 2;
    config.monitor.ping_overlap_min = 1;
    config.monitor.pings_kept = 7;
    let app = spawn_app_with(config).await;
    let mut paths = Vec::new();
    let mut ids = Vec::new();
    for i in 0..5 {
        let hb = create(&app, json!({"name": format!("hb-{i}")})).await;
        paths.push(ping_path(&hb));
        ids.push(hb["id"].as_str().unwrap().to_string());
    }
    let sends = (0..300).map(|n| {
        let path = paths[(n * 7 + n / 5) % 5].clone();
        let app = &app;
        async move { ping(app, &path).await.0 }
    });
    let statuses = futures::future::join_all(sends).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let mut total = 0;
    for id in &ids {
        let hb = get_hb(&app, id).await;
        let seq: Vec<i64> = stored_seqs(&app, id).await;
        let count = *seq.last().unwrap();
        total += count;
        // The ring holds the newest 7 of this heartbeat's pings, each once.
        assert_eq!(seq, ((count - 6)..=count).collect::<Vec<_>>(), "{hb}");
    }
    assert_eq!(total, 300);
}

#[tokio::test]
async fn deleting_a_heartbeat_deletes_its_ping_history() {
    let app = quiet_app().await;
    let hb = create(&app, json!({"name": "chatty"})).await;
    let id = hb["id"].as_str().unwrap().to_string();
    for _ in 0..3 {
        assert_eq!(ping(&app, &ping_path(&hb)).await.0, 200);
    }
    assert_eq!(stored_seqs(&app, &id).await.len(), 3);
    let r = app
        .client
        .delete(app.url(&format!("/api/heartbeats/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(
        stored_seqs(&app, &id).await.is_empty(),
        "no orphaned pings are left behind"
    );
}

#[tokio::test]
async fn a_ping_before_the_deadline_moves_it_later_without_a_flip() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "hourly", "period_seconds": 3600, "grace_seconds": 300}),
    )
    .await;
    let id = hb["id"].as_str().unwrap();
    let uuid: uuid::Uuid = id.parse().unwrap();
    assert_eq!(ping(&app, &ping_path(&hb)).await.0, 200);
    // The loop records the first success (pending -> up), as it would within
    // half a second.
    let pinged = last_ping_at(&app, id).await;
    assert_eq!(tick(&app, pinged).await.flips, 1);
    // Pretend that ping came 1,000 s ago, then ping again now.
    let db = app.state.pool.get().await.unwrap();
    db.execute(
        "UPDATE heartbeat.heartbeat SET last_ping_at = last_ping_at - interval '1000 s',
                last_signal_at = last_signal_at - interval '1000 s',
                deadline = deadline - interval '1000 s'
         WHERE heartbeat_id = $1",
        &[&uuid],
    )
    .await
    .unwrap();
    let first = last_ping_at(&app, id).await;
    assert_eq!(ping(&app, &ping_path(&hb)).await.0, 200);
    let second = last_ping_at(&app, id).await;
    let hb_now = get_hb(&app, id).await;
    let shown: DateTime<Utc> = hb_now["next_deadline"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        shown,
        second + secs(3900),
        "the API shows the real deadline"
    );

    // The first ping's deadline passes: the loop looks, finds a newer ping, and
    // only moves the deadline; nothing flips.
    tick(&app, first + secs(3901)).await;
    assert_eq!(get_hb(&app, id).await["status"], "up");
    let stored: DateTime<Utc> = db
        .query_one(
            "SELECT deadline FROM heartbeat.heartbeat WHERE heartbeat_id = $1",
            &[&uuid],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        stored,
        second + secs(3900),
        "the loop moved the stored deadline"
    );
    assert_eq!(flips(&app, id).await.len(), 1, "only pending -> up");
    // The second ping's deadline is the one that counts.
    tick(&app, second + secs(3900)).await;
    assert_eq!(flips(&app, id).await.len(), 1, "only pending -> up");
    tick(&app, second + secs(3901)).await;
    let f = flips(&app, id).await;
    assert_eq!(f.len(), 2);
    let at: DateTime<Utc> = f[0]["at"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        at,
        second + secs(3900),
        "dated at the second ping's deadline"
    );
}

#[tokio::test]
async fn pings_get_503_while_the_database_is_unreachable() {
    let mut config = quiet_config();
    config.database_url = Some("host=127.0.0.1 port=1 user=nobody dbname=none".into());
    let app = heartbeat::app::Application::build(
        config,
        "host=127.0.0.1 port=1 user=nobody dbname=none".into(),
    )
    .await
    .unwrap();
    let port = app.port();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    let r = reqwest::get(format!("http://127.0.0.1:{port}/hb/hb_AAAAAAAAAAAAAAAA"))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    stop.cancel();
}
