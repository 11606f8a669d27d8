//! `GET /metrics`: Prometheus text that a parser accepts, and numbers that move
//! when the daemon works.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use heartbeat::jobs::{JobBody, JobContext, JobError, JobKind, JobRequest, Scope, Trigger};
use prometheus_parse::{Scrape, Value};
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with_bodies, test_config, TestApp};

/// A daemon whose recompute lane runs [`TwoPhases`] of `each`.
async fn app_running_two_phases(each: Duration) -> TestApp {
    let body: Arc<dyn JobBody> = Arc::new(TwoPhases(each));
    spawn_app_with_bodies(test_config(), vec![(JobKind::Recompute, body)]).await
}

/// Fetches `/metrics`, checks every line against the text format, and parses it.
async fn scrape(app: &TestApp) -> Scrape {
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let text = resp.text().await.unwrap();
    for line in text.lines() {
        assert_valid_line(line);
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the exposition parses")
}

/// The text format, strictly: `# HELP`, `# TYPE`, or `name{labels} value`.
fn assert_valid_line(line: &str) {
    if line.is_empty() {
        return;
    }
    if let Some(rest) = line.strip_prefix("# TYPE ") {
        let mut parts = rest.split(' ');
        let name = parts.next().unwrap();
        assert!(valid_name(name), "bad name in {line:?}");
        let ty = parts.next().unwrap_or("");
        assert!(
            ["counter", "gauge", "histogram", "summary", "untyped"].contains(&ty),
            "{line:?}"
        );
        return;
    }
    if let Some(rest) = line.strip_prefix("# HELP ") {
        assert!(valid_name(rest.split(' ').next().unwrap()), "{line:?}");
        return;
    }
    assert!(!line.starts_with('#'), "unknown comment {line:?}");
    let (series, value) = line.rsplit_once(' ').expect("name and value");
    let name = series.split('{').next().unwrap();
    assert!(valid_name(name), "bad name in {line:?}");
    assert!(name.starts_with("heartbeat_"), "unprefixed metric {line:?}");
    if let Some(labels) = series.strip_prefix(name) {
        if !labels.is_empty() {
            assert!(labels.starts_with('{') && labels.ends_with('}'), "{line:?}");
        }
    }
    assert!(
        value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
        "bad value in {line:?}"
    );
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The value of the series `name` whose labels include `labels`, if present.
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(b) => b.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
}

/// Polls `/metrics` until `name{labels}` reaches `want` (the job observer runs on
/// its own task, so a finished job shows up a moment later).
async fn wait_for(app: &TestApp, name: &str, labels: &[(&str, &str)], want: f64) -> Scrape {
    for _ in 0..100 {
        let s = scrape(app).await;
        if value(&s, name, labels) == Some(want) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let s = scrape(app).await;
    panic!(
        "{name}{labels:?} is {:?}, want {want}",
        value(&s, name, labels)
    );
}

struct TwoPhases(Duration);
impl JobBody for TwoPhases {
    fn run(
        &self,
        ctx: JobContext,
    ) -> futures::future::BoxFuture<'static, Result<serde_json::Value, JobError>> {
        let pause = self.0;
        Box::pin(async move {
            ctx.begin_phase("ingest", 1);
            tokio::time::sleep(pause).await;
            ctx.begin_phase("compute", 1);
            Ok(serde_json::Value::Null)
        })
    }
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_change_after_a_job_runs() {
    let app = app_running_two_phases(Duration::from_millis(10)).await;
    let before = scrape(&app).await;
    assert_eq!(
        value(
            &before,
            "heartbeat_jobs_finished_total",
            &[("kind", "recompute")]
        ),
        None
    );
    assert_eq!(
        value(
            &before,
            "heartbeat_jobs_started_total",
            &[("kind", "recompute")]
        ),
        Some(0.0)
    );

    let (status, body) = app
        .post_json("/api/metrics/recompute", &json!({"metric_ids": "all"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().unwrap().parse().unwrap();
    app.state.jobs.wait_finished(id).await.unwrap();

    let after = wait_for(
        &app,
        "heartbeat_jobs_finished_total",
        &[("kind", "recompute"), ("outcome", "succeeded")],
        1.0,
    )
    .await;
    assert_eq!(
        value(
            &after,
            "heartbeat_jobs_started_total",
            &[("kind", "recompute")]
        ),
        Some(1.0)
    );
    for phase in ["ingest", "compute"] {
        assert_eq!(
            value(
                &after,
                "heartbeat_job_phase_duration_seconds_count",
                &[("kind", "recompute"), ("phase", phase)]
            ),
            Some(1.0),
            "phase {phase}"
        );
    }
    assert_eq!(
        value(
            &after,
            "heartbeat_job_duration_seconds_count",
            &[("kind", "recompute")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "heartbeat_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/metrics/recompute"),
                ("status", "202")
            ]
        ),
        Some(1.0)
    );
    assert!(value(
        &after,
        "heartbeat_http_request_duration_seconds_count",
        &[("method", "POST"), ("route", "/api/metrics/recompute")]
    )
    .is_some());
}

#[tokio::test]
async fn coalesced_and_queued_requests_are_counted_per_lane() {
    let app = app_running_two_phases(Duration::from_millis(500)).await;
    let some = Scope::Metrics(BTreeSet::from(["a".to_string()]));
    let submit = |scope: Scope| {
        app.state.jobs.submit(JobRequest {
            kind: JobKind::Recompute,
            scope,
            trigger: Trigger::Api,
        })
    };
    let first = submit(some.clone()).await.unwrap();
    assert!(!first.coalesced);
    assert!(
        submit(some).await.unwrap().coalesced,
        "covered by the running job"
    );
    let follow_up = submit(Scope::All).await.unwrap();
    assert!(follow_up.queued && !follow_up.coalesced);
    assert!(
        submit(Scope::All).await.unwrap().coalesced,
        "merged into the follow-up"
    );

    let s = scrape(&app).await;
    let lane = [("kind", "recompute")];
    assert_eq!(
        value(&s, "heartbeat_jobs_coalesced_total", &lane),
        Some(2.0)
    );
    assert_eq!(value(&s, "heartbeat_jobs_queued_total", &lane), Some(1.0));
    assert_eq!(value(&s, "heartbeat_jobs_running", &lane), Some(1.0));
    // The follow-up starts once the first job ends.
    wait_for(&app, "heartbeat_jobs_started_total", &lane, 2.0).await;
}

#[tokio::test]
async fn the_pool_gauges_and_unmatched_routes_are_exposed() {
    let app = spawn_app().await;
    let (status, _) = app.get_json("/no/such/path/hb_secret").await;
    assert_eq!(status, 404);
    let s = scrape(&app).await;
    let in_use = value(&s, "heartbeat_db_pool_connections", &[("state", "in_use")]);
    let idle = value(&s, "heartbeat_db_pool_connections", &[("state", "idle")]);
    assert!(in_use.is_some() && idle.is_some(), "{:?}", s.samples);
    assert_eq!(
        value(&s, "heartbeat_db_pool_max_connections", &[]),
        Some(app.state.config.pool_size as f64)
    );
    assert_eq!(
        value(
            &s,
            "heartbeat_http_requests_total",
            &[("route", "unmatched"), ("status", "404")]
        ),
        Some(1.0),
        "raw paths never become labels"
    );
    assert!(
        s.docs.contains_key("heartbeat_jobs_started_total"),
        "HELP lines are written"
    );
}

#[tokio::test]
async fn metrics_need_no_key_in_keyed_mode() {
    let mut config = crate::helpers::test_config();
    config.admin_key = Some("an-admin-key-long-enough".into());
    let app = crate::helpers::spawn_app_with(config).await;
    let resp = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn the_scheduler_exposes_its_tick_counters_and_beats_for_the_watchdog() {
    let mut config = crate::helpers::test_config();
    config.no_scheduler = false;
    let app = crate::helpers::spawn_app_with(config).await;
    let mut found = None;
    for _ in 0..100 {
        let s = scrape(&app).await;
        if value(
            &s,
            "heartbeat_loop_beat_age_seconds",
            &[("loop", "scheduler")],
        )
        .is_some()
            && s.samples
                .iter()
                .any(|x| x.metric == "heartbeat_scheduler_fired_total")
        {
            found = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = found.expect("scheduler series and its loop beat appear");
    for name in [
        "heartbeat_scheduler_fired_total",
        "heartbeat_scheduler_absorbed_total",
        "heartbeat_scheduler_missed_total",
        "heartbeat_scheduler_caught_up_total",
    ] {
        assert!(
            value(&s, name, &[("entry", "recompute")]).is_some(),
            "{name}{{entry=\"recompute\"}}"
        );
    }
    assert!(app.state.liveness.stalled().is_empty());
}

/// Creates a heartbeat through the API and returns its id and ping path.
async fn create_heartbeat(app: &TestApp, body: serde_json::Value) -> (String, String) {
    let (status, hb) = app.post_json("/api/heartbeats", &body).await;
    assert_eq!(status, 201, "{hb}");
    let url = hb["ping_url"].as_str().unwrap();
    let path = url[url.find("/hb/").unwrap()..].to_string();
    (hb["id"].as_str().unwrap().to_string(), path)
}

#[tokio::test]
async fn the_heartbeats_gauge_counts_every_status_as_the_api_shows_it() {
    let mut config = crate::helpers::test_config();
    config.monitor.deadline_interval_ms = 50;
    config.monitor.status_count_interval_ms = 50;
    let app = crate::helpers::spawn_app_with(config).await;
    const STATUSES: [&str; 5] = ["pending", "up", "late", "down", "paused"];
    let mut all_labelled = false;
    for _ in 0..100 {
        let s = scrape(&app).await;
        if STATUSES
            .iter()
            .all(|st| value(&s, "heartbeat_heartbeats", &[("status", st)]).is_some())
        {
            all_labelled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(
        all_labelled,
        "every status label is present, zeros included"
    );

    create_heartbeat(&app, json!({"name": "never pinged"})).await;
    let (_, up) = create_heartbeat(&app, json!({"name": "pinged"})).await;
    let (_, failed) = create_heartbeat(&app, json!({"name": "failed"})).await;
    // Late one second after its ping, down only after an hour of grace.
    let (late_id, late) = create_heartbeat(
        &app,
        json!({"name": "late", "period_seconds": 1, "grace_seconds": 3600}),
    )
    .await;
    create_heartbeat(&app, json!({"name": "paused", "paused": true})).await;
    for path in [up, late] {
        let r = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = app
        .client
        .get(app.url(&format!("{failed}/fail")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, shown) = app.get_json(&format!("/api/heartbeats/{late_id}")).await;
    assert_eq!(shown["status"], "late", "the API shows it late: {shown}");

    // The daemon's own job heartbeats (never run here) are counted too.
    let system: Vec<(String, i64)> = app
        .db()
        .await
        .query(
            "SELECT status, count(*) FROM heartbeat.heartbeat WHERE project_id = $1 GROUP BY 1",
            &[&heartbeat::monitor::SYSTEM_PROJECT],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(!system.is_empty(), "the job heartbeats exist");
    for status in STATUSES {
        let own = system
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n);
        // One of each status is this test's.
        wait_for(
            &app,
            "heartbeat_heartbeats",
            &[("status", status)],
            (own + 1) as f64,
        )
        .await;
    }
}

#[tokio::test]
async fn the_recorder_is_kept_up_by_the_daemon_with_nobody_scraping() {
    let app = spawn_app().await;
    // Traffic that records latency samples, and no GET /metrics at all.
    for _ in 0..20 {
        let r = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let period = heartbeat::ops::prometheus::UPKEEP_EVERY;
    let deadline = tokio::time::Instant::now() + period * 2 + Duration::from_secs(2);
    // The timer's first upkeep is immediate, the second one a period later.
    while app.state.metrics.upkeeps() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no upkeep within two periods without a scrape: {} so far",
            app.state.metrics.upkeeps()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn metrics_show_table_row_estimates_and_the_process_rss() {
    let app = spawn_app().await;
    let db = app.db().await;
    db.batch_execute(
        "INSERT INTO heartbeat.event (source, event_id, occurred_at, client_id, name, batch_id)
         SELECT 't', 'e' || i, now(), 'c', 'x', 1 FROM generate_series(1, 500) i;
         ANALYZE heartbeat.event;",
    )
    .await
    .unwrap();
    let s = scrape(&app).await;
    assert_eq!(
        value(&s, "heartbeat_table_rows_estimate", &[("table", "event")]),
        Some(500.0)
    );
    assert!(
        value(&s, "heartbeat_table_rows_estimate", &[("table", "flip")]).is_some(),
        "every table of the schema has a gauge"
    );
    let rss = value(&s, "heartbeat_process_resident_memory_bytes", &[]).unwrap();
    assert!(rss > 1e6, "{rss}");
}
