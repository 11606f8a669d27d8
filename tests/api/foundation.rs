//! The HTTP basics every route relies on: probes, the error envelope, limits.

use crate::helpers::{error_code, spawn_app, spawn_app_with, test_config};

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_reports_the_schema_version_once_migrated() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["schema_version"],
        heartbeat::db::migrate::latest_version()
    );
}

#[tokio::test]
async fn migrations_are_recorded_and_idempotent() {
    let app = spawn_app().await;
    let mut db = app.db().await;
    let again = heartbeat::db::migrate::run(&mut db).await.unwrap();
    assert!(again.is_empty(), "nothing left to apply: {again:?}");
    let n: i64 = db
        .query_one("SELECT count(*) FROM heartbeat.schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n as usize, heartbeat::db::migrate::MIGRATIONS.len());
}

#[tokio::test]
async fn an_unknown_route_gets_the_json_envelope() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/api/no-such-thing").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "not_found");
}

#[tokio::test]
async fn a_wrong_method_gets_the_json_envelope() {
    let app = spawn_app().await;
    let r = app.client.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(error_code(&body), "method_not_allowed");
}

#[tokio::test]
async fn readyz_is_503_with_a_reason_when_the_database_is_unreachable() {
    let mut config = test_config();
    config.bind = "127.0.0.1:0".parse().unwrap();
    // Port 1 on loopback: nothing listens there.
    let url = "host=127.0.0.1 port=1 user=nobody dbname=nothing".to_string();
    config.database_url = Some(url.clone());
    let app = heartbeat::app::Application::build(config, url)
        .await
        .unwrap();
    let port = app.port();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(stop.clone()));
    let r = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["reason"].as_str().unwrap().contains("unreachable"),
        "{body}"
    );
    // Liveness does not depend on the database.
    let r = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    stop.cancel();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_is_graceful_and_bounded() {
    let app = spawn_app_with(test_config()).await;
    app.stop.cancel();
    let done = tokio::time::timeout(std::time::Duration::from_secs(10), app.server).await;
    assert!(done.is_ok(), "shutdown finished within the timeout");
}
