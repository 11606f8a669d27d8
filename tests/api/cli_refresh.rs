//! `heartbeat refresh` against a live daemon: its output and exit codes.

use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use heartbeat::jobs::{JobBody, JobContext, JobError, JobKind};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with_bodies, test_config, TestApp};

struct TwoPhases;
impl JobBody for TwoPhases {
    fn run(&self, ctx: JobContext) -> futures::future::BoxFuture<'static, Result<Value, JobError>> {
        Box::pin(async move {
            ctx.begin_phase("ingest", 1);
            tokio::time::sleep(Duration::from_millis(700)).await;
            ctx.begin_phase("compute", 1);
            tokio::time::sleep(Duration::from_millis(700)).await;
            Ok(Value::Null)
        })
    }
}

struct Fails;
impl JobBody for Fails {
    fn run(&self, ctx: JobContext) -> futures::future::BoxFuture<'static, Result<Value, JobError>> {
        Box::pin(async move {
            ctx.begin_phase("sync", 1);
            Err(JobError::Failed("cut 'broken' failed".into()))
        })
    }
}

struct Forever;
impl JobBody for Forever {
    fn run(&self, ctx: JobContext) -> futures::future::BoxFuture<'static, Result<Value, JobError>> {
        Box::pin(async move {
            ctx.cancel_token().cancelled().await;
            Err(JobError::Cancelled)
        })
    }
}

async fn refresh(url: &str, args: &[&str]) -> (i32, String, String) {
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

/// A daemon whose `kind` lane runs `body`.
async fn app_running(kind: JobKind, body: impl JobBody) -> TestApp {
    spawn_app_with_bodies(
        test_config(),
        vec![(kind, Arc::new(body) as Arc<dyn JobBody>)],
    )
    .await
}

#[tokio::test]
async fn refresh_prints_each_phase_and_exits_0_on_success() {
    let app = app_running(JobKind::Recompute, TwoPhases).await;
    let (code, out, err) = refresh(&app.address, &["all", "--trigger", "cron"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("phase ingest started"), "{out}");
    assert!(out.contains("phase compute started"), "{out}");
    assert!(out.contains("succeeded"), "{out}");
    let (_, jobs) = app.get_json("/api/jobs").await;
    assert_eq!(jobs["jobs"][0]["trigger"], "cron");
}

#[tokio::test]
async fn refresh_exits_1_when_the_job_fails() {
    let app = app_running(JobKind::Audit, Fails).await;
    let (code, out, _) = refresh(&app.address, &["audit", "--trigger", "deploy"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("broken"), "{out}");
}

#[tokio::test]
async fn refresh_exits_2_on_usage_and_connection_errors() {
    let app = spawn_app().await;
    let (code, _, err) = refresh(&app.address, &["laundry"]).await;
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = refresh(&app.address, &["all", "--metric", "no_such_metric"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("no_such_metric"), "{err}");
    let (code, _, err) = refresh("http://127.0.0.1:1", &["all"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach"), "{err}");
}

#[tokio::test]
async fn refresh_exits_4_when_its_timeout_passes() {
    let app = app_running(JobKind::Segments, Forever).await;
    let (code, out, _) = refresh(&app.address, &["segments", "--timeout", "1s"]).await;
    assert_eq!(code, 4, "{out}");
}

#[tokio::test]
async fn refresh_exits_3_when_the_job_vanishes() {
    // A daemon that accepted the job, then restarted: the id answers 404.
    let fake = axum::Router::new()
        .route(
            "/api/metrics/recompute",
            post(|| async {
                (
                    axum::http::StatusCode::ACCEPTED,
                    axum::Json(json!({"job_id": uuid::Uuid::now_v7(), "coalesced": false, "queued": false})),
                )
            }),
        )
        .route(
            "/api/jobs/{id}",
            get(|| async {
                (
                    axum::http::StatusCode::NOT_FOUND,
                    axum::Json(json!({"error": {"code": "not_found", "message": "no job"}})),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, fake).await });
    let (code, out, _) = refresh(&format!("http://127.0.0.1:{port}"), &["all"]).await;
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("vanished"), "{out}");
}

#[tokio::test]
async fn refresh_follows_the_event_stream_without_polling() {
    // A daemon that streams the job (written by hand in the standard's format:
    // CRLF line ends, a comment, a field without a space) and refuses every poll,
    // so a success can only come from the stream.
    let id = uuid::Uuid::now_v7();
    let job = json!({"job_id": id, "state": "succeeded", "error": null,
        "started_at": "2026-01-01T00:00:00Z", "finished_at": "2026-01-01T00:00:02.5Z"});
    let stream = format!(
        ": hello\r\nid: 1\r\nevent: state\r\ndata: {{\"id\":1,\"event\":\"state\",\"state\":\"running\",\"phase\":null,\"progress\":{{\"done\":0,\"total\":0}}}}\r\n\r\n\
         id: 2\r\nevent: phase\r\ndata:{{\"id\":2,\"event\":\"phase\",\"state\":\"running\",\"phase\":\"ingest\",\"progress\":{{\"done\":0,\"total\":1}}}}\r\n\r\n\
         id: 3\r\nevent: phase\r\ndata: {{\"id\":3,\"event\":\"phase\",\"state\":\"running\",\"phase\":\"compute\",\"progress\":{{\"done\":0,\"total\":1}}}}\r\n\r\n\
         id: 4\r\nevent: state\r\ndata: {{\"id\":4,\"event\":\"state\",\"state\":\"succeeded\",\"phase\":\"compute\",\r\ndata: \"progress\":{{\"done\":1,\"total\":1}},\"job\":{job}}}\r\n\r\n"
    );
    let fake = axum::Router::new()
        .route(
            "/api/metrics/recompute",
            post(move || async move {
                (
                    axum::http::StatusCode::ACCEPTED,
                    axum::Json(json!({"job_id": id, "coalesced": false, "queued": false})),
                )
            }),
        )
        .route(
            "/api/jobs/{id}/events",
            get(move || async move { ([("content-type", "text/event-stream")], stream.clone()) }),
        )
        .route(
            "/api/jobs/{id}",
            get(|| async { axum::http::StatusCode::INTERNAL_SERVER_ERROR }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, fake).await });
    let (code, out, err) = refresh(&format!("http://127.0.0.1:{port}"), &["all"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let ingest = out.find("phase ingest started").expect(&out);
    let compute = out.find("phase compute started").expect(&out);
    assert!(ingest < compute, "{out}");
    assert!(out.contains("succeeded in 2.5s"), "{out}");
}
