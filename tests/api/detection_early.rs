//! A schedule heartbeat's `early` success, judged against the fire time after
//! the previous signal even when no pass of the deadline loop came between the
//! two (the ping statement works the fire time out from the fire times the loop
//! stored): one second before, at and after the margin opens, in separate
//! statements and in one batch.

use chrono::{DateTime, Utc};
use heartbeat::monitor::ping::PingKind;
use serde_json::{json, Value};

use crate::detection_rules::{flips, last_flip, one, pings, secs, send, t0, tick};
use crate::helpers::TestApp;
use crate::monitor::{create, quiet_app};

/// Every five minutes with a one-minute margin: a success at t0 (10:00:00)
/// expects the 10:05 fire, so one at 10:04:30 answers it, and the next success
/// is expected from 10:09:00 (the 10:10 fire less the margin).
async fn answered_at_10_04_30(app: &TestApp, name: &str) -> Value {
    let hb = create(
        app,
        json!({"name": name, "schedule": "*/5 * * * *", "tz": "UTC", "grace_seconds": 60,
               "start_margin_seconds": 60}),
    )
    .await;
    one(app, &hb, PingKind::Success, t0()).await;
    tick(app, t0()).await;
    one(app, &hb, PingKind::Success, t0() + secs(270)).await;
    hb
}

/// The newest ping's (event, reason).
async fn newest(app: &TestApp, hb: &Value) -> (Option<String>, Option<String>) {
    let p = &pings(app, hb).await[0];
    (
        p["event"].as_str().map(str::to_string),
        p["reason"].as_str().map(str::to_string),
    )
}

fn opens() -> DateTime<Utc> {
    t0() + secs(540)
}

#[tokio::test]
async fn a_second_success_before_the_next_loop_pass_is_judged_against_the_next_fire_time() {
    let app = quiet_app().await;
    let cases = [
        ("one-second-later", t0() + secs(271), true),
        ("before", opens() - secs(1), true),
        ("at", opens(), false),
        ("after", opens() + secs(1), false),
    ];
    let mut made = Vec::new();
    for (name, at, _) in cases {
        let hb = answered_at_10_04_30(&app, name).await;
        assert_eq!(
            newest(&app, &hb).await.0,
            None,
            "{name}: 10:04:30 answers 10:05"
        );
        one(&app, &hb, PingKind::Success, at).await;
        made.push(hb);
    }
    for ((name, at, early), hb) in cases.iter().zip(&made) {
        let (event, reason) = newest(&app, hb).await;
        if *early {
            assert_eq!(event.as_deref(), Some("early"), "{name}");
            let reason = reason.unwrap();
            let before = (t0() + secs(600) - *at).num_seconds();
            assert_eq!(
                reason,
                format!(
                    "{before} s before its fire time 2030-03-04T10:10:00Z, outside start_margin_seconds 60"
                ),
                "{name}"
            );
        } else {
            assert_eq!((event, reason), (None, None), "{name}");
        }
    }
    // The loop agrees: the early ones are down (a failure each, threshold 1),
    // the others up.
    tick(&app, opens() + secs(1)).await;
    for ((name, at, early), hb) in cases.iter().zip(&made) {
        let f = flips(&app, hb).await;
        if *early {
            let (_, to, cause, flip_at) = last_flip(&f);
            assert_eq!(
                (to.as_str(), cause.as_deref()),
                ("down", Some("early")),
                "{name}"
            );
            assert_eq!(flip_at, *at, "{name}");
        } else {
            assert!(f.is_empty(), "{name}: {f:?}");
        }
    }
}

#[tokio::test]
async fn successes_in_one_batch_are_each_judged_against_the_fire_time_after_the_one_before() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "batched", "schedule": "*/5 * * * *", "tz": "UTC", "grace_seconds": 60,
               "start_margin_seconds": 60}),
    )
    .await;
    one(&app, &hb, PingKind::Success, t0()).await;
    tick(&app, t0()).await;
    // 10:04:30 answers 10:05; 10:08:59 is early for 10:10 (and, a signal,
    // moves nothing: the next is still 10:10); 10:09:00 answers 10:10, so
    // 10:13:59 is early for 10:15 and 10:14:00 is not.
    send(
        &app,
        &[
            (&hb, PingKind::Success, None, t0() + secs(270)),
            (&hb, PingKind::Success, None, t0() + secs(539)),
            (&hb, PingKind::Success, None, t0() + secs(540)),
            (&hb, PingKind::Success, None, t0() + secs(839)),
            (&hb, PingKind::Success, None, t0() + secs(840)),
        ],
    )
    .await;
    let events: Vec<Option<String>> = pings(&app, &hb)
        .await
        .iter()
        .rev()
        .map(|p| p["event"].as_str().map(str::to_string))
        .collect();
    let early = Some("early".to_string());
    assert_eq!(
        events,
        [None, None, early.clone(), None, early, None],
        "oldest first"
    );
}
