//! Alerts withheld and owed, under the deadline loop at chosen instants: a
//! silence (until a time, or a recurring window across a DST change, per
//! heartbeat or per tag), and dependencies (a three-level chain whose middle
//! recovers first; cycles refused). The daemon's own job heartbeats can be
//! silenced and routed like any other.

use chrono::{DateTime, TimeZone, Utc};
use heartbeat::monitor::ping::PingKind;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::detection_rules::{flips, last_flip, one, secs, t0, tick};
use crate::helpers::{error_code, TestApp};
use crate::monitor::{create, get_hb, quiet_app};

/// A webhook channel, so flips that alert write outbox rows.
pub(crate) async fn with_channel(app: &TestApp) {
    let (status, body) = app
        .post_json("/api/webhooks", &json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
    assert_eq!(status, 201, "{body}");
}

/// The alerts written for `hb`, oldest first.
pub(crate) async fn alerts(app: &TestApp, hb: &Value) -> Vec<String> {
    let id: Uuid = hb["id"].as_str().unwrap().parse().unwrap();
    app.db()
        .await
        .query(
            "SELECT event FROM heartbeat.alert WHERE heartbeat_id = $1 ORDER BY alert_id",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

pub(crate) async fn patch(app: &TestApp, hb: &Value, body: Value) -> (u16, Value) {
    let id = hb["id"].as_str().unwrap();
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

async fn silence(app: &TestApp, hb: &Value, body: Value) -> Value {
    let id = hb["id"].as_str().unwrap();
    let (status, s) = app
        .post_json(&format!("/api/heartbeats/{id}/silence"), &body)
        .await;
    assert_eq!(status, 201, "{s}");
    s
}

fn withheld(f: &Value) -> Option<&str> {
    f["withheld"].as_str()
}

#[tokio::test]
async fn a_silenced_heartbeat_flips_without_an_alert_and_alerts_once_if_still_down_at_the_end() {
    let app = quiet_app().await;
    with_channel(&app).await;
    let body = |name: &str| json!({"name": name, "period_seconds": 600, "grace_seconds": 60});
    let stays_down = create(&app, body("stays-down")).await;
    let recovers = create(&app, body("recovers")).await;
    let until = t0() + secs(2000);
    for hb in [&stays_down, &recovers] {
        one(&app, hb, PingKind::Success, t0()).await;
        let s = silence(&app, hb, json!({"until": until})).await;
        assert_eq!(at(&s, "until"), until);
        assert_eq!(at(&s, "active_until"), until, "{s}");
    }
    // The loop records both first successes (pending → up), as it would within 0.5 s.
    assert_eq!(tick(&app, t0()).await.flips, 2);
    assert_eq!(tick(&app, t0() + secs(661)).await.flips, 2);
    for hb in [&stays_down, &recovers] {
        let f = flips(&app, hb).await;
        assert_eq!(last_flip(&f).1, "down");
        assert_eq!(withheld(&f[0]), Some("silenced"), "{}", f[0]);
        assert!(alerts(&app, hb).await.is_empty());
        let view = get_hb(&app, hb["id"].as_str().unwrap()).await;
        assert_eq!(view["alert_withheld"], "silenced", "{view}");
        assert_eq!(at(&view, "silenced_until"), until);
    }
    // One recovers during the silence: its recovery is recorded, and since its
    // down alert never went out, neither does an "up".
    one(&app, &recovers, PingKind::Success, t0() + secs(1000)).await;
    assert_eq!(tick(&app, t0() + secs(1000)).await.flips, 1);
    assert_eq!(withheld(&flips(&app, &recovers).await[0]), Some("silenced"));
    // (Paused from here, so its own next deadline stays out of the count.)
    assert_eq!(patch(&app, &recovers, json!({"paused": true})).await.0, 200);
    assert_eq!(tick(&app, t0() + secs(1001)).await.alerts, 0);
    // The silence ends at `until` (exclusive): the one still down alerts then,
    // once.
    assert_eq!(tick(&app, until - secs(1)).await.alerts, 0);
    assert!(alerts(&app, &stays_down).await.is_empty());
    assert_eq!(tick(&app, until).await.alerts, 1);
    assert_eq!(alerts(&app, &stays_down).await, ["down"]);
    assert_eq!(tick(&app, until + secs(1)).await.alerts, 0);
    assert_eq!(tick(&app, until + secs(86_400)).await.alerts, 0);
    assert_eq!(alerts(&app, &stays_down).await, ["down"]);
    assert!(alerts(&app, &recovers).await.is_empty());
    let view = get_hb(&app, stays_down["id"].as_str().unwrap()).await;
    assert_eq!(view["alert_withheld"], Value::Null);
}

fn at(v: &Value, field: &str) -> DateTime<Utc> {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_recurring_tag_silence_follows_local_time_across_spring_forward() {
    let app = quiet_app().await;
    with_channel(&app).await;
    // Every Sunday 02:00-04:00 in Paris. 2027-03-28 springs forward at 02:00:
    // the window opens at 03:00 CEST (01:00 UTC) and lasts two real hours.
    let (status, s) = app
        .post_json(
            "/api/silences",
            &json!({"tag": "db", "cron": "0 2 * * 0", "duration_seconds": 7200,
                    "tz": "Europe/Paris"}),
        )
        .await;
    assert_eq!(status, 201, "{s}");
    let opens = Utc.with_ymd_and_hms(2027, 3, 28, 1, 0, 0).unwrap();
    let closes = Utc.with_ymd_and_hms(2027, 3, 28, 3, 0, 0).unwrap();
    let body = |name: &str| json!({"name": name, "period_seconds": 600, "grace_seconds": 0, "tags": ["db"]});
    let before = create(&app, body("before")).await;
    let inside = create(&app, body("inside")).await;
    let untagged = create(
        &app,
        json!({"name": "untagged", "period_seconds": 600, "grace_seconds": 0}),
    )
    .await;
    // Down one second before the window: alerts at once.
    one(&app, &before, PingKind::Success, opens - secs(602)).await;
    tick(&app, opens - secs(602)).await;
    assert_eq!(tick(&app, opens - secs(1)).await.alerts, 1);
    assert_eq!(alerts(&app, &before).await, ["down"]);
    // Down at the window's first second: withheld; the untagged one is not.
    for hb in [&inside, &untagged] {
        one(&app, hb, PingKind::Success, opens - secs(600)).await;
    }
    tick(&app, opens - secs(600)).await;
    assert_eq!(tick(&app, opens).await.flips, 0, "at the deadline: up");
    assert_eq!(tick(&app, opens + secs(1)).await.alerts, 1);
    assert_eq!(alerts(&app, &untagged).await, ["down"]);
    assert!(alerts(&app, &inside).await.is_empty());
    assert_eq!(withheld(&flips(&app, &inside).await[0]), Some("silenced"));
    // Still down when the window closes: one alert, at its end.
    assert_eq!(tick(&app, closes - secs(1)).await.alerts, 0);
    assert_eq!(tick(&app, closes).await.alerts, 1);
    assert_eq!(alerts(&app, &inside).await, ["down"]);
    // Listed, and removable.
    let (_, list) = app.get_json("/api/silences").await;
    let listed = list["silences"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!(listed[0]["tag"], "db");
    assert_eq!(listed[0]["tz"], "Europe/Paris");
    let id = s["id"].as_str().unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/api/silences/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, list) = app.get_json("/api/silences").await;
    assert_eq!(list["silences"], json!([]));
    let r = app
        .client
        .delete(app.url(&format!("/api/silences/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn removing_a_silence_sends_the_alert_it_held() {
    let app = quiet_app().await;
    with_channel(&app).await;
    let hb = create(
        &app,
        json!({"name": "snoozed", "period_seconds": 600, "grace_seconds": 0}),
    )
    .await;
    one(&app, &hb, PingKind::Success, t0()).await;
    let s = silence(&app, &hb, json!({"until": t0() + secs(86_400)})).await;
    tick(&app, t0() + secs(601)).await;
    assert!(alerts(&app, &hb).await.is_empty());
    let r = app
        .client
        .delete(app.url(&format!("/api/silences/{}", s["id"].as_str().unwrap())))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // The removal hands it back to the loop, which sends the alert at once.
    tick(&app, Utc::now()).await;
    assert_eq!(alerts(&app, &hb).await, ["down"]);
}

#[tokio::test]
async fn silences_are_validated_naming_the_field() {
    let app = quiet_app().await;
    let hb = create(&app, json!({"name": "x"})).await;
    let id = hb["id"].as_str().unwrap();
    let path = format!("/api/heartbeats/{id}/silence");
    for (body, field) in [
        (json!({}), "until"),
        (json!({"until": "2020-01-01T00:00:00Z"}), "until"),
        (
            json!({"until": "2099-01-01T00:00:00Z", "cron": "* * * * *", "duration_seconds": 1}),
            "until",
        ),
        (
            json!({"cron": "61 * * * *", "duration_seconds": 60}),
            "cron",
        ),
        (
            json!({"cron": "0 2 * * 0", "duration_seconds": 0}),
            "duration_seconds",
        ),
        (
            json!({"cron": "0 2 * * 0", "duration_seconds": 60, "tz": "Mars/Base"}),
            "tz",
        ),
    ] {
        let (status, err) = app.post_json(&path, &body).await;
        assert_eq!(status, 422, "{body}: {err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{body}: {message}");
    }
    let (status, _) = app
        .post_json(
            &format!("/api/heartbeats/{}/silence", Uuid::new_v4()),
            &json!({"until": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, err) = app
        .post_json(
            "/api/silences",
            &json!({"tag": "has space", "until": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
}

#[tokio::test]
async fn a_three_level_chain_alerts_only_for_the_root_and_a_child_still_down_when_its_parent_recovers(
) {
    let app = quiet_app().await;
    with_channel(&app).await;
    let body = |name: &str, parents: Vec<&Value>| {
        let parents: Vec<&str> = parents.iter().map(|p| p["id"].as_str().unwrap()).collect();
        json!({"name": name, "period_seconds": 600, "grace_seconds": 0, "parents": parents})
    };
    let root = create(&app, body("db-host", vec![])).await;
    let middle = create(&app, body("db-dump", vec![&root])).await;
    let leaf = create(&app, body("dump-upload", vec![&middle])).await;
    assert_eq!(leaf["parents"], json!([middle["id"]]));
    for hb in [&root, &middle, &leaf] {
        one(&app, hb, PingKind::Success, t0()).await;
    }
    tick(&app, t0()).await;
    // All three miss their deadline together: only the root pages.
    let t = tick(&app, t0() + secs(601)).await;
    assert_eq!((t.flips, t.alerts), (3, 1));
    assert_eq!(alerts(&app, &root).await, ["down"]);
    for hb in [&middle, &leaf] {
        let f = flips(&app, hb).await;
        assert_eq!(last_flip(&f).1, "down");
        assert_eq!(withheld(&f[0]), Some("suppressed"));
        assert!(alerts(&app, hb).await.is_empty());
    }
    // The middle recovers first: its recovery is withheld too (its down never
    // went out), and the leaf, still down with its parent up, alerts once.
    one(&app, &middle, PingKind::Success, t0() + secs(700)).await;
    let t = tick(&app, t0() + secs(700)).await;
    assert_eq!((t.flips, t.alerts, t.woken), (1, 1, 1));
    assert_eq!(withheld(&flips(&app, &middle).await[0]), Some("suppressed"));
    assert!(alerts(&app, &middle).await.is_empty());
    assert_eq!(alerts(&app, &leaf).await, ["down"]);
    // The root recovers: its own "up", and nothing owed below.
    one(&app, &root, PingKind::Success, t0() + secs(800)).await;
    let t = tick(&app, t0() + secs(800)).await;
    assert_eq!((t.flips, t.alerts), (1, 1));
    assert_eq!(alerts(&app, &root).await, ["down", "up"]);
    assert!(alerts(&app, &middle).await.is_empty());
    assert_eq!(alerts(&app, &leaf).await, ["down"]);
    assert_eq!(tick(&app, t0() + secs(801)).await.alerts, 0);
}

#[tokio::test]
async fn parents_that_would_make_a_cycle_are_refused_naming_it() {
    let app = quiet_app().await;
    let a = create(&app, json!({"name": "a"})).await;
    let b = create(&app, json!({"name": "b", "parents": [a["id"]]})).await;
    let c = create(&app, json!({"name": "c", "parents": [b["id"]]})).await;
    let (status, err) = patch(&app, &a, json!({"parents": [c["id"]]})).await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(error_code(&err), "dependency_cycle");
    let message = err["error"]["message"].as_str().unwrap();
    for name in ["a (", "b (", "c ("] {
        assert!(message.contains(name), "{message}");
    }
    let (status, err) = patch(&app, &a, json!({"parents": [a["id"]]})).await;
    assert_eq!(status, 422, "{err}");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("parents"));
    let (status, err) = patch(&app, &a, json!({"parents": [Uuid::new_v4()]})).await;
    assert_eq!(status, 422, "{err}");
    // A diamond is no cycle.
    let (status, body) = patch(&app, &c, json!({"parents": [a["id"], b["id"]]})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = patch(&app, &c, json!({"parents": []})).await;
    assert_eq!((status, body["parents"].clone()), (200, json!([])));
}

#[tokio::test]
async fn a_job_heartbeat_can_be_silenced_and_routed() {
    let app = quiet_app().await;
    let mut job = None;
    for _ in 0..200 {
        let (_, list) = app.get_json("/api/heartbeats").await;
        job = list["heartbeats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["job"] == true)
            .cloned();
        if job.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let job = job.expect("a job heartbeat");
    silence(&app, &job, json!({"until": "2099-01-01T00:00:00Z"})).await;
    let (status, body) = patch(&app, &job, json!({"channels": []})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["channels"], json!([]));
    assert!(body["silenced_until"].is_string(), "{body}");
}
