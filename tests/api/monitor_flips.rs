//! Flips: every change of a heartbeat's stored status is one row with its `from`
//! and `to` (docs/decisions.md §11), `late` never is (it is computed from the
//! clock), and a first success the loop only sees after the heartbeat went down
//! again is still in the history.

use chrono::{DateTime, Duration, Utc};
use heartbeat::monitor::deadline;
use serde_json::{json, Value};

use crate::helpers::TestApp;
use crate::monitor::{create, quiet_app};

async fn ping(app: &TestApp, hb: &Value, suffix: &str) -> DateTime<Utc> {
    let url = hb["ping_url"].as_str().unwrap();
    let path = &url[url.find("/hb/").unwrap()..];
    let r = app
        .client
        .get(app.url(&format!("{path}{suffix}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, hb) = app
        .get_json(&format!("/api/heartbeats/{}", hb["id"].as_str().unwrap()))
        .await;
    hb["last_ping_at"].as_str().unwrap().parse().unwrap()
}

async fn tick(app: &TestApp, now: DateTime<Utc>) -> deadline::Tick {
    deadline::run_once(&app.state.pool, now).await.unwrap()
}

/// `(from, to, at)` of every flip, oldest first.
async fn history(app: &TestApp, hb: &Value) -> Vec<(String, String, DateTime<Utc>)> {
    let id = hb["id"].as_str().unwrap();
    let (status, body) = app.get_json(&format!("/api/heartbeats/{id}/flips")).await;
    assert_eq!(status, 200, "{body}");
    let mut out: Vec<_> = body["flips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["from"].as_str().unwrap().to_string(),
                f["to"].as_str().unwrap().to_string(),
                f["at"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    out.reverse();
    out
}

fn pairs(h: &[(String, String, DateTime<Utc>)]) -> Vec<(&str, &str)> {
    h.iter().map(|(f, t, _)| (f.as_str(), t.as_str())).collect()
}

async fn set_paused(app: &TestApp, hb: &Value, paused: bool) {
    let id = hb["id"].as_str().unwrap();
    let r = app
        .client
        .patch(app.url(&format!("/api/heartbeats/{id}")))
        .json(&json!({ "paused": paused }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn every_change_of_the_stored_status_is_a_flip_with_from_and_to_and_late_is_not() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "nightly", "period_seconds": 3600, "grace_seconds": 300}),
    )
    .await;
    let s = Duration::seconds;

    let first = ping(&app, &hb, "").await;
    assert_eq!(tick(&app, first).await.flips, 1);
    // Late (past the period, within grace) is a warning computed at read.
    assert_eq!(tick(&app, first + s(3601)).await.flips, 0);
    assert_eq!(tick(&app, first + s(3900)).await.flips, 0);
    assert_eq!(tick(&app, first + s(3901)).await.flips, 1);
    let back = ping(&app, &hb, "").await;
    assert_eq!(tick(&app, back).await.flips, 1);
    set_paused(&app, &hb, true).await;
    assert_eq!(tick(&app, Utc::now() + s(1)).await.flips, 1);
    set_paused(&app, &hb, false).await;
    assert_eq!(tick(&app, Utc::now() + s(1)).await.flips, 1);

    let h = history(&app, &hb).await;
    assert_eq!(
        pairs(&h),
        [
            ("pending", "up"),
            ("up", "down"),
            ("down", "up"),
            ("up", "paused"),
            ("paused", "up"),
        ]
    );
    assert_eq!(h[0].2, first, "the first success, dated at its ping");
    assert_eq!(
        h[1].2,
        first + s(3900),
        "down at the deadline, not when late"
    );
    assert_eq!(h[2].2, back);
}

#[tokio::test]
async fn a_start_that_never_finishes_takes_a_new_heartbeat_from_pending_to_down() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "backup", "period_seconds": 86400, "grace_seconds": 600}),
    )
    .await;
    let started = ping(&app, &hb, "/start").await;
    assert_eq!(tick(&app, started + Duration::seconds(600)).await.flips, 0);
    let t = tick(&app, started + Duration::seconds(601)).await;
    assert_eq!((t.flips, t.alerts), (1, 0), "no channel, no alert row");
    let h = history(&app, &hb).await;
    assert_eq!(pairs(&h), [("pending", "down")]);
    assert_eq!(h[0].2, started + Duration::seconds(600));
}

#[tokio::test]
async fn a_first_success_the_loop_sees_only_after_the_deadline_is_still_recorded() {
    // The loop was not running (a stopped daemon) between the first ping and its
    // deadline: both changes are recorded, each dated when it happened.
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "hourly", "period_seconds": 3600, "grace_seconds": 300}),
    )
    .await;
    let first = ping(&app, &hb, "").await;
    let t = tick(&app, first + Duration::hours(5)).await;
    assert_eq!(t.flips, 2);
    let h = history(&app, &hb).await;
    assert_eq!(pairs(&h), [("pending", "up"), ("up", "down")]);
    assert_eq!(h[0].2, first);
    assert_eq!(h[1].2, first + Duration::seconds(3900));
}
