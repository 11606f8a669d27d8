//! The single-flight jobs engine seen through its HTTP routes and the CLI.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use heartbeat::jobs::{JobBody, JobContext, JobError, JobKind, Scope};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::helpers::{error_code, spawn_app_with_bodies, test_config, TestApp};

/// A body that records each run's scope and blocks until the test releases it.
#[derive(Clone)]
struct GateBody {
    release: Arc<Semaphore>,
    runs: Arc<Mutex<Vec<Scope>>>,
}

impl Default for GateBody {
    fn default() -> Self {
        Self {
            release: Arc::new(Semaphore::new(0)),
            runs: Arc::default(),
        }
    }
}

impl GateBody {
    fn release_one(&self) {
        self.release.add_permits(1);
    }
    fn runs(&self) -> Vec<Scope> {
        self.runs.lock().unwrap().clone()
    }
}

impl JobBody for GateBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let this = self.clone();
        Box::pin(async move {
            this.runs.lock().unwrap().push(ctx.scope().clone());
            ctx.begin_phase("ingest", 1);
            tokio::select! {
                permit = this.release.acquire() => permit.unwrap().forget(),
                _ = ctx.cancel_token().cancelled() => return Err(JobError::Cancelled),
            }
            ctx.advance();
            ctx.begin_phase("compute", 1);
            ctx.advance();
            Ok(json!({"ok": true}))
        })
    }
}

/// A body that runs a long statement on the server.
struct SleepySqlBody;

impl JobBody for SleepySqlBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        Box::pin(async move {
            ctx.begin_phase("compute", 1);
            let mut client = ctx.client().await?;
            let tx = client.transaction().await?;
            tx.execute("CREATE TABLE heartbeat.half_written (x int)", &[])
                .await?;
            tx.execute("SELECT pg_sleep(60)", &[]).await?;
            tx.commit().await?;
            Ok(Value::Null)
        })
    }
}

struct FailingBody;
impl JobBody for FailingBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        Box::pin(async move {
            ctx.begin_phase("ingest", 2);
            Err(JobError::Failed("source 'shop' failed: 500".into()))
        })
    }
}

struct PanickingBody;
impl JobBody for PanickingBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        Box::pin(async move {
            ctx.begin_phase("compute", 1);
            panic!("metric definition exploded");
        })
    }
}

/// An app whose definitions dir holds metrics `a`..`e`.
async fn app_with_metrics(config: heartbeat::config::Config) -> (TestApp, tempfile::TempDir) {
    app_with_metrics_running(config, Vec::new()).await
}

/// Like [`app_with_metrics`], with lanes in `bodies` running the given work.
async fn app_with_metrics_running(
    config: heartbeat::config::Config,
    bodies: Vec<(JobKind, Arc<dyn JobBody>)>,
) -> (TestApp, tempfile::TempDir) {
    let defs = tempfile::tempdir().unwrap();
    std::fs::create_dir(defs.path().join("metrics")).unwrap();
    for id in ["a", "b", "c", "d", "e"] {
        std::fs::write(defs.path().join(format!("metrics/{id}.sql")), "-- test").unwrap();
    }
    let mut config = config;
    config.definitions_dir = Some(defs.path().to_path_buf());
    (spawn_app_with_bodies(config, bodies).await, defs)
}

async fn gated_app() -> (TestApp, GateBody, tempfile::TempDir) {
    let gate = GateBody::default();
    let (app, defs) = app_with_metrics_running(
        test_config(),
        vec![(JobKind::Recompute, Arc::new(gate.clone()))],
    )
    .await;
    (app, gate, defs)
}

async fn recompute(app: &TestApp, body: Value) -> Value {
    let (status, resp) = app.post_json("/api/metrics/recompute", &body).await;
    assert_eq!(status, 202, "{resp}");
    resp
}

async fn wait_state(app: &TestApp, id: &str, want: &str) -> Value {
    for _ in 0..400 {
        let (status, job) = app.get_json(&format!("/api/jobs/{id}")).await;
        assert_eq!(status, 200, "{job}");
        if job["state"] == want {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {id} never reached {want}");
}

async fn wait_runs(gate: &GateBody, n: usize) {
    for _ in 0..400 {
        if gate.runs().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the body never ran {n} times");
}

fn metrics(ids: &[&str]) -> Scope {
    Scope::Metrics(ids.iter().map(|s| s.to_string()).collect())
}

#[tokio::test]
async fn a_thousand_concurrent_posts_while_a_job_runs_create_exactly_one_job() {
    let (app, gate, _defs) = gated_app().await;
    let first = recompute(&app, json!({"metric_ids": "all"})).await;
    let id = first["job_id"].as_str().unwrap().to_string();
    wait_runs(&gate, 1).await;

    let posts = (0..1000).map(|_| {
        let client = app.client.clone();
        let url = app.url("/api/metrics/recompute");
        async move {
            let r = client
                .post(url)
                .json(&json!({"metric_ids": "all", "trigger": "user"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            r.json::<Value>().await.unwrap()
        }
    });
    let answers = futures::future::join_all(posts).await;
    assert!(answers
        .iter()
        .all(|a| a["job_id"] == id.as_str() && a["coalesced"] == true));

    let job = app
        .get_json(&format!("/api/metrics/recompute/{id}"))
        .await
        .1;
    assert_eq!(job["coalesced_requests"], 1001);
    gate.release_one();
    wait_state(&app, &id, "succeeded").await;
    assert_eq!(gate.runs().len(), 1, "exactly one run");
    let (_, list) = app.get_json("/api/jobs").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_subset_request_during_an_all_job_coalesces() {
    let (app, gate, _defs) = gated_app().await;
    let all = recompute(&app, json!({"metric_ids": "all"})).await;
    let subset = recompute(&app, json!({"metric_ids": ["a", "b"]})).await;
    assert_eq!(subset["job_id"], all["job_id"]);
    assert_eq!(subset["coalesced"], true);
    assert_eq!(subset["queued"], false);
    gate.release_one();
    wait_state(&app, all["job_id"].as_str().unwrap(), "succeeded").await;
    assert_eq!(gate.runs(), vec![Scope::All]);
}

#[tokio::test]
async fn an_all_request_during_a_subset_job_creates_one_follow_up_that_runs_after_it() {
    let (app, gate, _defs) = gated_app().await;
    let subset = recompute(&app, json!({"metric_ids": ["a"]})).await;
    wait_runs(&gate, 1).await;
    let all = recompute(&app, json!({"metric_ids": "all"})).await;
    assert_ne!(all["job_id"], subset["job_id"]);
    assert_eq!(all["coalesced"], false);
    assert_eq!(all["queued"], true);
    let again = recompute(&app, json!({"metric_ids": "all"})).await;
    assert_eq!(again["job_id"], all["job_id"], "joins the follow-up");
    assert_eq!(again["coalesced"], true);

    let follow_id = all["job_id"].as_str().unwrap();
    assert_eq!(
        app.get_json(&format!("/api/jobs/{follow_id}")).await.1["state"],
        "queued"
    );
    let (_, active) = app.get_json("/api/metrics/active-job").await;
    assert_eq!(active["job"]["job_id"], subset["job_id"]);
    assert_eq!(active["queued"]["job_id"], all["job_id"]);

    gate.release_one();
    wait_state(&app, subset["job_id"].as_str().unwrap(), "succeeded").await;
    wait_runs(&gate, 2).await;
    gate.release_one();
    wait_state(&app, follow_id, "succeeded").await;
    assert_eq!(gate.runs(), vec![metrics(&["a"]), Scope::All]);
}

#[tokio::test]
async fn twenty_uncovered_requests_merge_into_one_follow_up_whose_scope_is_their_union() {
    let (app, gate, _defs) = gated_app().await;
    recompute(&app, json!({"metric_ids": ["a"]})).await;
    wait_runs(&gate, 1).await;
    let mut follow_ids = std::collections::BTreeSet::new();
    for i in 0..20 {
        let id = ["b", "c", "d", "e"][i % 4];
        let r = recompute(&app, json!({"metric_ids": [id]})).await;
        assert_eq!(r["queued"], true);
        follow_ids.insert(r["job_id"].as_str().unwrap().to_string());
    }
    assert_eq!(follow_ids.len(), 1, "one follow-up");
    let follow = follow_ids.into_iter().next().unwrap();
    let job = app.get_json(&format!("/api/jobs/{follow}")).await.1;
    assert_eq!(job["scope"], json!(["b", "c", "d", "e"]));
    assert_eq!(job["coalesced_requests"], 20);
    gate.release_one();
    gate.release_one();
    wait_state(&app, &follow, "succeeded").await;
    assert_eq!(
        gate.runs(),
        vec![metrics(&["a"]), metrics(&["b", "c", "d", "e"])]
    );
}

#[tokio::test]
async fn a_job_past_its_max_runtime_fails_naming_the_phase_rolls_back_and_frees_the_lane() {
    let mut config = test_config();
    config.jobs.max_runtime_secs.recompute = 1;
    let (app, _defs) =
        app_with_metrics_running(config, vec![(JobKind::Recompute, Arc::new(SleepySqlBody))]).await;
    let r = recompute(&app, json!({})).await;
    let id = r["job_id"].as_str().unwrap();
    let job = wait_state(&app, id, "failed").await;
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("timed out") && error.contains("compute"),
        "{error}"
    );
    // The statement was cancelled on the server and its transaction rolled back.
    let db = app.db().await;
    let sleeping: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%' AND state = 'active'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sleeping, 0);
    let table: Option<String> = db
        .query_one("SELECT to_regclass('heartbeat.half_written')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(table, None, "nothing half-written");
    let (_, active) = app.get_json("/api/metrics/active-job").await;
    assert_eq!(active["job"], Value::Null, "lane free");
    let next = recompute(&app, json!({})).await;
    assert_eq!(next["coalesced"], false);
}

#[tokio::test]
async fn the_cancel_endpoint_cancels_a_running_job_and_frees_the_lane() {
    let (app, gate, _defs) = gated_app().await;
    let r = recompute(&app, json!({})).await;
    let id = r["job_id"].as_str().unwrap();
    wait_runs(&gate, 1).await;
    let (status, _) = app
        .post_json(&format!("/api/jobs/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 202);
    let job = wait_state(&app, id, "cancelled").await;
    assert!(job["error"].as_str().unwrap().contains("ingest"), "{job}");
    let (status, body) = app
        .post_json(&format!("/api/jobs/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    let next = recompute(&app, json!({})).await;
    assert_ne!(next["job_id"].as_str().unwrap(), id);
}

#[tokio::test]
async fn a_failing_body_fails_the_job_with_its_message() {
    let (app, _defs) =
        app_with_metrics_running(test_config(), vec![(JobKind::Audit, Arc::new(FailingBody))])
            .await;
    let (status, r) = app
        .post_json("/api/jobs/audit", &json!({"trigger": "deploy"}))
        .await;
    assert_eq!(status, 202, "{r}");
    let job = wait_state(&app, r["job_id"].as_str().unwrap(), "failed").await;
    assert_eq!(job["kind"], "audit");
    assert_eq!(job["trigger"], "deploy");
    assert!(job["error"].as_str().unwrap().contains("shop"), "{job}");
}

#[tokio::test]
async fn a_panicking_body_fails_the_job_and_the_daemon_keeps_serving() {
    let (app, _defs) = app_with_metrics_running(
        test_config(),
        vec![(JobKind::Segments, Arc::new(PanickingBody))],
    )
    .await;
    let r = app
        .client
        .post(app.url("/api/jobs/segments"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r: Value = r.json().await.unwrap();
    let job = wait_state(&app, r["job_id"].as_str().unwrap(), "failed").await;
    assert!(job["error"].as_str().unwrap().contains("exploded"), "{job}");
    assert_eq!(app.get_json("/healthz").await.0, 200);
    let r2 = app
        .client
        .post(app.url("/api/jobs/segments"))
        .send()
        .await
        .unwrap();
    assert_eq!(r2.status(), 202, "lane free after a panic");
}

#[tokio::test]
async fn the_job_json_carries_the_contract_fields() {
    let (app, gate, _defs) = gated_app().await;
    let r = recompute(&app, json!({"metric_ids": ["a"], "trigger": "user"})).await;
    let id = r["job_id"].as_str().unwrap();
    gate.release_one();
    let job = wait_state(&app, id, "succeeded").await;
    for field in [
        "job_id",
        "kind",
        "trigger",
        "scope",
        "state",
        "phase",
        "phases",
        "progress",
        "created_at",
        "started_at",
        "finished_at",
        "error",
        "coalesced_requests",
        "node",
    ] {
        assert!(job.get(field).is_some(), "missing {field}: {job}");
    }
    assert_eq!(job["trigger"], "user");
    assert_eq!(job["phase"], "compute");
    let phases = job["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2);
    assert_eq!(phases[0]["name"], "ingest");
    assert!(phases[0]["finished_at"].is_string());
    assert_eq!(job["progress"], json!({"done": 1, "total": 1}));
    // UUIDv7: time-sortable.
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
}

#[tokio::test]
async fn bad_job_requests_get_json_errors_that_name_the_problem() {
    let (app, _defs) = app_with_metrics(test_config()).await;
    let (s, b) = app
        .post_json(
            "/api/metrics/recompute",
            &json!({"metric_ids": ["a", "nope", "zzz"]}),
        )
        .await;
    assert_eq!(s, 422);
    assert_eq!(error_code(&b), "unknown_metric_ids");
    let msg = b["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("nope") && msg.contains("zzz") && !msg.contains("'a'"),
        "{msg}"
    );

    let (s, b) = app
        .post_json("/api/metrics/recompute", &json!({"trigger": "boss"}))
        .await;
    assert_eq!(s, 422, "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("boss"));

    let (s, b) = app
        .post_json("/api/metrics/recompute", &json!({"metric_ids": []}))
        .await;
    assert_eq!((s, error_code(&b)), (422, "invalid_input"));

    let many: Vec<String> = (0..5000).map(|i| format!("m{i}")).collect();
    let (s, _) = app
        .post_json("/api/metrics/recompute", &json!({"metric_ids": many}))
        .await;
    assert_eq!(s, 422);

    let (s, b) = app.post_json("/api/jobs/laundry", &json!({})).await;
    assert_eq!((s, error_code(&b)), (404, "not_found"));
    let (s, b) = app.get_json("/api/jobs/not-a-uuid").await;
    assert_eq!((s, error_code(&b)), (404, "not_found"));
    let (s, b) = app
        .get_json(&format!("/api/jobs/{}", uuid::Uuid::now_v7()))
        .await;
    assert_eq!((s, error_code(&b)), (404, "not_found"));
    let (s, _) = app.get_json("/api/metrics/recompute/12345").await;
    assert_eq!(s, 404);

    let r = app
        .client
        .post(app.url("/api/metrics/recompute"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(error_code(&r.json().await.unwrap()), "malformed_json");
    let r = app
        .client
        .post(app.url("/api/metrics/recompute"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let (s, b) = app
        .post_json(
            "/api/metrics/recompute",
            &json!({"metric_ids": "all", "x": 1}),
        )
        .await;
    assert_eq!(s, 422);
    assert!(b["error"]["message"].as_str().unwrap().contains('x'), "{b}");
    let (_, list) = app.get_json("/api/jobs").await;
    assert_eq!(list["jobs"], json!([]), "nothing was started");
}

#[tokio::test]
async fn an_idle_lane_has_no_active_job() {
    let (app, _defs) = app_with_metrics(test_config()).await;
    let (s, b) = app.get_json("/api/metrics/active-job").await;
    assert_eq!(s, 200);
    assert_eq!(b["job"], Value::Null);
}

#[tokio::test]
async fn on_shutdown_new_requests_get_503_and_the_running_job_is_cancelled() {
    let (app, gate, _defs) = gated_app().await;
    let r = recompute(&app, json!({})).await;
    let id: uuid::Uuid = r["job_id"].as_str().unwrap().parse().unwrap();
    wait_runs(&gate, 1).await;
    let engine = app.state.jobs.clone();
    app.stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), app.server)
        .await
        .expect("shutdown within the timeout")
        .unwrap()
        .unwrap();
    let job = engine.get_local(id).unwrap();
    assert_eq!(job.state, heartbeat::jobs::JobState::Cancelled);
    let err = engine
        .submit(heartbeat::jobs::JobRequest {
            kind: JobKind::Recompute,
            scope: Scope::All,
            trigger: heartbeat::jobs::Trigger::Api,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, heartbeat::jobs::EngineError::ShuttingDown));
}
