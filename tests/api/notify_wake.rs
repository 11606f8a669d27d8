//! Cross-node wake: an alert written by one node's deadline loop is delivered
//! by another node's worker at once, through `LISTEN/NOTIFY`, not at that
//! worker's next poll; and the listener comes back after its connection is cut.
//!
//! Node A drives its deadline loop by hand (`run_once`) and runs no worker;
//! node B runs its loops with a ten-minute interval, so after their first pass
//! neither B's deadline loop nor B's poll acts again within the test: only the
//! notification can make B deliver.

use std::time::{Duration, Instant};

use chrono::Utc;
use heartbeat::config::Config;
use heartbeat::monitor::{deadline, MonitorConfig};
use heartbeat::notify::wake::APPLICATION_NAME;
use serde_json::json;

use crate::helpers::{fresh_database, spawn_app_on, test_config, TestApp};
use crate::notify_channels::{add_channel, create_heartbeat, ping, quiet_config, Receiver};

/// Node B's deadline loop and poll interval: far longer than any wait here.
const LONG_INTERVAL_MS: u64 = 600_000;
/// How soon B must deliver: generous for a loaded machine, and a thirtieth of
/// B's poll interval.
const WITHIN: Duration = Duration::from_secs(20);

fn node_b_config() -> Config {
    Config {
        monitor: MonitorConfig {
            loops: true,
            deadline_interval_ms: LONG_INTERVAL_MS,
            delivery_interval_ms: LONG_INTERVAL_MS,
            ..MonitorConfig::default()
        },
        ..test_config()
    }
}

/// Two nodes on one database and a webhook channel at a local receiver.
async fn two_nodes() -> (TestApp, TestApp, Receiver) {
    let db = fresh_database().await;
    let a = spawn_app_on(quiet_config(), db.clone()).await;
    let b = spawn_app_on(node_b_config(), db).await;
    let (receiver, url) = Receiver::start(json!({})).await;
    add_channel(&a, json!({"kind": "webhook", "config": {"url": url}})).await;
    first_deadline_pass_done(&b).await;
    (a, b, receiver)
}

/// Waits until B's deadline loop has made its first pass (it publishes the
/// status gauge right after it), so its next pass is an interval away and
/// cannot take the test's heartbeat from A.
async fn first_deadline_pass_done(b: &TestApp) {
    let started = Instant::now();
    while started.elapsed() < WITHIN {
        let text = b
            .client
            .get(b.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("heartbeat_heartbeats{") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("node B's deadline loop made no pass");
}

/// The backend pid of the listening session, once it has run its `LISTEN`.
async fn listener_pid(app: &TestApp, other_than: Option<i32>) -> i32 {
    let db = app.db().await;
    let started = Instant::now();
    while started.elapsed() < WITHIN {
        let row = db
            .query_opt(
                "SELECT pid FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = $1
                   AND query LIKE 'LISTEN%' AND state = 'idle' AND pid <> $2",
                &[&APPLICATION_NAME, &other_than.unwrap_or(0)],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            return row.get(0);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no alert listener session appeared");
}

/// A heartbeat on A whose deadline has passed: period 1 s, no grace, pinged
/// once, then the clock has moved past its deadline.
async fn overdue(a: &TestApp, name: &str) {
    let hb = create_heartbeat(
        a,
        json!({"name": name, "period_seconds": 1, "grace_seconds": 0}),
    )
    .await;
    let at = ping(a, &hb, "").await;
    let due = at + chrono::Duration::milliseconds(1100);
    while Utc::now() <= due {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A's deadline loop flips `name` down and writes its alert; returns when B
/// delivered it, with how long that took.
async fn written_on_a_delivered_by_b(a: &TestApp, receiver: &Receiver, name: &str) -> Duration {
    let before = receiver.seen().len();
    overdue(a, name).await;
    let started = Instant::now();
    let tick = deadline::run_once(&a.state.pool, Utc::now()).await.unwrap();
    assert_eq!(tick.alerts, 1, "A's deadline loop wrote the alert");
    while receiver.seen().len() == before && started.elapsed() < WITHIN {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = receiver.seen();
    assert_eq!(
        seen.len(),
        before + 1,
        "B delivered the alert within {WITHIN:?}"
    );
    let alert = seen.last().unwrap().json();
    assert_eq!(alert["event"], "down");
    assert_eq!(alert["heartbeat"]["name"], name);
    started.elapsed()
}

#[tokio::test]
async fn an_alert_written_by_another_nodes_deadline_loop_is_delivered_long_before_the_poll() {
    let (a, b, receiver) = two_nodes().await;
    listener_pid(&b, None).await;
    let took = written_on_a_delivered_by_b(&a, &receiver, "nightly-backup").await;
    assert!(took < WITHIN, "{took:?}");
}

#[tokio::test]
async fn the_listener_reconnects_after_its_connection_is_cut_and_wakes_again() {
    let (a, b, receiver) = two_nodes().await;
    let first = listener_pid(&b, None).await;
    let killed: bool = a
        .db()
        .await
        .query_one("SELECT pg_terminate_backend($1)", &[&first])
        .await
        .unwrap()
        .get(0);
    assert!(killed);
    // A new session, not the one cut.
    listener_pid(&b, Some(first)).await;
    written_on_a_delivered_by_b(&a, &receiver, "after-the-cut").await;
}
