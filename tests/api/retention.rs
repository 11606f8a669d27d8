//! Retention: the `maintenance` job deletes rows past `[retention]` and keeps
//! the rest, under a clock the test sets.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use heartbeat::jobs::{JobBody, JobKind};
use heartbeat::retention::{MaintenanceBody, Policy};
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with_bodies, test_config, TestApp};

fn now() -> DateTime<Utc> {
    "2027-03-01T12:00:00Z".parse().unwrap()
}

fn days_ago(n: i64) -> DateTime<Utc> {
    now() - chrono::Duration::days(n)
}

async fn app_at_fixed_time() -> TestApp {
    let mut config = test_config();
    config.retention.flips_days = 10;
    config.retention.flips_keep_per_heartbeat = 1;
    config.retention.alerts_days = 5;
    config.retention.segment_snapshots_days = 20;
    config.retention.audit_snapshots_days = 7;
    config.retention.silences_days = 3;
    // Small batches, so the old rows take several statements.
    config.retention.batch_rows = 2;
    config.refresh.history_days = 30;
    config.refresh.benchmark_window_days = 5;
    let body: Arc<dyn JobBody> =
        Arc::new(MaintenanceBody::new(Policy::from_config(&config)).with_clock(Arc::new(now)));
    spawn_app_with_bodies(config, vec![(JobKind::Maintenance, body)]).await
}

async fn wait_finished(app: &TestApp, id: &str) -> Value {
    for _ in 0..400 {
        let (status, job) = app.get_json(&format!("/api/jobs/{id}")).await;
        assert_eq!(status, 200, "{job}");
        if job["state"] == "succeeded" || job["state"] == "failed" {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {id} never finished");
}

async fn count(db: &tokio_postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn maintenance_deletes_rows_past_retention_and_keeps_the_rest() {
    let app = app_at_fixed_time().await;
    let (status, hb) = app
        .post_json(
            "/api/heartbeats",
            &json!({"name": "nightly", "period_seconds": 3600, "grace_seconds": 60}),
        )
        .await;
    assert_eq!(status, 201, "{hb}");
    let hb_id: uuid::Uuid = hb["id"].as_str().unwrap().parse().unwrap();
    let db = app.db().await;
    let webhook = uuid::Uuid::new_v4();
    db.execute(
        "INSERT INTO heartbeat.channel (channel_id, project_id, name, kind, config)
         SELECT $1, project_id, 'webhook', 'webhook', '{\"url\": \"http://127.0.0.1:9/\"}'
         FROM heartbeat.heartbeat WHERE heartbeat_id = $2",
        &[&webhook, &hb_id],
    )
    .await
    .unwrap();
    // Flips: 30, 20 and 15 days old (the 15-day one has a pending alert), 2 days old.
    let mut flips = Vec::new();
    for age in [30, 20, 15, 2] {
        let at = days_ago(age);
        let id: i64 = db
            .query_one(
                "INSERT INTO heartbeat.flip (heartbeat_id, at, from_status, to_status, detected_at)
                 VALUES ($1, $2, 'up', 'down', $2) RETURNING flip_id",
                &[&hb_id, &at],
            )
            .await
            .unwrap()
            .get(0);
        flips.push((age, id));
    }
    // Alerts: delivered 8 days ago (goes), delivered 1 day ago (stays, keeps
    // nothing else alive), pending on the 15-day flip (stays, and keeps its flip).
    let alert = "INSERT INTO heartbeat.alert (flip_id, channel_id, payload, created_at,
                     next_attempt_at, state, delivered_at, event)
                 VALUES ($1, $2, '{}', $3, $3, $4, $5, 'down')";
    let delivered = "delivered";
    let pending = "pending";
    db.execute(
        alert,
        &[
            &flips[0].1,
            &webhook,
            &days_ago(8),
            &delivered,
            &Some(days_ago(8)),
        ],
    )
    .await
    .unwrap();
    db.execute(
        alert,
        &[
            &flips[3].1,
            &webhook,
            &days_ago(1),
            &delivered,
            &Some(days_ago(1)),
        ],
    )
    .await
    .unwrap();
    db.execute(
        alert,
        &[
            &flips[2].1,
            &webhook,
            &days_ago(15),
            &pending,
            &None::<DateTime<Utc>>,
        ],
    )
    .await
    .unwrap();
    // Tick claims: 3 days old (past the 26 h catch-up window) and 1 hour old.
    for (i, at) in [days_ago(3), now() - chrono::Duration::hours(1)]
        .iter()
        .enumerate()
    {
        db.execute(
            "INSERT INTO heartbeat.tick_claim (lane, scheduled_at, node) VALUES ($1, $2, 'n')",
            &[&format!("lane{i}"), at],
        )
        .await
        .unwrap();
    }
    // Events: five older than 30 + 5 days (three batches of two), one inside.
    for (i, age) in [40, 39, 38, 37, 36, 34].iter().enumerate() {
        db.execute(
            "INSERT INTO heartbeat.event (source, event_id, occurred_at, client_id, name, batch_id)
             VALUES ('t', $1, $2, 'c', 'x', 1)",
            &[&format!("e{i}"), &days_ago(*age)],
        )
        .await
        .unwrap();
    }
    // Segment snapshots: 25 days old (goes) and 3 days old.
    for age in [25, 3] {
        db.execute(
            "INSERT INTO heartbeat.client_segment_snapshot
                 (snapshot_date, client_id, tier, score, rank, window_days, computed_at)
             VALUES ($1::timestamptz::date, 'c', 'top', 1, 1, 30, $1)",
            &[&days_ago(age)],
        )
        .await
        .unwrap();
    }
    // Audit snapshots: one window last computed 9 days ago (goes), one today.
    db.execute(
        "INSERT INTO heartbeat.audit_cut_registry (cut_id, title, windows, query, content_hash)
         VALUES ('cut', 'Cut', ARRAY['24h','7d'], 'SELECT 1', 'h')",
        &[],
    )
    .await
    .unwrap();
    for (label, age) in [("24h", 9), ("7d", 0)] {
        db.execute(
            "INSERT INTO heartbeat.audit_cut_snapshot (cut_id, window_label, window_start,
                 window_end, columns, payload, row_count, content_hash, duration_ms, computed_at)
             VALUES ('cut', $1, $2, $2, ARRAY['a'], '[]', 0, 'h', 1, $2)",
            &[&label, &days_ago(age)],
        )
        .await
        .unwrap();
    }
    // Silences: one-off ones that ended 4 and 1 days ago, and a recurring one
    // made long ago (it never ends).
    for (until, cron) in [
        (Some(days_ago(4)), None),
        (Some(days_ago(1)), None),
        (None, Some("0 2 * * 0")),
    ] {
        db.execute(
            "INSERT INTO heartbeat.silence (silence_id, project_id, heartbeat_id, until, cron,
                 duration_seconds, tz, created_at)
             SELECT gen_random_uuid(), project_id, heartbeat_id, $2, $3::text,
                    CASE WHEN $3::text IS NOT NULL THEN 7200 END,
                    CASE WHEN $3::text IS NOT NULL THEN 'UTC' END, $4
             FROM heartbeat.heartbeat WHERE heartbeat_id = $1",
            &[&hb_id, &until, &cron, &days_ago(60)],
        )
        .await
        .unwrap();
    }

    let (status, submitted) = app.post_json("/api/jobs/maintenance", &json!({})).await;
    assert_eq!(status, 202, "{submitted}");
    let job = wait_finished(&app, submitted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        job["result"]["deleted"],
        json!({"alerts": 1, "flips": 2, "tick_claims": 1, "events": 5,
               "segment_snapshots": 1, "audit_snapshots": 1, "silences": 1}),
        "{job}"
    );
    let phases: Vec<&str> = job["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        [
            "alerts",
            "flips",
            "tick_claims",
            "events",
            "segment_snapshots",
            "audit_snapshots",
            "silences"
        ]
    );
    assert_eq!(job["phases"][3]["detail"]["deleted"], 5);

    // What stays: the newest flip, and the old one whose alert is pending.
    let kept: Vec<i64> = db
        .query("SELECT flip_id FROM heartbeat.flip ORDER BY flip_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kept, [flips[2].1, flips[3].1]);
    // The silence that ended a day ago and the recurring one stay.
    let silences: Vec<(Option<DateTime<Utc>>, Option<String>)> = db
        .query(
            "SELECT until, cron FROM heartbeat.silence ORDER BY cron NULLS FIRST",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        silences,
        [(Some(days_ago(1)), None), (None, Some("0 2 * * 0".into()))]
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM heartbeat.alert WHERE state = 'pending'"
        )
        .await,
        1
    );
    assert_eq!(count(&db, "SELECT count(*) FROM heartbeat.alert").await, 2);
    assert_eq!(
        count(&db, "SELECT count(*) FROM heartbeat.tick_claim").await,
        1
    );
    assert_eq!(count(&db, "SELECT count(*) FROM heartbeat.event").await, 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM heartbeat.client_segment_snapshot"
        )
        .await,
        1
    );
    assert_eq!(
        db.query_one("SELECT window_label FROM heartbeat.audit_cut_snapshot", &[])
            .await
            .unwrap()
            .get::<_, String>(0),
        "7d"
    );

    // A second run finds nothing more to delete.
    let (_, again) = app.post_json("/api/jobs/maintenance", &json!({})).await;
    let job = wait_finished(&app, again["job_id"].as_str().unwrap()).await;
    assert!(
        job["result"]["deleted"]
            .as_object()
            .unwrap()
            .values()
            .all(|n| n == 0),
        "{job}"
    );
}

#[tokio::test]
async fn the_maintenance_entry_is_in_the_default_cron_table_with_its_own_heartbeat() {
    let app = spawn_app_with_bodies(test_config(), vec![]).await;
    let (status, schedule) = app.get_json("/api/schedule").await;
    assert_eq!(status, 200, "{schedule}");
    let text = schedule.to_string();
    assert!(text.contains("\"maintenance\""), "{schedule}");
    assert!(text.contains("10 3 * * *"), "{schedule}");
    // Run now, as `heartbeat refresh maintenance` does; its heartbeat follows.
    let (status, submitted) = app.post_json("/api/jobs/maintenance", &json!({})).await;
    assert_eq!(status, 202, "{submitted}");
    let job = wait_finished(&app, submitted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    for _ in 0..100 {
        let (_, list) = app.get_json("/api/heartbeats").await;
        let hb = list["heartbeats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == "job:maintenance")
            .cloned();
        if let Some(hb) = hb.filter(|h| h["status"] == "up") {
            assert_eq!(hb["schedule"], "10 3 * * *", "{hb}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job:maintenance never came up after a successful run");
}
