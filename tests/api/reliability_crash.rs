//! SIGKILL mid-recompute, 20 times at random points: every metric keeps its last
//! committed values or its complete new ones (checked against counts computed in
//! SQL), no lane stays wedged, and the next request after a restart completes.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::process::Child;

use crate::helpers::{fresh_database, spawn_daemon};

const METRICS: usize = 4;
const KILLS: usize = 20;

/// An hourly count of `tick` events that sleeps a little per run, so a recompute
/// of all metrics lasts long enough to be killed in the middle.
fn metric(i: usize) -> String {
    format!(
        "-- title: Ticks {i}\n-- kind: counter\n-- grain: hour\n\
SELECT b.bucket, coalesce(c.n, 0)::float8 AS value
FROM generate_series($1, $2 - interval '1 hour', interval '1 hour') AS b(bucket)
CROSS JOIN LATERAL (SELECT pg_sleep(0.12)) AS s
LEFT JOIN (
    SELECT date_trunc('hour', occurred_at) AS bucket, count(*) AS n
    FROM heartbeat.event
    WHERE name = 'tick' AND occurred_at >= $1 AND occurred_at < $2
    GROUP BY 1
) c USING (bucket);
"
    )
}

struct Daemon {
    child: Child,
    url: String,
}

async fn start(database_url: &str, definitions: &std::path::Path, log: &std::path::Path) -> Daemon {
    let (child, url) = spawn_daemon(database_url, definitions, None, log).await;
    Daemon { child, url }
}

/// A metric's stored `(bucket, value)` rows.
type Stored = Vec<(chrono::DateTime<chrono::Utc>, Option<f64>)>;

async fn stored(db: &tokio_postgres::Client, id: &str) -> Stored {
    db.query(
        "SELECT bucket, value FROM heartbeat.metric_value WHERE metric_id = $1 ORDER BY bucket",
        &[&id],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Whether a metric holds the complete state for the current events: every stored
/// bucket equals the count computed here in SQL, and every complete hour that has
/// events has a row.
const COMPLETE: &str = "
SELECT
  (SELECT count(*) FROM heartbeat.metric_value v
    LEFT JOIN (SELECT date_trunc('hour', occurred_at) AS b, count(*) AS n
               FROM heartbeat.event WHERE name = 'tick' GROUP BY 1) c ON c.b = v.bucket
    WHERE v.metric_id = $1 AND v.value IS DISTINCT FROM coalesce(c.n, 0)::float8)
  +
  (SELECT count(*) FROM (SELECT DISTINCT date_trunc('hour', occurred_at) AS b
                         FROM heartbeat.event
                         WHERE name = 'tick' AND occurred_at < date_trunc('hour', now())) e
    WHERE NOT EXISTS (SELECT 1 FROM heartbeat.metric_value v
                      WHERE v.metric_id = $1 AND v.bucket = e.b))";

async fn is_complete(db: &tokio_postgres::Client, id: &str) -> bool {
    let wrong: i64 = db.query_one(COMPLETE, &[&id]).await.unwrap().get(0);
    wrong == 0
}

/// Adds `n` tick events in complete past hours as one ingest batch.
async fn add_events(db: &tokio_postgres::Client, first: i64, n: i64) {
    let batch: i64 = db
        .query_one("SELECT nextval('heartbeat.ingest_batch_seq')", &[])
        .await
        .unwrap()
        .get(0);
    db.execute(
        "INSERT INTO heartbeat.event (source, event_id, occurred_at, client_id, name, value, batch_id)
         SELECT 'test', 'e' || i, date_trunc('hour', now()) - interval '1 hour'
                                  - ((i * 37) % 2880) * interval '1 minute', 'c1', 'tick', 1, $3
         FROM generate_series($1::bigint, $1::bigint + $2::bigint - 1) AS i",
        &[&first, &n, &batch],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sigkills_mid_recompute_leave_every_metric_old_or_complete_and_the_next_request_completes(
) {
    let started = Instant::now();
    let database_url = fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("metrics")).unwrap();
    for i in 0..METRICS {
        std::fs::write(dir.path().join(format!("metrics/m{i}.sql")), metric(i)).unwrap();
    }
    let log = dir.path().join("daemon.log");
    let db = heartbeat::db::connect_direct(&database_url).await.unwrap();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let ids: Vec<String> = (0..METRICS).map(|i| format!("m{i}")).collect();

    // Migrations run on first start.
    let mut daemon = start(&database_url, dir.path(), &log).await;
    add_events(&db, 0, 200).await;
    let mut previous: Vec<Stored> = vec![Vec::new(); METRICS];
    let mut next_event = 200;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut kills_mid_job = 0;

    for round in 0..KILLS {
        let r = client
            .post(format!("{}/api/metrics/recompute", daemon.url))
            .json(&json!({"metric_ids": "all"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "round {round}");
        let job: Value = r.json().await.unwrap();
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let job_url = format!(
            "{}/api/jobs/{}",
            daemon.url,
            job["job_id"].as_str().unwrap()
        );
        let state = |client: reqwest::Client, url: String| async move {
            match client.get(url).send().await {
                Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null)["state"].clone(),
                Err(_) => Value::Null,
            }
        };
        // Even rounds kill as soon as the job is seen running, so some kills land
        // mid-job however fast this machine computes; odd rounds kill after a
        // random wait, anywhere from before the job starts to after it ends.
        let wait_ms = if round % 2 == 0 {
            let watching = Instant::now();
            while watching.elapsed() < Duration::from_secs(5) {
                let s = state(client.clone(), job_url.clone()).await;
                if s == "running" || s == "succeeded" || s == "failed" {
                    break;
                }
            }
            watching.elapsed().as_millis() as u64
        } else {
            let wait_ms = (seed >> 33) % 700;
            tokio::time::sleep(Duration::from_millis(wait_ms)).await;
            wait_ms
        };
        if state(client.clone(), job_url).await == "running" {
            kills_mid_job += 1;
        }
        daemon.child.start_kill().unwrap();
        daemon.child.wait().await.unwrap();

        for (i, id) in ids.iter().enumerate() {
            let now = stored(&db, id).await;
            let complete = is_complete(&db, id).await;
            assert!(
                now == previous[i] || complete,
                "round {round} (kill after {wait_ms} ms): {id} is neither its last state ({} rows) nor complete ({} rows)",
                previous[i].len(),
                now.len()
            );
            previous[i] = now;
        }
        // New events between crashes, so "old" and "complete" differ next round.
        add_events(&db, next_event, 7).await;
        next_event += 7;
        daemon = start(&database_url, dir.path(), &log).await;
    }
    eprintln!("{kills_mid_job} of {KILLS} kills landed mid-job");
    assert!(kills_mid_job > 0, "at least one kill landed mid-job");

    // After the last restart, the next request completes and brings every metric up.
    let r = client
        .post(format!("{}/api/metrics/recompute", daemon.url))
        .json(&json!({"metric_ids": "all"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job: Value = r.json().await.unwrap();
    let id = job["job_id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let finished = loop {
        let v: Value = client
            .get(format!("{}/api/jobs/{id}", daemon.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["finished_at"].is_string() {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the job after the crashes is wedged: {v}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(finished["state"], "succeeded", "{finished}");
    for id in &ids {
        assert!(
            is_complete(&db, id).await,
            "{id} is complete after recovery"
        );
    }
    daemon.child.start_kill().unwrap();
    let _ = daemon.child.wait().await;
    eprintln!(
        "crash test: {KILLS} kills, {kills_mid_job} mid-job, {:?}",
        started.elapsed()
    );
}
