//! Ingest: sources land events idempotently and resume from their cursors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use heartbeat::config::Config;
use heartbeat::jobs::{JobError, Scope};

use crate::helpers::{fresh_database, spawn_app_with};
use crate::refresh_support::*;

fn with_sources(dir: &tempfile::TempDir, toml: &str) -> Config {
    let parsed = Config::from_toml(toml).expect("sources parse");
    parsed.validate().expect("sources are valid");
    Config {
        sources: parsed.sources,
        ..config_with(dir)
    }
}

async fn event_count(app: &crate::helpers::TestApp, source: &str) -> i64 {
    app.db()
        .await
        .query_one(
            "SELECT count(*) FROM heartbeat.event WHERE source = $1",
            &[&source],
        )
        .await
        .unwrap()
        .get(0)
}

async fn cursor(app: &crate::helpers::TestApp, source: &str) -> Option<String> {
    app.db()
        .await
        .query_opt(
            "SELECT cursor FROM heartbeat.source_cursor WHERE source = $1",
            &[&source],
        )
        .await
        .unwrap()
        .and_then(|r| r.get(0))
}

#[tokio::test]
async fn ingesting_the_same_events_twice_changes_nothing() {
    let dir = definitions(&[]);
    let config = with_sources(
        &dir,
        "[[sources]]\nname = \"demo\"\nkind = \"demo\"\ndays = 2\nclients = 10\n",
    );
    let app = spawn_app_with(config.clone()).await;
    let clock = TestClock::new(at("2026-03-10T12:30:00Z"));

    let first = recompute(&app, &config, &clock, Scope::All).await.unwrap();
    let n = event_count(&app, "demo").await;
    assert!(n > 1000, "two days of demo traffic, got {n}");
    assert_eq!(first["rows_inserted"], n);
    let fingerprint = |app: &crate::helpers::TestApp| {
        let url = app.database_url.clone();
        async move {
            let db = heartbeat::db::connect_direct(&url).await.unwrap();
            let row = db
                .query_one(
                    "SELECT count(*), sum(value), max(batch_id), md5(string_agg(event_id || occurred_at::text || client_id, ',' ORDER BY event_id))
                     FROM heartbeat.event",
                    &[],
                )
                .await
                .unwrap();
            (
                row.get::<_, i64>(0),
                row.get::<_, f64>(1),
                row.get::<_, i64>(2),
                row.get::<_, String>(3),
            )
        }
    };
    let before = fingerprint(&app).await;

    // Forget the cursor: the source delivers the same two days again.
    app.db()
        .await
        .execute("DELETE FROM heartbeat.source_cursor", &[])
        .await
        .unwrap();
    let again = recompute(&app, &config, &clock, Scope::All).await.unwrap();
    assert_eq!(again["rows_inserted"], 0);
    assert_eq!(fingerprint(&app).await, before, "re-ingest changed nothing");

    // An hour later only the new hour arrives.
    clock.set(at("2026-03-10T13:30:00Z"));
    let next = recompute(&app, &config, &clock, Scope::All).await.unwrap();
    let added = next["rows_inserted"].as_i64().unwrap();
    assert!(added > 0 && added < 1000, "one hour of events, got {added}");
    assert_eq!(
        cursor(&app, "demo").await.as_deref(),
        Some("2026-03-10T13:00:00+00:00")
    );
}

/// A tiny event API: ids 1..=25, `since` = last id seen, one failure on the
/// second page before it succeeds, and that page in NDJSON.
/// `(since, status)` of every request the API answered.
type RequestLog = Arc<Mutex<Vec<(Option<String>, u16)>>>;

#[derive(Clone, Default)]
struct EventApi {
    requests: RequestLog,
    failures_left: Arc<AtomicUsize>,
}

async fn serve_events(
    State(api): State<EventApi>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let since: u32 = q.get("since").map_or(0, |s| s.parse().unwrap());
    let limit: u32 = q["limit"].parse().unwrap();
    if since == 10 && api.failures_left.load(Ordering::SeqCst) > 0 {
        api.failures_left.fetch_sub(1, Ordering::SeqCst);
        api.requests
            .lock()
            .unwrap()
            .push((q.get("since").cloned(), 503));
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    api.requests
        .lock()
        .unwrap()
        .push((q.get("since").cloned(), 200));
    let events: Vec<serde_json::Value> = (since + 1..=25.min(since + limit))
        .map(|i| {
            serde_json::json!({
                "id": i,
                "occurred_at": format!("2026-03-10T10:{:02}:00Z", i),
                "client_id": format!("c{}", i % 3),
                "name": "order",
                "value": f64::from(i),
            })
        })
        .collect();
    if since == 10 {
        let body: String = events.iter().map(|e| format!("{e}\n")).collect();
        return ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response();
    }
    axum::Json(events).into_response()
}

#[tokio::test]
async fn an_http_json_source_pages_resumes_from_its_cursor_and_retries_a_failing_page() {
    let api = EventApi::default();
    api.failures_left.store(1, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new()
        .route("/events", axum::routing::get(serve_events))
        .with_state(api.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let dir = definitions(&[]);
    let config = with_sources(
        &dir,
        &format!(
            "[[sources]]\nname = \"shop\"\nkind = \"http_json\"\nurl = \"http://{addr}/events\"\n\
             page_size = 10\nretries = 2\nretry_backoff_ms = 10\n"
        ),
    );
    let app = spawn_app_with(config.clone()).await;
    let clock = TestClock::new(at("2026-03-10T12:30:00Z"));

    let result = recompute(&app, &config, &clock, Scope::All).await.unwrap();
    assert_eq!(result["rows_inserted"], 25);
    assert_eq!(event_count(&app, "shop").await, 25);
    assert_eq!(cursor(&app, "shop").await.as_deref(), Some("25"));
    let seen = api.requests.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            (None, 200),
            (Some("10".into()), 503),
            (Some("10".into()), 200),
            (Some("20".into()), 200),
        ],
        "three pages, the second retried once"
    );
    let total: f64 = app
        .db()
        .await
        .query_one("SELECT sum(value) FROM heartbeat.event", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, (1..=25).sum::<i32>() as f64);

    // The next run starts where the last one stopped and finds nothing new.
    api.requests.lock().unwrap().clear();
    let again = recompute(&app, &config, &clock, Scope::All).await.unwrap();
    assert_eq!(again["rows_inserted"], 0);
    assert_eq!(
        api.requests.lock().unwrap().clone(),
        vec![(Some("25".into()), 200)]
    );
}

#[tokio::test]
async fn a_postgres_source_reads_past_its_watermark() {
    let other = fresh_database().await;
    let remote = heartbeat::db::connect_direct(&other).await.unwrap();
    remote
        .batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, at timestamptz NOT NULL, customer text, amount float8);
             INSERT INTO orders SELECT i, '2026-03-10T08:00:00Z'::timestamptz + i * interval '1 minute', 'c' || (i % 4), i
             FROM generate_series(1, 30) i;",
        )
        .await
        .unwrap();
    let dir = definitions(&[]);
    let config = with_sources(
        &dir,
        &format!(
            "[[sources]]\nname = \"erp\"\nkind = \"postgres\"\ndsn = \"{other}\"\nbatch_size = 7\n\
             query = \"SELECT id::text AS event_id, at AS occurred_at, customer AS client_id, 'order' AS name, amount AS value FROM orders WHERE at >= $1 ORDER BY at\"\n"
        ),
    );
    let app = spawn_app_with(config.clone()).await;
    let clock = TestClock::new(at("2026-03-10T12:30:00Z"));

    recompute(&app, &config, &clock, Scope::All).await.unwrap();
    assert_eq!(event_count(&app, "erp").await, 30);
    assert_eq!(
        cursor(&app, "erp").await.as_deref(),
        Some("2026-03-10T08:30:00+00:00")
    );

    remote
        .batch_execute(
            "INSERT INTO orders SELECT i, '2026-03-10T08:00:00Z'::timestamptz + i * interval '1 minute', 'c1', i
             FROM generate_series(31, 40) i",
        )
        .await
        .unwrap();
    let again = recompute(&app, &config, &clock, Scope::All).await.unwrap();
    // Only the ten new rows are new; the boundary row is read again harmlessly.
    assert_eq!(again["rows_inserted"], 10);
    assert_eq!(event_count(&app, "erp").await, 40);
}

#[tokio::test]
async fn a_failing_source_is_named_and_the_others_still_ingest() {
    let dir = definitions(&[]);
    let config = with_sources(
        &dir,
        "[[sources]]\nname = \"broken\"\nkind = \"http_json\"\nurl = \"http://127.0.0.1:1/events\"\n\
         retries = 1\nretry_backoff_ms = 10\n\
         [[sources]]\nname = \"demo\"\nkind = \"demo\"\ndays = 1\n",
    );
    let app = spawn_app_with(config.clone()).await;
    let clock = TestClock::new(at("2026-03-10T12:30:00Z"));

    let err = recompute(&app, &config, &clock, Scope::All)
        .await
        .unwrap_err();
    let JobError::Failed(message) = err else {
        panic!("expected a failed job, got {err:?}");
    };
    assert!(message.contains("sources failed: broken ("), "{message}");
    assert!(!message.contains("demo"), "{message}");
    assert!(event_count(&app, "demo").await > 0, "demo still ingested");
    let last_error: Option<String> = app
        .db()
        .await
        .query_one(
            "SELECT last_error FROM heartbeat.source_cursor WHERE source = 'broken'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        last_error.unwrap().contains("gave up after 2 attempts"),
        "the failure is kept with the source"
    );
}
