//! Backfill ranges: the gate's cover and union rules over metrics × ranges, the
//! values a backfill writes, dry runs and the refused ranges.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration as Span, Utc};
use futures::future::BoxFuture;
use heartbeat::jobs::range::{Range, RangeSet};
use heartbeat::jobs::{JobBody, JobContext, JobError, JobKind, Scope};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::helpers::{error_code, spawn_app_with, spawn_app_with_bodies, TestApp};
use crate::refresh_support::*;

/// A recompute that records each run's scope and waits for the test to release it.
#[derive(Clone)]
struct HeldBody {
    release: Arc<Semaphore>,
    runs: Arc<Mutex<Vec<Scope>>>,
}

impl Default for HeldBody {
    fn default() -> Self {
        Self {
            release: Arc::new(Semaphore::new(0)),
            runs: Arc::default(),
        }
    }
}

impl JobBody for HeldBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let this = self.clone();
        Box::pin(async move {
            this.runs.lock().unwrap().push(ctx.scope().clone());
            tokio::select! {
                permit = this.release.acquire() => permit.unwrap().forget(),
                _ = ctx.cancel_token().cancelled() => return Err(JobError::Cancelled),
            }
            Ok(Value::Null)
        })
    }
}

/// Whole hours `h` hours before the last midnight (UTC), as RFC 3339.
fn hours_ago(midnight: DateTime<Utc>, h: i64) -> DateTime<Utc> {
    midnight - Span::hours(h)
}

fn last_midnight() -> DateTime<Utc> {
    Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

async fn ask(app: &TestApp, metrics: &[&str], from: DateTime<Utc>, to: DateTime<Utc>) -> Value {
    let (status, body) = app
        .post_json(
            "/api/metrics/recompute",
            &json!({"metric_ids": metrics, "from": from.to_rfc3339(), "to": to.to_rfc3339()}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    body
}

async fn held_app() -> (TestApp, HeldBody, tempfile::TempDir) {
    let dir = definitions(&[
        ("a", &hourly_counter("a", "counter")),
        ("b", &hourly_counter("b", "counter")),
    ]);
    let body = HeldBody::default();
    let app = spawn_app_with_bodies(
        config_with(&dir),
        vec![(
            JobKind::Recompute,
            Arc::new(body.clone()) as Arc<dyn JobBody>,
        )],
    )
    .await;
    (app, body, dir)
}

/// The follow-up's ranges per metric, from `GET /api/metrics/active-job`.
async fn queued_ranges(app: &TestApp) -> Value {
    let (_, active) = app.get_json("/api/metrics/active-job").await;
    active["queued"]["scope"]["ranges"].clone()
}

fn ranges_json(set: &RangeSet) -> Value {
    serde_json::to_value(set).unwrap()
}

#[tokio::test]
async fn a_covered_range_absorbs_and_an_overlapping_one_merges_into_the_follow_up_as_a_union() {
    let (app, body, _dir) = held_app().await;
    let m = last_midnight();
    let running = ask(&app, &["a"], hours_ago(m, 48), hours_ago(m, 24)).await;
    assert_eq!(running["queued"], false);
    let (_, job) = app
        .get_json(&format!(
            "/api/jobs/{}",
            running["job_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        job["scope"]["ranges"]["a"][0]["from"],
        json!(hours_ago(m, 48)),
        "the job JSON shows the range per metric: {job}"
    );
    assert!(job["scope"]["metrics"].is_null(), "{job}");

    // Inside the running job's range, same metric: absorbed.
    let covered = ask(&app, &["a"], hours_ago(m, 40), hours_ago(m, 30)).await;
    assert_eq!(covered["job_id"], running["job_id"]);
    assert_eq!(
        (covered["coalesced"].clone(), covered["queued"].clone()),
        (json!(true), json!(false))
    );
    // An incremental request is not covered by a backfill, nor another metric.
    let incremental = ask_all(&app).await;
    assert_eq!(incremental["queued"], true);
    // Overlapping the running range: merged into the follow-up.
    let overlapping = ask(&app, &["a"], hours_ago(m, 30), hours_ago(m, 12)).await;
    assert_eq!(overlapping["job_id"], incremental["job_id"]);
    assert_eq!(overlapping["coalesced"], true);
    let other = ask(&app, &["b"], hours_ago(m, 20), hours_ago(m, 10)).await;
    assert_eq!(other["job_id"], incremental["job_id"]);

    let (_, active) = app.get_json("/api/metrics/active-job").await;
    let queued = &active["queued"]["scope"];
    assert_eq!(queued["metrics"], "all", "{queued}");
    assert_eq!(
        queued["ranges"]["a"],
        ranges_json(&RangeSet::of(Range {
            from: hours_ago(m, 30),
            to: hours_ago(m, 12)
        }))
    );
    assert_eq!(
        queued["ranges"]["b"],
        ranges_json(&RangeSet::of(Range {
            from: hours_ago(m, 20),
            to: hours_ago(m, 10)
        }))
    );
    let (_, jobs) = app.get_json("/api/jobs?kind=recompute").await;
    assert!(jobs["jobs"].as_array().unwrap().len() <= 2, "{jobs}");
    body.release.add_permits(2);
    for _ in 0..200 {
        if body.runs.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let runs = body.runs.lock().unwrap().clone();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs[1].covers(&Scope::All), "{:?}", runs[1]);
}

async fn ask_all(app: &TestApp) -> Value {
    let (status, body) = app
        .post_json("/api/metrics/recompute", &json!({"metric_ids": "all"}))
        .await;
    assert_eq!(status, 202, "{body}");
    body
}

#[tokio::test]
async fn twenty_scattered_ranges_end_as_one_follow_up_whose_scope_is_exactly_their_union() {
    let (app, body, _dir) = held_app().await;
    let m = last_midnight();
    let running = ask(&app, &["a"], hours_ago(m, 300), hours_ago(m, 299)).await;
    let mut expected_a = RangeSet::default();
    let mut expected_b = RangeSet::default();
    let mut follow_up = None;
    let mut seed = 11u64;
    for i in 0..20 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let start = 10 + (seed >> 33) % 200;
        let len = 1 + (seed >> 16) % 12;
        let (from, to) = (
            hours_ago(m, (start + len) as i64),
            hours_ago(m, start as i64),
        );
        let metric = if i % 3 == 0 { "b" } else { "a" };
        let answer = ask(&app, &[metric], from, to).await;
        assert_ne!(answer["job_id"], running["job_id"]);
        assert_eq!(answer["queued"], true);
        let id = follow_up.get_or_insert_with(|| answer["job_id"].clone());
        assert_eq!(&answer["job_id"], id, "one follow-up for all twenty");
        let set = if metric == "a" {
            &mut expected_a
        } else {
            &mut expected_b
        };
        set.add(Range { from, to });
    }
    let ranges = queued_ranges(&app).await;
    assert_eq!(ranges["a"], ranges_json(&expected_a), "{ranges}");
    assert_eq!(ranges["b"], ranges_json(&expected_b), "{ranges}");
    body.release.add_permits(2);
    for _ in 0..200 {
        if body.runs.lock().unwrap().len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let runs = body.runs.lock().unwrap().clone();
    let ran = runs[1].ranges().unwrap();
    assert_eq!(ran["a"], expected_a);
    assert_eq!(ran["b"], expected_b);
}

#[tokio::test]
async fn a_backfill_writes_what_a_full_recompute_writes_over_the_same_buckets_and_nothing_else() {
    let dir = definitions(&[("orders", &hourly_counter("order", "counter"))]);
    let config = config_with(&dir);
    let app = spawn_app_with(config.clone()).await;
    let clock = TestClock::new(at("2026-03-10T12:30:00Z"));
    let mut events = Vec::new();
    for h in 0..60 {
        for k in 0..(h % 5) {
            events.push((
                format!("e{h}-{k}"),
                at("2026-03-08T00:10:00Z") + Span::hours(h),
            ));
        }
    }
    let rows: Vec<(&str, DateTime<Utc>, &str)> = events
        .iter()
        .map(|(id, t)| (id.as_str(), *t, "order"))
        .collect();
    insert_events(&app, &rows).await;
    recompute(&app, &config, &clock, Scope::All).await.unwrap();
    let full = values(&app, "orders").await;
    assert_eq!(full.len(), 59, "the first event is in hour 1");

    // Scramble every value, then backfill scattered ranges (united as the gate
    // would unite twenty requests).
    app.db()
        .await
        .execute("UPDATE heartbeat.metric_value SET value = -1", &[])
        .await
        .unwrap();
    let mut union = Scope::Backfill(Default::default());
    let mut asked = RangeSet::default();
    for (a, b) in [(2, 5), (4, 9), (20, 21), (30, 45), (44, 47), (58, 70)] {
        let r = Range {
            from: at("2026-03-08T00:00:00Z") + Span::hours(a),
            to: at("2026-03-08T00:00:00Z") + Span::hours(b),
        };
        asked.add(r);
        union = union.union(&Scope::backfill(&["orders".to_string()], &RangeSet::of(r)));
    }
    let result = recompute(&app, &config, &clock, union).await.unwrap();
    let after = values(&app, "orders").await;
    let mut rewritten = 0;
    for (old, new) in full.iter().zip(&after) {
        let inside = asked.covers(&RangeSet::of(Range {
            from: old.0,
            to: old.0 + Span::hours(1),
        }));
        if inside {
            rewritten += 1;
            assert_eq!(
                new.1, old.1,
                "bucket {} recomputed as a full run computes it",
                old.0
            );
        } else {
            assert_eq!(
                new.1,
                Some(-1.0),
                "bucket {} outside every range is left alone",
                old.0
            );
        }
    }
    // 58..70 is clipped at the last complete bucket (2026-03-10T11:00).
    assert_eq!(rewritten, 3 + 4 + 1 + 17 + 2);
    assert_eq!(result["buckets"], rewritten, "{result}");
}

#[tokio::test]
async fn a_dry_run_answers_the_buckets_and_runs_nothing_and_bad_ranges_are_named() {
    let dir = definitions(&[("orders", &hourly_counter("order", "counter"))]);
    let app = spawn_app_with(config_with(&dir)).await;
    let m = last_midnight();
    let (from, to) = (hours_ago(m, 72), hours_ago(m, 48));
    let (status, body) = app
        .post_json(
            "/api/metrics/recompute",
            &json!({"metric_ids": ["orders"], "from": from.format("%Y-%m-%d").to_string(),
                    "to": to.format("%Y-%m-%d").to_string(), "dry_run": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dry_run"], true);
    assert_eq!(body["metrics"][0]["metric_id"], "orders");
    assert_eq!(body["metrics"][0]["buckets"], 24);
    assert_eq!(body["metrics"][0]["runs"][0]["from"], json!(from));
    let (_, jobs) = app.get_json("/api/jobs").await;
    assert!(
        jobs["jobs"].as_array().unwrap().is_empty(),
        "nothing ran: {jobs}"
    );

    let refused = [
        (
            json!({"from": to.to_rfc3339(), "to": from.to_rfc3339()}),
            "must be after",
        ),
        (json!({"from": "2001-01-01"}), "refresh.history_days"),
        (json!({"from": "last tuesday"}), "from:"),
        (json!({"to": "2026-01-01"}), "to needs from"),
        (json!({"dry_run": true}), "dry_run needs from"),
    ];
    for (request, named) in refused {
        let (status, body) = app.post_json("/api/metrics/recompute", &request).await;
        assert_eq!(status, 422, "{request}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(named), "{request}: {body}");
        assert!(
            ["invalid_range", "invalid_input"].contains(&error_code(&body)),
            "{body}"
        );
    }
    let (status, body) = app
        .post_json("/api/jobs/segments", &json!({"from": from.to_rfc3339()}))
        .await;
    assert_eq!(status, 422, "{body}");
}

async fn cli_refresh(url: &str, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
        .arg("refresh")
        .args(args)
        .args(["--url", url])
        .env_remove("HEARTBEAT_KEY")
        .env_remove("HEARTBEAT_ADMIN_KEY")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn heartbeat_refresh_backfills_a_range_and_dry_runs_it() {
    let dir = definitions(&[("orders", &hourly_counter("order", "counter"))]);
    let app = spawn_app_with(config_with(&dir)).await;
    let m = last_midnight();
    let from = hours_ago(m, 72).format("%Y-%m-%d").to_string();
    let to = hours_ago(m, 48).format("%Y-%m-%d").to_string();
    let range = ["--from", from.as_str(), "--to", to.as_str()];
    let mut args = vec!["all", "--metric", "orders"];
    args.extend(range);
    let mut dry = args.clone();
    dry.push("--dry-run");
    let (code, out, err) = cli_refresh(&app.address, &dry).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("orders would recompute 24 hour bucket(s)"),
        "{out}"
    );
    let (_, jobs) = app.get_json("/api/jobs").await;
    assert!(jobs["jobs"].as_array().unwrap().is_empty(), "{jobs}");

    let (code, out, err) = cli_refresh(&app.address, &args).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("from {from} to {to}")), "{out}");
    assert!(out.contains("succeeded"), "{out}");
    let (_, jobs) = app.get_json("/api/jobs").await;
    let job = &jobs["jobs"][0];
    assert_eq!(job["result"]["buckets"], 24, "{job}");
    assert_eq!(job["progress"]["done"], 24, "progress in buckets: {job}");

    let (code, _, err) = cli_refresh(&app.address, &["segments", "--from", &from]).await;
    assert_eq!(code, 2, "{err}");
}
