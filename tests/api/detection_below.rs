//! Failures below the failure threshold change no status, and are still seen:
//! the heartbeat JSON carries the streak, and `GET /api/heartbeats/{id}/events`
//! lists each missed deadline and timed-out run the loop counted (with its
//! reason and the streak it made), beside the `early` and `too_fast` pings.

use heartbeat::monitor::ping::PingKind;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::detection_rules::{flips, last_flip, one, secs, send, t0, tick};
use crate::helpers::TestApp;
use crate::monitor::{create, get_hb, quiet_app};

async fn events(app: &TestApp, hb: &Value) -> Vec<Value> {
    let id = hb["id"].as_str().unwrap();
    let (status, body) = app.get_json(&format!("/api/heartbeats/{id}/events")).await;
    assert_eq!(status, 200, "{body}");
    body["events"].as_array().unwrap().clone()
}

fn streak(hb: &Value) -> i64 {
    hb["failure_streak"].as_i64().unwrap()
}

#[tokio::test]
async fn a_missed_deadline_below_the_threshold_is_listed_with_its_reason_and_streak() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "three", "period_seconds": 600, "grace_seconds": 60,
               "failure_threshold": 3}),
    )
    .await;
    let id = hb["id"].as_str().unwrap();
    one(&app, &hb, PingKind::Success, t0()).await;
    tick(&app, t0()).await;
    // One second before the deadline passes: nothing counted.
    tick(&app, t0() + secs(660)).await;
    assert!(events(&app, &hb).await.is_empty());
    // The miss: still up, the streak at 1, and the event listed.
    let t = tick(&app, t0() + secs(661)).await;
    assert_eq!((t.flips, t.events.missed), (0, 1));
    assert!(flips(&app, &hb).await.is_empty());
    let view = get_hb(&app, id).await;
    assert_eq!(streak(&view), 1, "{view}");
    assert_ne!(view["status"], "down");
    let e = events(&app, &hb).await;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0]["event"], "missed");
    assert_eq!(e[0]["at"], "2030-03-04T10:11:00Z");
    assert_eq!(e[0]["failure_streak"], 1);
    assert_eq!(e[0]["ping_seq"], Value::Null);
    assert_eq!(
        e[0]["reason"],
        "nothing heard by 2030-03-04T10:11:00Z: due 2030-03-04T10:10:00Z, grace_seconds 60"
    );
    assert!(e[0]["detected_at"].is_string());
    // A tick again at the same instant records nothing twice.
    tick(&app, t0() + secs(661)).await;
    assert_eq!(events(&app, &hb).await.len(), 1);
    // A fail ping is the second failure (in the ping history, as a fail);
    // the next missed deadline is the third: down, caused by it.
    one(&app, &hb, PingKind::Fail, t0() + secs(700)).await;
    tick(&app, t0() + secs(700)).await;
    assert_eq!(streak(&get_hb(&app, id).await), 2);
    assert!(flips(&app, &hb).await.is_empty());
    tick(&app, t0() + secs(1361)).await;
    let (_, to, cause, at) = last_flip(&flips(&app, &hb).await);
    assert_eq!((to.as_str(), cause.as_deref()), ("down", Some("missed")));
    assert_eq!(at, t0() + secs(1360));
    let e = events(&app, &hb).await;
    let listed: Vec<(&str, i64)> = e
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap(),
                e["failure_streak"].as_i64().unwrap(),
            )
        })
        .collect();
    // The third, which reached the threshold, is recorded by its flip above,
    // not twice.
    assert_eq!(
        listed,
        [("missed", 1)],
        "only the failure below the threshold"
    );
    assert_eq!(streak(&get_hb(&app, id).await), 3);
}

#[tokio::test]
async fn a_timeout_and_an_early_success_below_the_threshold_are_listed() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "runs", "period_seconds": 86_400, "failure_threshold": 3,
               "max_runtime_seconds": 300, "min_interval_seconds": 60}),
    )
    .await;
    let id = hb["id"].as_str().unwrap();
    let rid = Uuid::from_u128(7);
    one(&app, &hb, PingKind::Success, t0()).await;
    send(&app, &[(&hb, PingKind::Start, Some(rid), t0() + secs(100))]).await;
    tick(&app, t0() + secs(100)).await;
    tick(&app, t0() + secs(400)).await;
    assert!(events(&app, &hb).await.is_empty(), "at the limit: in time");
    tick(&app, t0() + secs(401)).await;
    let e = events(&app, &hb).await;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0]["event"], "timeout");
    assert_eq!(e[0]["at"], "2030-03-04T10:06:40Z");
    assert_eq!(
        e[0]["reason"],
        format!(
            "run {rid} started 2030-03-04T10:01:40Z not finished within max_runtime_seconds 300"
        )
    );
    assert_eq!(e[0]["failure_streak"], 1);
    // A success 30 s after the previous one: early, the second failure.
    one(&app, &hb, PingKind::Success, t0() + secs(500)).await;
    one(&app, &hb, PingKind::Success, t0() + secs(530)).await;
    tick(&app, t0() + secs(530)).await;
    let view = get_hb(&app, id).await;
    assert_eq!((streak(&view), view["status"].as_str()), (1, Some("up")));
    let e = events(&app, &hb).await;
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(e[0]["event"], "early");
    assert_eq!(e[0]["at"], "2030-03-04T10:08:50Z");
    assert!(e[0]["ping_seq"].is_i64(), "{}", e[0]);
    assert_eq!(e[0]["failure_streak"], Value::Null);
    assert_eq!(
        e[0]["reason"],
        "30 s after the previous success, less than min_interval_seconds 60"
    );
    assert_eq!(e[1]["event"], "timeout");
}

#[tokio::test]
async fn another_projects_heartbeat_has_no_events_to_show() {
    let app = quiet_app().await;
    let (status, body) = app
        .get_json(&format!("/api/heartbeats/{}/events", Uuid::new_v4()))
        .await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn the_loop_keeps_each_heartbeats_newest_hundred_events() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "ring", "period_seconds": 60, "grace_seconds": 0,
               "failure_threshold": 100}),
    )
    .await;
    one(&app, &hb, PingKind::Success, t0()).await;
    tick(&app, t0()).await;
    // 100 misses in one pass: the first 99 are below the threshold and kept
    // as events; the 100th takes it down and is its flip.
    let t = tick(&app, t0() + secs(60 * 100 + 1)).await;
    assert_eq!((t.events.missed, t.flips), (100, 1));
    let e = events(&app, &hb).await;
    assert_eq!(e.len(), 99);
    assert_eq!(e[0]["failure_streak"], 99);
    assert_eq!(e[98]["failure_streak"], 1);
    // It recovers, then misses 100 more: their 99 events overwrite the oldest
    // in place, so the ring keeps the newest 100, the last one of the first
    // round among them.
    let back = t0() + secs(60 * 101);
    one(&app, &hb, PingKind::Success, back).await;
    tick(&app, back).await;
    let t = tick(&app, back + secs(60 * 100 + 1)).await;
    assert_eq!(t.events.missed, 100);
    let e = events(&app, &hb).await;
    assert_eq!(e.len(), 100);
    let after_back = |e: &Value| {
        e["at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            > back
    };
    assert!(
        e[..99].iter().all(after_back),
        "the newest 99 are the second round's"
    );
    assert_eq!(e[0]["failure_streak"], 99);
    assert_eq!(e[98]["failure_streak"], 1);
    assert!(
        !after_back(&e[99]),
        "the oldest kept is the first round's last"
    );
    assert_eq!(e[99]["failure_streak"], 99);
}
