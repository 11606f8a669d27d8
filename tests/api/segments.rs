//! Client segments: the daily tier snapshot job and its read API.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use heartbeat::segments::{ScoreKind, Thresholds};
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, spawn_app_with, test_config, TestApp};

/// The event table belongs to the ingest migration (0004, branch `refresh1`); until
/// that is merged here the tests create a copy of its shape. `IF NOT EXISTS` makes
/// this a no-op once the real table is there.
const EVENT_TABLE: &str = "
CREATE TABLE IF NOT EXISTS heartbeat.event (
    source      text NOT NULL,
    event_id    text NOT NULL,
    occurred_at timestamptz NOT NULL,
    client_id   text NOT NULL,
    name        text NOT NULL,
    value       double precision NOT NULL DEFAULT 1,
    batch_id    bigint NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_id)
)";

pub async fn ensure_event_table(db: &tokio_postgres::Client) {
    db.batch_execute(EVENT_TABLE)
        .await
        .expect("the event table exists");
}

/// Inserts `count` `order` events for `client`, `hours_ago` hours back, each of
/// `value`.
pub async fn insert_events(
    db: &tokio_postgres::Client,
    client: &str,
    count: i32,
    hours_ago: i32,
    value: f64,
) {
    insert_named_events(db, client, "order", count, hours_ago, value).await;
}

pub async fn insert_named_events(
    db: &tokio_postgres::Client,
    client: &str,
    name: &str,
    count: i32,
    hours_ago: i32,
    value: f64,
) {
    db.execute(
        "INSERT INTO heartbeat.event (source, event_id, occurred_at, client_id, name, value, batch_id)
         SELECT 'test', gen_random_uuid()::text, now() - make_interval(hours => $4), $1, $2, $5, 0
         FROM generate_series(1, $3)",
        &[&client, &name, &count, &hours_ago, &value],
    )
    .await
    .expect("insert events");
}

/// Submits a job of `kind` through the API and waits for it to finish.
pub async fn run_job(app: &TestApp, kind: &str) -> Value {
    let (status, body) = app
        .post_json(&format!("/api/jobs/{kind}"), &json!({"trigger": "user"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().unwrap().parse().unwrap();
    let job = app
        .state
        .jobs
        .wait_finished(id)
        .await
        .expect("the job is retained");
    serde_json::to_value(job).unwrap()
}

#[tokio::test]
async fn the_segments_job_gives_the_top_tenth_top_and_the_next_forty_percent_mid() {
    let app = spawn_app().await;
    let db = app.db().await;
    ensure_event_table(&db).await;
    // c01..c19 have 1..19 events this week; `old` was last seen 40 days ago.
    for i in 1..=19 {
        insert_events(&db, &format!("c{i:02}"), i, 24, 1.0).await;
    }
    insert_events(&db, "old", 50, 40 * 24, 1.0).await;

    let job = run_job(&app, "segments").await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["result"]["clients"], 20);

    let (status, day) = app.get_json("/api/segments").await;
    assert_eq!(status, 200, "{day}");
    assert_eq!(day["counts"], json!({"top": 2, "mid": 8, "micro": 10}));
    assert_eq!(day["total"], 20);
    assert_eq!(day["window_days"], 30);
    assert_eq!(day["clients"][0]["client_id"], "c19");
    assert_eq!(day["clients"][0]["tier"], "top");
    assert_eq!(day["clients"][0]["rank"], 1);
    assert_eq!(day["clients"][0]["score"], 19.0);
    assert_eq!(day["clients"][2]["client_id"], "c17");
    assert_eq!(day["clients"][2]["tier"], "mid");
    let today = day["date"].as_str().unwrap().to_string();

    // The inactive client is still listed, as micro, with score 0.
    let (_, micro) = app
        .get_json(&format!("/api/segments?date={today}&tier=micro&limit=100"))
        .await;
    let micro_ids: Vec<&str> = micro["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(micro_ids.len(), 10);
    assert!(micro_ids.contains(&"old"));

    let (_, page) = app.get_json("/api/segments?limit=5&offset=5").await;
    assert_eq!(page["clients"].as_array().unwrap().len(), 5);
    assert_eq!(page["clients"][0]["client_id"], "c14");

    let (status, history) = app.get_json("/api/segments/c19").await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(
        history["history"],
        json!([{"date": today, "tier": "top", "score": 19.0, "rank": 1, "window_days": 30}])
    );
}

#[tokio::test]
async fn absolute_thresholds_on_value_sums_set_tiers_by_minimum_score() {
    let mut config = test_config();
    config.segments.score = ScoreKind::ValueSum;
    config.segments.window_days = 7;
    config.segments.thresholds = Thresholds::Absolute {
        top: 100.0,
        mid: 10.0,
    };
    let app = spawn_app_with(config).await;
    let db = app.db().await;
    ensure_event_table(&db).await;
    insert_events(&db, "big", 2, 1, 60.0).await; // 120
    insert_events(&db, "edge", 1, 1, 100.0).await; // 100: top, inclusive
    insert_events(&db, "small", 1, 1, 10.0).await; // 10: mid, inclusive
    insert_events(&db, "tiny", 1, 1, 9.5).await; // micro
    insert_events(&db, "stale", 1, 10 * 24, 500.0).await; // outside the 7-day window

    let job = run_job(&app, "segments").await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let (_, day) = app.get_json("/api/segments").await;
    assert_eq!(day["counts"], json!({"top": 2, "mid": 1, "micro": 2}));
    assert_eq!(day["window_days"], 7);
    let tiers: Vec<(String, String)> = day["clients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["client_id"].as_str().unwrap().to_string(),
                c["tier"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        ("big", "top"),
        ("edge", "top"),
        ("small", "mid"),
        ("tiny", "micro"),
        ("stale", "micro"),
    ];
    let expect: Vec<(String, String)> = expect
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(tiers, expect);
}

/// What a reader saw: the total and the per-tier counts, plus which generation of
/// client ids its page held.
fn observed(day: &Value) -> (i64, Value, Vec<char>) {
    // A 404 (no rows for the day) shows as total 0, which matches neither set.
    let mut prefixes: Vec<char> = day["clients"]
        .as_array()
        .map_or(&[][..], |v| v.as_slice())
        .iter()
        .map(|c| c["client_id"].as_str().unwrap().chars().next().unwrap())
        .collect();
    prefixes.dedup();
    prefixes.sort();
    prefixes.dedup();
    (
        day["total"].as_i64().unwrap_or(0),
        day["counts"].clone(),
        prefixes,
    )
}

#[tokio::test]
async fn a_same_day_rerun_replaces_the_snapshot_so_readers_see_the_old_set_or_the_new_never_a_mix()
{
    let mut config = test_config();
    config.segments.score = ScoreKind::ValueSum;
    let app = spawn_app_with(config).await;
    let db = app.db().await;
    ensure_event_table(&db).await;
    let insert_generation = "
        INSERT INTO heartbeat.event (source, event_id, occurred_at, client_id, name, value, batch_id)
        SELECT 'test', $1::text || i, now() - interval '1 hour', $1::text || i, 'order', i, 0
        FROM generate_series(1, $2) AS i";
    // Old set: 3000 clients named a*; new set: 4000 clients named b*.
    db.execute(insert_generation, &[&"a", &3000_i32])
        .await
        .unwrap();
    let first = run_job(&app, "segments").await;
    assert_eq!(first["state"], "succeeded", "{first}");
    let (_, old_day) = app.get_json("/api/segments?limit=1000").await;
    let old = observed(&old_day);
    assert_eq!(old.0, 3000);
    assert_eq!(old.2, vec!['a']);

    db.execute("DELETE FROM heartbeat.event", &[])
        .await
        .unwrap();
    // Hold the rerun for a second between its DELETE and its INSERT, so readers
    // certainly run while the day is half rewritten inside the transaction.
    db.batch_execute(
        "CREATE FUNCTION heartbeat.test_pause() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$;
         CREATE TRIGGER test_pause BEFORE INSERT ON heartbeat.client_segment_snapshot
             FOR EACH STATEMENT EXECUTE FUNCTION heartbeat.test_pause();",
    )
    .await
    .unwrap();
    db.execute(insert_generation, &[&"b", &4000_i32])
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..3 {
        let stop = stop.clone();
        let client = app.client.clone();
        let url = app.url("/api/segments?limit=1000");
        readers.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let day: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
                seen.push(observed(&day));
            }
            seen
        }));
    }
    let second = run_job(&app, "segments").await;
    assert_eq!(second["state"], "succeeded", "{second}");
    stop.store(true, Ordering::Relaxed);
    let (_, new_day) = app.get_json("/api/segments?limit=1000").await;
    let new = observed(&new_day);
    assert_eq!(new.0, 4000);
    assert_eq!(new.1, json!({"top": 400, "mid": 1600, "micro": 2000}));
    assert_eq!(new.2, vec!['b']);

    let mut old_reads = 0;
    for reader in readers {
        for seen in reader.await.unwrap() {
            old_reads += usize::from(seen == old);
            assert!(
                seen == old || seen == new,
                "a reader saw a mix: total {}, counts {}, prefixes {:?}",
                seen.0,
                seen.1,
                seen.2
            );
        }
    }
    assert!(old_reads > 0, "no reader ran during the rerun");
    // Exactly one day's rows: the rerun replaced, it did not add.
    let rows: i64 = db
        .query_one(
            "SELECT count(*) FROM heartbeat.client_segment_snapshot",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 4000);
}

#[tokio::test]
async fn the_segments_api_explains_missing_snapshots_unknown_clients_and_bad_queries() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/api/segments").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "no_snapshot");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("segments job"));

    let (status, body) = app.get_json("/api/segments?date=2020-01-01").await;
    assert_eq!(status, 404);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("2020-01-01"));

    let (status, body) = app.get_json("/api/segments/nobody").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "unknown_client");

    for bad in [
        "/api/segments?date=yesterday",
        "/api/segments?tier=huge",
        "/api/segments?limit=0",
        "/api/segments?offset=-1",
        "/api/segments?colour=red",
    ] {
        let (status, body) = app.get_json(bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(error_code(&body), "invalid_query", "{bad}");
    }
}

#[tokio::test]
async fn a_client_history_lists_each_day_newest_first() {
    let app = spawn_app().await;
    let db = app.db().await;
    db.batch_execute(
        "INSERT INTO heartbeat.client_segment_snapshot
             (snapshot_date, client_id, tier, score, rank, window_days, computed_at)
         VALUES ('2026-01-01', 'acme', 'micro', 1, 9, 30, now()),
                ('2026-01-02', 'acme', 'mid', 5, 4, 30, now()),
                ('2026-01-03', 'acme', 'top', 9, 1, 30, now()),
                ('2026-01-03', 'other', 'mid', 5, 2, 30, now())",
    )
    .await
    .unwrap();
    let (status, body) = app.get_json("/api/segments/acme").await;
    assert_eq!(status, 200, "{body}");
    let days: Vec<(&str, &str)> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["date"].as_str().unwrap(), d["tier"].as_str().unwrap()))
        .collect();
    assert_eq!(
        days,
        [
            ("2026-01-03", "top"),
            ("2026-01-02", "mid"),
            ("2026-01-01", "micro")
        ]
    );
    let (_, limited) = app.get_json("/api/segments/acme?limit=1").await;
    assert_eq!(limited["history"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_snapshot_is_filed_under_the_day_of_the_configured_time_zone() {
    let mut config = test_config();
    config.segments.timezone = "Pacific/Kiritimati".into(); // UTC+14
    let app = spawn_app_with(config).await;
    let db = app.db().await;
    ensure_event_table(&db).await;
    insert_events(&db, "acme", 1, 1, 1.0).await;

    let job = run_job(&app, "segments").await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let expected = chrono::Utc::now()
        .with_timezone(&chrono_tz::Pacific::Kiritimati)
        .date_naive()
        .to_string();
    assert_eq!(job["result"]["date"], expected.as_str());
    let (_, day) = app.get_json("/api/segments").await;
    assert_eq!(day["date"], expected.as_str());
}
