//! Keys and projects: keyed mode, read-only keys, and project isolation with every
//! heartbeat route tried using the other project's key.

use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app_with, test_config, TestApp};

const ADMIN: &str = "admin-key-0123456789abcdef";

async fn keyed_app() -> TestApp {
    let mut config = test_config();
    config.admin_key = Some(ADMIN.into());
    config.monitor.loops = false;
    spawn_app_with(config).await
}

async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn new_project(app: &TestApp, name: &str) -> (String, String) {
    let (status, p) = send(
        app,
        reqwest::Method::POST,
        "/api/projects",
        Some(ADMIN),
        Some(json!({"name": name})),
    )
    .await;
    assert_eq!(status, 201, "{p}");
    (
        p["read_write_key"].as_str().unwrap().to_string(),
        p["read_only_key"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn keyed_mode_refuses_a_missing_or_unknown_key_but_pings_and_probes_need_none() {
    let app = keyed_app().await;
    let (status, body) = send(&app, reqwest::Method::GET, "/api/heartbeats", None, None).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), "unauthorized");
    let (status, _) = send(
        &app,
        reqwest::Method::GET,
        "/api/heartbeats",
        Some("hbk_nope"),
        None,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = send(&app, reqwest::Method::GET, "/api/jobs", None, None).await;
    assert_eq!(status, 401, "other areas' routes are keyed too");
    let (rw, _) = new_project(&app, "team").await;
    let (status, hb) = send(
        &app,
        reqwest::Method::POST,
        "/api/heartbeats",
        Some(&rw),
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 201);
    let url = hb["ping_url"].as_str().unwrap();
    let path = &url[url.find("/hb/").unwrap()..];
    assert_eq!(
        app.client.get(app.url(path)).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn only_the_admin_key_manages_projects() {
    let app = keyed_app().await;
    let (rw, ro) = new_project(&app, "team").await;
    for key in [&rw, &ro] {
        let (status, _) = send(
            &app,
            reqwest::Method::POST,
            "/api/projects",
            Some(key),
            Some(json!({"name": "x"})),
        )
        .await;
        assert_eq!(status, 403);
        let (status, _) = send(&app, reqwest::Method::GET, "/api/projects", Some(key), None).await;
        assert_eq!(status, 403);
    }
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        "/api/projects",
        Some(ADMIN),
        Some(json!({"name": "team"})),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    // Keys are stored hashed: neither appears in the database.
    let db = app.db().await;
    let n: i64 = db
        .query_one(
            "SELECT count(*) FROM heartbeat.api_key WHERE encode(key_hash, 'escape') LIKE '%' || $1 || '%'",
            &[&&rw[4..]],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_read_only_key_reads_but_cannot_write() {
    let app = keyed_app().await;
    let (rw, ro) = new_project(&app, "team").await;
    let (_, hb) = send(
        &app,
        reqwest::Method::POST,
        "/api/heartbeats",
        Some(&rw),
        Some(json!({"name": "x"})),
    )
    .await;
    let id = hb["id"].as_str().unwrap();
    let (status, list) = send(
        &app,
        reqwest::Method::GET,
        "/api/heartbeats",
        Some(&ro),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(list["heartbeats"].as_array().unwrap().len(), 1);
    let (status, body) = send(
        &app,
        reqwest::Method::POST,
        "/api/heartbeats",
        Some(&ro),
        Some(json!({"name": "y"})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(error_code(&body), "forbidden");
    let (status, _) = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/heartbeats/{id}"),
        Some(&ro),
        None,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(&app, reqwest::Method::GET, "/api/jobs", Some(&ro), None).await;
    assert_eq!(status, 200, "any valid key may read global resources");
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        "/api/jobs/audit",
        Some(&ro),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_key_never_sees_or_touches_another_projects_heartbeats() {
    let app = keyed_app().await;
    let (alice, alice_ro) = new_project(&app, "alice").await;
    let (bob, bob_ro) = new_project(&app, "bob").await;
    let (_, hb) = send(
        &app,
        reqwest::Method::POST,
        "/api/heartbeats",
        Some(&alice),
        Some(json!({"name": "secret-job"})),
    )
    .await;
    let id = hb["id"].as_str().unwrap();
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        "/api/webhooks",
        Some(&alice),
        Some(json!({"url": "http://127.0.0.1:9/a"})),
    )
    .await;
    assert_eq!(status, 201);
    let (_, hooks) = send(
        &app,
        reqwest::Method::GET,
        "/api/webhooks",
        Some(&alice),
        None,
    )
    .await;
    let hook_id = hooks["webhooks"][0]["id"].as_str().unwrap().to_string();

    for key in [&bob, &bob_ro] {
        let (status, list) = send(
            &app,
            reqwest::Method::GET,
            "/api/heartbeats",
            Some(key),
            None,
        )
        .await;
        assert_eq!(status, 200);
        assert!(list["heartbeats"].as_array().unwrap().is_empty(), "{list}");
        for path in [
            format!("/api/heartbeats/{id}"),
            format!("/api/heartbeats/{id}/pings"),
            format!("/api/heartbeats/{id}/flips"),
        ] {
            let (status, body) = send(&app, reqwest::Method::GET, &path, Some(key), None).await;
            assert_eq!(status, 404, "{path}: {body}");
        }
        let (_, hooks) = send(&app, reqwest::Method::GET, "/api/webhooks", Some(key), None).await;
        assert!(hooks["webhooks"].as_array().unwrap().is_empty());
    }
    let (status, _) = send(
        &app,
        reqwest::Method::PATCH,
        &format!("/api/heartbeats/{id}"),
        Some(&bob),
        Some(json!({"name": "mine"})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/heartbeats/{id}"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/webhooks/{hook_id}"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // Bob may reuse the name: names are per project.
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        "/api/heartbeats",
        Some(&bob),
        Some(json!({"name": "secret-job"})),
    )
    .await;
    assert_eq!(status, 201);
    // Alice's heartbeat is untouched.
    let (status, mine) = send(
        &app,
        reqwest::Method::GET,
        &format!("/api/heartbeats/{id}"),
        Some(&alice_ro),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(mine["name"], "secret-job");
    let (_, hooks) = send(
        &app,
        reqwest::Method::GET,
        "/api/webhooks",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(hooks["webhooks"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn open_mode_acts_on_the_default_project_without_a_key() {
    let mut config = test_config();
    config.monitor.loops = false;
    let app = spawn_app_with(config).await;
    let (status, hb) = app
        .post_json("/api/heartbeats", &json!({"name": "open"}))
        .await;
    assert_eq!(status, 201, "{hb}");
    let db = app.db().await;
    let project: uuid::Uuid = db
        .query_one(
            "SELECT project_id FROM heartbeat.heartbeat WHERE name = 'open'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(project, heartbeat::auth::DEFAULT_PROJECT);
}
