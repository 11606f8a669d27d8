//! Shared pieces of the refresh tests: metric files in a temp directory, a clock
//! the test moves, events inserted as one ingest batch, and running a body.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use heartbeat::clock::SharedClock;
use heartbeat::config::Config;
use heartbeat::jobs::{JobBody, JobContext, JobError, JobKind, Scope};
use heartbeat::refresh::{BenchmarksBody, RecomputeBody};

use crate::helpers::{test_config, TestApp};

pub fn at(s: &str) -> DateTime<Utc> {
    s.parse().expect("an RFC 3339 time")
}

/// A clock the test sets.
#[derive(Clone)]
pub struct TestClock(Arc<Mutex<DateTime<Utc>>>);

impl TestClock {
    pub fn new(t: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(t)))
    }
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().unwrap() = t;
    }
    pub fn clock(&self) -> SharedClock {
        let inner = self.0.clone();
        Arc::new(move || *inner.lock().unwrap())
    }
}

/// A definitions directory holding `metrics/<id>.sql` for each pair.
pub fn definitions(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("metrics")).unwrap();
    for (id, text) in files {
        write_metric(&dir, id, text);
    }
    dir
}

pub fn write_metric(dir: &tempfile::TempDir, id: &str, text: &str) {
    std::fs::write(dir.path().join("metrics").join(format!("{id}.sql")), text).unwrap();
}

/// An hourly counter of events named `name`, one row per bucket (zeros included).
pub fn hourly_counter(name: &str, kind: &str) -> String {
    format!(
        "-- title: Count of {name}\n-- kind: {kind}\n-- grain: hour\n\
SELECT b.bucket, coalesce(c.n, 0)::float8 AS value
FROM generate_series($1, $2 - interval '1 hour', interval '1 hour') AS b(bucket)
LEFT JOIN (
    SELECT date_trunc('hour', occurred_at) AS bucket, count(*) AS n
    FROM heartbeat.event
    WHERE name = '{name}' AND occurred_at >= $1 AND occurred_at < $2
    GROUP BY 1
) c USING (bucket);
"
    )
}

/// The test config with definitions from `dir`.
pub fn config_with(dir: &tempfile::TempDir) -> Config {
    Config {
        definitions_dir: Some(dir.path().to_path_buf()),
        ..test_config()
    }
}

/// Inserts events `(event_id, occurred_at, name)` as one ingest batch of source
/// `test`, as a source would.
pub async fn insert_events(app: &TestApp, events: &[(&str, DateTime<Utc>, &str)]) {
    let db = app.db().await;
    let batch: i64 = db
        .query_one("SELECT nextval('heartbeat.ingest_batch_seq')", &[])
        .await
        .unwrap()
        .get(0);
    for (id, t, name) in events {
        db.execute(
            "INSERT INTO heartbeat.event (source, event_id, occurred_at, client_id, name, value, batch_id)
             VALUES ('test', $1, $2, 'c1', $3, 1, $4)",
            &[id, t, name, &batch],
        )
        .await
        .unwrap();
    }
}

pub async fn recompute(
    app: &TestApp,
    config: &Config,
    clock: &TestClock,
    scope: Scope,
) -> Result<serde_json::Value, JobError> {
    let body = RecomputeBody::new(config).with_clock(clock.clock());
    run_body(app, &body, JobKind::Recompute, scope).await
}

pub async fn benchmarks(
    app: &TestApp,
    config: &Config,
    clock: &TestClock,
) -> Result<serde_json::Value, JobError> {
    let body = BenchmarksBody::new(config).with_clock(clock.clock());
    run_body(app, &body, JobKind::Benchmarks, Scope::All).await
}

/// Runs a body on a detached context, as the engine would.
pub async fn run_body(
    app: &TestApp,
    body: &dyn JobBody,
    kind: JobKind,
    scope: Scope,
) -> Result<serde_json::Value, JobError> {
    body.run(JobContext::detached(kind, scope, app.state.pool.clone()))
        .await
}

/// `(bucket, value, computed_at)` of a metric, in bucket order.
pub async fn values(
    app: &TestApp,
    metric: &str,
) -> Vec<(DateTime<Utc>, Option<f64>, DateTime<Utc>)> {
    app.db()
        .await
        .query(
            "SELECT bucket, value, computed_at FROM heartbeat.metric_value WHERE metric_id = $1 ORDER BY bucket",
            &[&metric],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}
