//! The detection rules beyond period and grace, to the second: a start margin
//! for schedule heartbeats, a maximum run time per `rid`, a minimum interval
//! between successes, a minimum run time, and a schedule's early success.
//!
//! Pings are written through the ping writer's statement with the time each test
//! chooses (`ping::write_batch`), and the deadline loop runs one iteration at a
//! chosen `now`, so every boundary is checked one second before, at and after.

use chrono::{DateTime, TimeZone, Utc};
use heartbeat::monitor::deadline;
use heartbeat::monitor::heartbeat::HeartbeatToken;
use heartbeat::monitor::ping::{write_batch, PingKind, PingRecord};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::monitor::{create, get_hb, quiet_app};

/// A Monday, 10:00:00 UTC, well away from any DST change.
pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 3, 4, 10, 0, 0).unwrap()
}

pub(crate) fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

pub(crate) fn token(hb: &Value) -> HeartbeatToken {
    let url = hb["ping_url"].as_str().unwrap();
    HeartbeatToken::parse(&url[url.find("/hb/").unwrap() + 4..]).unwrap()
}

/// Writes pings as one batch, as the ping writer does, each at its own time.
pub(crate) async fn send(app: &TestApp, pings: &[(&Value, PingKind, Option<Uuid>, DateTime<Utc>)]) {
    let records: Vec<PingRecord> = pings
        .iter()
        .map(|(hb, kind, rid, at)| PingRecord {
            rid: *rid,
            ..PingRecord::new(token(hb), *kind, *at)
        })
        .collect();
    let refs: Vec<&PingRecord> = records.iter().collect();
    let client = app.state.pool.get().await.unwrap();
    let found = write_batch(&client, &refs, 100).await.unwrap();
    assert!(!found.found.is_empty(), "no heartbeat took the pings");
}

pub(crate) async fn one(app: &TestApp, hb: &Value, kind: PingKind, at: DateTime<Utc>) {
    send(app, &[(hb, kind, None, at)]).await;
}

pub(crate) async fn tick(app: &TestApp, now: DateTime<Utc>) -> deadline::Tick {
    deadline::run_once(&app.state.pool, now).await.unwrap()
}

/// The heartbeat's flips after its first success, newest first: the oldest flip,
/// `pending → up` (tested in `monitor_flips`), is not what these rules are about.
pub(crate) async fn flips(app: &TestApp, hb: &Value) -> Vec<Value> {
    let id = hb["id"].as_str().unwrap();
    let (status, body) = app.get_json(&format!("/api/heartbeats/{id}/flips")).await;
    assert_eq!(status, 200, "{body}");
    let mut flips = body["flips"].as_array().unwrap().clone();
    if flips
        .last()
        .is_some_and(|f| f["from"] == "pending" && f["to"] == "up")
    {
        flips.pop();
    }
    flips
}

pub(crate) async fn pings(app: &TestApp, hb: &Value) -> Vec<Value> {
    let id = hb["id"].as_str().unwrap();
    let (status, body) = app.get_json(&format!("/api/heartbeats/{id}/pings")).await;
    assert_eq!(status, 200, "{body}");
    body["pings"].as_array().unwrap().clone()
}

/// (failure streak, success streak, failing, cause) as stored.
pub(crate) async fn stored(app: &TestApp, hb: &Value) -> (i32, i32, bool, Option<String>) {
    let id: Uuid = hb["id"].as_str().unwrap().parse().unwrap();
    let row = app
        .db()
        .await
        .query_one(
            "SELECT fail_streak, ok_streak, failing, failing_cause FROM heartbeat.heartbeat
             WHERE heartbeat_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

pub(crate) fn at(v: &Value, field: &str) -> DateTime<Utc> {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {v}"))
        .parse()
        .unwrap()
}

/// The newest flip's (from, to, cause, at).
pub(crate) fn last_flip(f: &[Value]) -> (String, String, Option<String>, DateTime<Utc>) {
    let f = &f[0];
    (
        f["from"].as_str().unwrap().to_string(),
        f["to"].as_str().unwrap().to_string(),
        f["cause"].as_str().map(str::to_string),
        at(f, "at"),
    )
}

#[tokio::test]
async fn the_rules_are_validated_naming_the_field_and_zero_switches_one_off() {
    let app = quiet_app().await;
    let hb = create(&app, json!({"name": "rules", "max_runtime_seconds": 600})).await;
    assert_eq!(hb["max_runtime_seconds"], 600);
    assert_eq!(hb["start_margin_seconds"], Value::Null);
    let id = hb["id"].as_str().unwrap();
    for field in [
        "start_margin_seconds",
        "max_runtime_seconds",
        "min_interval_seconds",
        "min_runtime_seconds",
    ] {
        for bad in [json!(-1), json!(366 * 86_400 + 1), json!(1.5)] {
            let (status, body) = app
                .post_json("/api/heartbeats", &json!({"name": "x", field: bad}))
                .await;
            assert_eq!(status, 422, "{field}={bad}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            if bad.is_i64() {
                assert!(message.starts_with(field), "{message}");
            }
        }
        let r = app
            .client
            .patch(app.url(&format!("/api/heartbeats/{id}")))
            .json(&json!({ field: 30 }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.json::<Value>().await.unwrap()[field], 30);
    }
    let r = app
        .client
        .patch(app.url(&format!("/api/heartbeats/{id}")))
        .json(&json!({"max_runtime_seconds": 0}))
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["max_runtime_seconds"], Value::Null, "{body}");
    assert_eq!(body["min_runtime_seconds"], 30, "the others are kept");
}

#[tokio::test]
async fn a_fire_with_no_start_within_the_margin_is_missed_one_second_after_it() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "hourly", "schedule": "0 * * * *", "grace_seconds": 3600,
               "start_margin_seconds": 300}),
    )
    .await;
    one(&app, &hb, PingKind::Success, t0() + secs(10)).await;
    tick(&app, t0() + secs(10)).await;
    let fire = t0() + secs(3600);
    // The margin, not the hour of grace, decides.
    assert_eq!(
        at(
            &get_hb(&app, hb["id"].as_str().unwrap()).await,
            "next_deadline"
        ),
        fire + secs(300)
    );
    assert_eq!(tick(&app, fire + secs(299)).await.flips, 0);
    assert_eq!(tick(&app, fire + secs(300)).await.flips, 0);
    assert!(flips(&app, &hb).await.is_empty());
    assert_eq!(tick(&app, fire + secs(301)).await.flips, 1);
    let f = flips(&app, &hb).await;
    assert_eq!(
        last_flip(&f),
        (
            "up".into(),
            "down".into(),
            Some("missed".into()),
            fire + secs(300)
        )
    );
    assert_eq!(
        get_hb(&app, hb["id"].as_str().unwrap()).await["down_cause"],
        "missed"
    );
}

#[tokio::test]
async fn a_start_at_the_margin_answers_the_fire_and_one_a_second_later_does_not() {
    let app = quiet_app().await;
    let body = |name: &str| {
        json!({"name": name, "schedule": "0 * * * *", "grace_seconds": 3600,
               "start_margin_seconds": 300, "max_runtime_seconds": 1200})
    };
    let in_time = create(&app, body("in-time")).await;
    let too_late = create(&app, body("too-late")).await;
    for hb in [&in_time, &too_late] {
        one(&app, hb, PingKind::Success, t0() + secs(10)).await;
    }
    tick(&app, t0() + secs(10)).await;
    let fire = t0() + secs(3600);
    one(&app, &in_time, PingKind::Start, fire + secs(300)).await;
    tick(&app, fire + secs(300)).await;
    one(&app, &too_late, PingKind::Start, fire + secs(301)).await;
    assert_eq!(tick(&app, fire + secs(301)).await.flips, 1);
    assert!(flips(&app, &in_time).await.is_empty());
    assert_eq!(
        last_flip(&flips(&app, &too_late).await).2.as_deref(),
        Some("missed")
    );
    // The run that started in time is then timed by max_runtime_seconds: its
    // failure is a timeout, and the fire is not missed a second time.
    let limit = fire + secs(300 + 1200);
    assert_eq!(tick(&app, limit).await.flips, 0);
    assert_eq!(tick(&app, limit + secs(1)).await.flips, 1);
    let f = flips(&app, &in_time).await;
    assert_eq!(
        last_flip(&f),
        ("up".into(), "down".into(), Some("timeout".into()), limit)
    );
    assert_eq!(stored(&app, &in_time).await.0, 1, "one failure, not two");
}

#[tokio::test]
async fn overlapping_runs_each_have_their_own_clock_even_with_the_next_deadline_far() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "backup", "period_seconds": 86400, "grace_seconds": 3600,
               "max_runtime_seconds": 600}),
    )
    .await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    one(&app, &hb, PingKind::Success, t0()).await;
    send(
        &app,
        &[
            (&hb, PingKind::Start, Some(a), t0() + secs(100)),
            (&hb, PingKind::Start, Some(b), t0() + secs(400)),
        ],
    )
    .await;
    tick(&app, t0() + secs(400)).await;
    let view = get_hb(&app, hb["id"].as_str().unwrap()).await;
    let open: Vec<&str> = view["open_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rid"].as_str().unwrap())
        .collect();
    assert_eq!(open, [a.to_string(), b.to_string()], "{view}");
    // Run a finishes at its limit (start + 600): in time.
    send(&app, &[(&hb, PingKind::Success, Some(a), t0() + secs(700))]).await;
    assert_eq!(tick(&app, t0() + secs(700)).await.flips, 0);
    assert_eq!(pings(&app, &hb).await[0]["duration_ms"], 600_000);
    // Run b's clock runs from its own start: at t0 + 1000, with the period's
    // deadline a day away.
    assert_eq!(tick(&app, t0() + secs(999)).await.flips, 0);
    assert_eq!(tick(&app, t0() + secs(1000)).await.flips, 0);
    assert_eq!(stored(&app, &hb).await.0, 0);
    assert_eq!(tick(&app, t0() + secs(1001)).await.flips, 1);
    let f = flips(&app, &hb).await;
    assert_eq!(
        last_flip(&f),
        (
            "up".into(),
            "down".into(),
            Some("timeout".into()),
            t0() + secs(1000)
        )
    );
    let view = get_hb(&app, hb["id"].as_str().unwrap()).await;
    assert_eq!(view["open_runs"], json!([]), "{view}");
    // A finish of the timed-out run is a success again, and recovers.
    send(
        &app,
        &[(&hb, PingKind::Success, Some(b), t0() + secs(1100))],
    )
    .await;
    assert_eq!(tick(&app, t0() + secs(1100)).await.flips, 1);
    assert_eq!(
        last_flip(&flips(&app, &hb).await).2.as_deref(),
        Some("success")
    );
}

#[tokio::test]
async fn a_success_sooner_than_the_minimum_interval_is_early_and_counts_as_a_failure() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "twice", "period_seconds": 3600, "min_interval_seconds": 60,
               "failure_threshold": 2}),
    )
    .await;
    one(&app, &hb, PingKind::Success, t0()).await;
    // The loop records the first success (pending → up) as it would within 0.5 s.
    assert_eq!(tick(&app, t0()).await.flips, 1);
    one(&app, &hb, PingKind::Success, t0() + secs(59)).await;
    assert_eq!(stored(&app, &hb).await, (1, 0, false, None));
    let p = pings(&app, &hb).await;
    assert_eq!(p[0]["event"], "early", "{}", p[0]);
    let reason = p[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("59") && reason.contains("min_interval_seconds 60"),
        "{reason}"
    );
    assert_eq!(p[1]["event"], Value::Null);
    // Exactly the interval after the previous success (the early one counts as
    // the previous): a success.
    one(&app, &hb, PingKind::Success, t0() + secs(119)).await;
    assert_eq!(stored(&app, &hb).await, (0, 1, false, None));
    assert_eq!(pings(&app, &hb).await[0]["event"], Value::Null);
    // Two early successes in a row reach the threshold of two.
    one(&app, &hb, PingKind::Success, t0() + secs(120)).await;
    one(&app, &hb, PingKind::Success, t0() + secs(121)).await;
    assert_eq!(stored(&app, &hb).await, (2, 0, true, Some("early".into())));
    assert_eq!(tick(&app, t0() + secs(121)).await.flips, 1);
    assert_eq!(
        last_flip(&flips(&app, &hb).await),
        (
            "up".into(),
            "down".into(),
            Some("early".into()),
            t0() + secs(121)
        )
    );
}

#[tokio::test]
async fn a_run_shorter_than_the_minimum_run_time_is_too_fast() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "backup", "period_seconds": 86400, "min_runtime_seconds": 30}),
    )
    .await;
    one(&app, &hb, PingKind::Start, t0()).await;
    one(&app, &hb, PingKind::Success, t0() + secs(29)).await;
    assert_eq!(
        stored(&app, &hb).await,
        (1, 0, true, Some("too_fast".into()))
    );
    let p = pings(&app, &hb).await;
    assert_eq!(p[0]["event"], "too_fast");
    assert!(
        p[0]["reason"]
            .as_str()
            .unwrap()
            .contains("min_runtime_seconds 30"),
        "{}",
        p[0]
    );
    assert_eq!(tick(&app, t0() + secs(29)).await.flips, 1);
    assert_eq!(
        last_flip(&flips(&app, &hb).await).2.as_deref(),
        Some("too_fast")
    );
    // Exactly the minimum (with a rid, timed from its own start) is enough.
    let rid = Uuid::new_v4();
    send(
        &app,
        &[
            (&hb, PingKind::Start, Some(rid), t0() + secs(100)),
            (&hb, PingKind::Success, Some(rid), t0() + secs(130)),
        ],
    )
    .await;
    assert_eq!(stored(&app, &hb).await, (0, 1, false, None));
    assert_eq!(tick(&app, t0() + secs(130)).await.flips, 1);
    // A run with a start no one sent has no run time to judge.
    one(&app, &hb, PingKind::Success, t0() + secs(131)).await;
    assert_eq!(stored(&app, &hb).await, (0, 2, false, None));
}

#[tokio::test]
async fn a_schedule_success_well_before_its_fire_time_is_early() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "hourly", "schedule": "0 * * * *", "grace_seconds": 600,
               "start_margin_seconds": 300, "failure_threshold": 2}),
    )
    .await;
    one(&app, &hb, PingKind::Success, t0() + secs(10)).await;
    tick(&app, t0() + secs(10)).await;
    // The next fire is 11:00; the margin opens at 10:55.
    let opens = t0() + secs(3300);
    one(&app, &hb, PingKind::Success, opens - secs(1)).await;
    assert_eq!(stored(&app, &hb).await.0, 1);
    let p = pings(&app, &hb).await;
    assert_eq!(p[0]["event"], "early");
    assert!(p[0]["reason"].as_str().unwrap().contains("301"), "{}", p[0]);
    tick(&app, opens - secs(1)).await;
    one(&app, &hb, PingKind::Success, opens).await;
    assert_eq!(stored(&app, &hb).await.0, 0, "at the margin: in time");
    tick(&app, opens).await;
    // That success answered 11:00; the next is 12:00, and a success at
    // 11:55:01 is in its margin.
    one(&app, &hb, PingKind::Success, opens + secs(3601)).await;
    assert_eq!(stored(&app, &hb).await, (0, 2, false, None));
    assert!(flips(&app, &hb).await.is_empty());
}

#[tokio::test]
async fn early_too_fast_timed_out_and_failed_runs_all_count_toward_the_threshold() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "mixed", "period_seconds": 86400, "grace_seconds": 3600,
               "max_runtime_seconds": 600, "min_interval_seconds": 60,
               "min_runtime_seconds": 30, "failure_threshold": 4}),
    )
    .await;
    one(&app, &hb, PingKind::Success, t0()).await;
    // The loop records the first success (pending → up) as it would within 0.5 s.
    assert_eq!(tick(&app, t0()).await.flips, 1);
    one(&app, &hb, PingKind::Success, t0() + secs(10)).await;
    assert_eq!(stored(&app, &hb).await.0, 1, "early");
    send(
        &app,
        &[
            (&hb, PingKind::Start, None, t0() + secs(100)),
            (&hb, PingKind::Success, None, t0() + secs(110)),
        ],
    )
    .await;
    assert_eq!(stored(&app, &hb).await.0, 2, "too fast");
    send(
        &app,
        &[(&hb, PingKind::Start, Some(Uuid::new_v4()), t0() + secs(200))],
    )
    .await;
    assert_eq!(tick(&app, t0() + secs(800)).await.flips, 0);
    assert_eq!(stored(&app, &hb).await.0, 2);
    assert_eq!(tick(&app, t0() + secs(801)).await.flips, 0);
    assert_eq!(stored(&app, &hb).await, (3, 0, false, None), "timeout");
    // The fourth failure, an exit code, takes it down: the cause is the last.
    let failed = PingRecord {
        exit_code: Some(3),
        ..PingRecord::new(token(&hb), PingKind::Fail, t0() + secs(900))
    };
    let client = app.state.pool.get().await.unwrap();
    write_batch(&client, &[&failed], 100).await.unwrap();
    assert_eq!(stored(&app, &hb).await, (4, 0, true, Some("fail".into())));
    assert_eq!(tick(&app, t0() + secs(900)).await.flips, 1);
    assert_eq!(
        last_flip(&flips(&app, &hb).await),
        (
            "up".into(),
            "down".into(),
            Some("fail".into()),
            t0() + secs(900)
        )
    );
}
