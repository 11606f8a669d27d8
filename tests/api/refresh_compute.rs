//! Compute: only touched buckets, backfill after a gap, atomic per metric, bad
//! files named; benchmarks; the cockpit API.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::Duration as Span;
use heartbeat::jobs::{JobBody, JobContext, JobError, JobKind, Scope};
use heartbeat::refresh::RecomputeBody;

use crate::helpers::{error_code, spawn_app_with};
use crate::refresh_support::*;

#[tokio::test]
async fn compute_rewrites_only_the_buckets_new_events_touched() {
    let dir = definitions(&[("orders", &hourly_counter("order", "counter"))]);
    let config = config_with(&dir);
    let app = spawn_app_with(config.clone()).await;
    let clock = TestClock::new(at("2026-03-10T12:30:00Z"));
    let t = |h: u32| at(&format!("2026-03-10T{h:02}:15:00Z"));
    insert_events(
        &app,
        &[
            ("a", t(7), "order"),
            ("b", t(8), "order"),
            ("c", t(9), "order"),
            ("d", t(11), "order"),
        ],
    )
    .await;

    recompute(&app, &config, &clock, Scope::All).await.unwrap();
    let before = values(&app, "orders").await;
    let buckets: Vec<String> = before
        .iter()
        .map(|v| v.0.format("%H").to_string())
        .collect();
    assert_eq!(
        buckets,
        ["07", "08", "09", "10", "11"],
        "first event to last complete hour"
    );
    // The 12:00 bucket is not complete at 12:30, so it is not computed yet.

    tokio::time::sleep(Duration::from_millis(20)).await;
    insert_events(&app, &[("e", t(9), "order")]).await;
    recompute(&app, &config, &clock, Scope::All).await.unwrap();
    let after = values(&app, "orders").await;
    assert_eq!(after.len(), before.len());
    for (old, new) in before.iter().zip(&after) {
        if old.0 == at("2026-03-10T09:00:00Z") {
            assert_eq!(new.1, Some(2.0));
            assert!(new.2 > old.2, "the touched bucket was recomputed");
        } else {
            assert_eq!(new, old, "bucket {} untouched", old.0);
        }
    }
}

#[tokio::test]
async fn a_daemon_down_for_a_day_backfills_that_day_idempotently() {
    let dir = definitions(&[("orders", &hourly_counter("order", "counter"))]);
    let config = config_with(&dir);
    let app = spawn_app_with(config.clone()).await;
    let clock = TestClock::new(at("2026-03-10T12:30:00Z"));
    insert_events(&app, &[("a", at("2026-03-10T11:10:00Z"), "order")]).await;
    recompute(&app, &config, &clock, Scope::All).await.unwrap();
    assert_eq!(values(&app, "orders").await.len(), 1);

    // A day passes with the daemon down; one event arrived in the middle of it.
    insert_events(&app, &[("b", at("2026-03-11T01:40:00Z"), "order")]).await;
    clock.set(at("2026-03-11T12:30:00Z"));
    recompute(&app, &config, &clock, Scope::All).await.unwrap();
    let filled = values(&app, "orders").await;
    assert_eq!(
        filled.len(),
        25,
        "11:00 plus the 24 hours through 2026-03-11T11:00"
    );
    assert_eq!(filled.last().unwrap().0, at("2026-03-11T11:00:00Z"));
    let total: f64 = filled.iter().filter_map(|v| v.1).sum();
    assert_eq!(total, 2.0);

    // Running again at the same time writes nothing.
    recompute(&app, &config, &clock, Scope::All).await.unwrap();
    assert_eq!(values(&app, "orders").await, filled);
}

#[tokio::test]
async fn cancelling_mid_compute_leaves_each_metric_old_or_new_never_mixed() {
    let slow = hourly_counter("order", "counter").replace(
        "SELECT b.bucket,",
        "SELECT b.bucket + (0 * (SELECT count(*) FROM pg_sleep(30)))::int * interval '1 hour' AS bucket,",
    );
    let dir = definitions(&[
        ("a_fast", &hourly_counter("order", "counter")),
        ("b_slow", &hourly_counter("order", "counter")),
    ]);
    let config = config_with(&dir);
    let app = spawn_app_with(config.clone()).await;
    let clock = TestClock::new(at("2026-03-10T12:30:00Z"));
    let t = |h: u32| at(&format!("2026-03-10T{h:02}:15:00Z"));
    insert_events(&app, &[("a", t(8), "order"), ("b", t(10), "order")]).await;
    recompute(&app, &config, &clock, Scope::All).await.unwrap();
    let old_slow = values(&app, "b_slow").await;
    let old_fast = values(&app, "a_fast").await;

    // New events touch 08:00 and 11:00; b_slow now takes 30 s per run.
    write_metric(&dir, "b_slow", &slow);
    insert_events(&app, &[("c", t(8), "order"), ("d", t(11), "order")]).await;
    clock.set(at("2026-03-10T13:30:00Z"));
    let body = RecomputeBody::new(&config).with_clock(clock.clock());
    let ctx = JobContext::detached(JobKind::Recompute, Scope::All, app.state.pool.clone());
    let running = tokio::spawn({
        let ctx = ctx.clone();
        async move { body.run(ctx).await }
    });
    // Wait until b_slow's statement is running on the server, then cancel.
    let db = app.db().await;
    for _ in 0..200 {
        let sleeping: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if sleeping > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    ctx.cancel_token().cancel();
    ctx.cancel_statements().await;
    let outcome = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the cancel stops the statement")
        .unwrap();
    assert!(matches!(outcome, Err(JobError::Cancelled)), "{outcome:?}");

    // Metrics compute concurrently: a_fast may or may not have committed before the
    // cancel, but it is whole either way.
    let new_fast = values(&app, "a_fast").await;
    assert!(
        new_fast == old_fast || new_fast.len() == old_fast.len() + 1,
        "a_fast is its old values or its complete new ones: {old_fast:?} -> {new_fast:?}"
    );
    assert_eq!(
        values(&app, "b_slow").await,
        old_slow,
        "b_slow kept every old value"
    );
}

#[tokio::test]
async fn a_bad_metric_file_is_named_by_line_and_the_others_still_compute() {
    let broken_sql = "-- title: Broken\n-- kind: counter\n-- grain: hour\nSELECT bucket, value\nFROM no_such_table\n";
    let bad_header = "-- title: Bad\n-- kind: histogram\n-- grain: hour\nSELECT 1\n";
    let dir = definitions(&[
        ("good", &hourly_counter("order", "counter")),
        ("broken", broken_sql),
        ("bad_header", bad_header),
    ]);
    let config = config_with(&dir);
    let app = spawn_app_with(config.clone()).await;
    let clock = TestClock::new(at("2026-03-10T12:30:00Z"));
    insert_events(&app, &[("a", at("2026-03-10T11:10:00Z"), "order")]).await;

    let err = recompute(&app, &config, &clock, Scope::All)
        .await
        .unwrap_err();
    let JobError::Failed(message) = err else {
        panic!("expected failure, got {err:?}");
    };
    assert!(message.contains("bad_header.sql:2"), "{message}");
    assert!(message.contains("broken.sql:5"), "{message}");
    assert!(message.contains("no_such_table"), "{message}");
    assert_eq!(
        values(&app, "good").await.len(),
        1,
        "the good metric computed"
    );
}

#[tokio::test]
async fn the_scope_limits_compute_and_removed_files_are_retired_with_history_kept() {
    let dir = definitions(&[
        ("orders", &hourly_counter("order", "counter")),
        ("visits", &hourly_counter("visit", "counter")),
    ]);
    let config = config_with(&dir);
    let app = spawn_app_with(config.clone()).await;
    let clock = TestClock::new(at("2026-03-10T12:30:00Z"));
    insert_events(&app, &[("a", at("2026-03-10T11:10:00Z"), "order")]).await;

    let only: BTreeSet<String> = ["visits".to_string()].into();
    recompute(&app, &config, &clock, Scope::Metrics(only))
        .await
        .unwrap();
    assert_eq!(values(&app, "orders").await.len(), 0, "out of scope");
    assert_eq!(values(&app, "visits").await.len(), 1);

    std::fs::remove_file(dir.path().join("metrics/visits.sql")).unwrap();
    let result = recompute(&app, &config, &clock, Scope::All).await.unwrap();
    assert_eq!(result["retired"], serde_json::json!(["visits"]));
    let (_, list) = app.get_json("/api/metrics").await;
    let ids: Vec<&str> = list["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["orders"]);
    let (status, series) = app
        .get_json("/api/metrics/visits/values?from=2026-03-10T00:00:00Z&to=2026-03-11T00:00:00Z")
        .await;
    assert_eq!(status, 200, "{series}");
    assert_eq!(
        series["values"].as_array().unwrap().len(),
        1,
        "history kept"
    );
}

async fn seed_rolling_stat(app: &crate::helpers::TestApp, id: &str, points: &[(i64, f64)]) {
    let db = app.db().await;
    db.execute(
        "INSERT INTO heartbeat.metric_registry (metric_id, title, kind, grain, definition_hash)
         VALUES ($1, 'Seeded', 'rolling_stat', 'hour', 'x')",
        &[&id],
    )
    .await
    .unwrap();
    let now = at("2026-03-10T12:00:00Z");
    for (hours_ago, v) in points {
        db.execute(
            "INSERT INTO heartbeat.metric_value (metric_id, bucket, value) VALUES ($1, $2, $3)",
            &[&id, &(now - Span::hours(*hours_ago)), v],
        )
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn benchmarks_match_a_hand_computation_and_drive_z_and_band() {
    let dir = definitions(&[]);
    let mut config = config_with(&dir);
    config.refresh.benchmark_window_days = 2;
    config.refresh.benchmark_min_points = 4;
    let app = spawn_app_with(config.clone()).await;
    let clock = TestClock::new(at("2026-03-10T12:30:00Z"));
    let window: Vec<(i64, f64)> = vec![
        (1, 10.0),
        (2, 12.0),
        (3, 9.0),
        (4, 11.0),
        (5, 13.0),
        (6, 8.0),
    ];
    let mut seeded = window.clone();
    seeded.push((24 * 3, 1000.0)); // outside the two-day window
    seed_rolling_stat(&app, "steady", &seeded).await;
    seed_rolling_stat(&app, "sparse", &[(1, 5.0), (2, 6.0)]).await;
    seed_rolling_stat(&app, "flat", &[(1, 3.0), (2, 3.0), (3, 3.0), (4, 3.0)]).await;

    benchmarks(&app, &config, &clock).await.unwrap();

    let xs: Vec<f64> = window.iter().map(|p| p.1).collect();
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let (_, list) = app.get_json("/api/metrics").await;
    let by_id = |id: &str| {
        list["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()
            .clone()
    };
    let steady = by_id("steady");
    assert!(
        (steady["mean"].as_f64().unwrap() - mean).abs() < 1e-9,
        "{steady}"
    );
    assert!(
        (steady["stddev"].as_f64().unwrap() - sd).abs() < 1e-9,
        "{steady}"
    );
    let z = (10.0 - mean) / sd; // the latest bucket holds 10
    assert!((steady["z"].as_f64().unwrap() - z).abs() < 1e-9);
    assert_eq!(steady["band"], "normal");
    assert_eq!(steady["latest_value"], 10.0);

    let sparse = by_id("sparse");
    assert!(
        sparse["mean"].is_null() && sparse["z"].is_null() && sparse["band"].is_null(),
        "{sparse}"
    );
    let flat = by_id("flat");
    assert_eq!(flat["stddev"], 0.0);
    assert!(
        flat["z"].is_null() && flat["band"].is_null(),
        "σ = 0: {flat}"
    );
}

#[tokio::test]
async fn the_series_endpoint_bounds_its_range_and_knows_its_metrics() {
    let dir = definitions(&[("orders", &hourly_counter("order", "counter"))]);
    let config = config_with(&dir);
    let app = spawn_app_with(config.clone()).await;
    let clock = TestClock::new(at("2026-03-10T12:30:00Z"));
    insert_events(&app, &[("a", at("2026-03-10T09:10:00Z"), "order")]).await;
    recompute(&app, &config, &clock, Scope::All).await.unwrap();

    let (status, body) = app
        .get_json("/api/metrics/orders/values?from=2026-03-10T10:00:00Z&to=2026-03-10T12:00:00Z")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["values"],
        serde_json::json!([
            {"bucket": "2026-03-10T10:00:00Z", "value": 0.0},
            {"bucket": "2026-03-10T11:00:00Z", "value": 0.0},
        ])
    );
    let (status, body) = app.get_json("/api/metrics/nope/values").await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    let (status, body) = app.get_json("/api/metrics/NOT-an-id/values").await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    let (status, body) = app
        .get_json("/api/metrics/orders/values?from=2026-03-10T12:00:00Z&to=2026-03-10T10:00:00Z")
        .await;
    assert_eq!((status, error_code(&body)), (422, "invalid_range"));
    let (status, body) = app
        .get_json("/api/metrics/orders/values?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z")
        .await;
    assert_eq!((status, error_code(&body)), (422, "range_too_large"));
    let (status, body) = app
        .get_json("/api/metrics/orders/values?from=yesterday")
        .await;
    assert_eq!((status, error_code(&body)), (422, "invalid_query"));
}
