//! healthchecks.io's ping URLs, as its documentation describes them
//! (healthchecks.io/docs/http_api/, /docs/autoprovisioning/): every form and
//! suffix, the answers' texts and headers, `?create=1`, and a job wrapped the
//! way `runitor` wraps it.

use heartbeat::config::Config;
use heartbeat::hc::HcConfig;
use heartbeat::monitor::MonitorConfig;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, test_config, TestApp};

fn quiet_config() -> Config {
    Config {
        monitor: MonitorConfig {
            loops: false,
            ..MonitorConfig::default()
        },
        ..test_config()
    }
}

async fn create(app: &TestApp, name: &str) -> Value {
    let (status, hb) = app
        .post_json("/api/heartbeats", &json!({ "name": name }))
        .await;
    assert_eq!(status, 201, "{hb}");
    hb
}

async fn send(app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::Response {
    app.client
        .request(method, app.url(path))
        .send()
        .await
        .unwrap()
}

async fn get(app: &TestApp, path: &str) -> (u16, String) {
    let r = send(app, reqwest::Method::GET, path).await;
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn pings(app: &TestApp, hb: &Value) -> Vec<Value> {
    let (status, body) = app
        .get_json(&format!(
            "/api/heartbeats/{}/pings",
            hb["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body["pings"].as_array().unwrap().clone()
}

async fn status(app: &TestApp, hb: &Value) -> String {
    let (_, body) = app
        .get_json(&format!("/api/heartbeats/{}", hb["id"].as_str().unwrap()))
        .await;
    body["status"].as_str().unwrap().to_string()
}

/// The default project's ping key, as `GET /api/projects` shows it.
async fn default_ping_key(app: &TestApp) -> String {
    let (status, body) = app.get_json("/api/projects").await;
    assert_eq!(status, 200, "{body}");
    let default = body["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "default")
        .expect("the default project is listed")
        .clone();
    let key = default["ping_key"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 22, "{key}");
    key
}

#[tokio::test]
async fn every_heartbeat_has_a_uuid_that_pings_it_with_every_suffix() {
    let app = spawn_app_with(quiet_config()).await;
    let hb = create(&app, "nightly").await;
    let uuid = hb["uuid"].as_str().expect("heartbeat JSON shows its uuid");
    assert_ne!(
        uuid,
        hb["id"].as_str().unwrap(),
        "the ping UUID is not the id"
    );
    for (suffix, kind) in [
        ("", "success"),
        ("/", "success"),
        ("/start", "start"),
        ("/log", "log"),
        ("/fail", "fail"),
        ("/0", "success"),
        ("/1", "fail"),
        ("/255", "fail"),
    ] {
        let r = send(&app, reqwest::Method::GET, &format!("/ping/{uuid}{suffix}")).await;
        assert_eq!(r.status(), 200, "{suffix}");
        assert_eq!(r.headers()["ping-body-limit"], "16384");
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        assert_eq!(r.text().await.unwrap(), "OK", "{suffix}");
        assert_eq!(pings(&app, &hb).await[0]["kind"], kind, "{suffix}");
    }
    let codes: Vec<Value> = pings(&app, &hb)
        .await
        .iter()
        .take(3)
        .map(|p| p["exit_code"].clone())
        .collect();
    assert_eq!(codes, vec![json!(255), json!(1), json!(0)]);

    let r = send(&app, reqwest::Method::HEAD, &format!("/ping/{uuid}")).await;
    assert_eq!(r.status(), 200);
    let r = send(&app, reqwest::Method::POST, &format!("/ping/{uuid}")).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        pings(&app, &hb).await.len(),
        10,
        "HEAD and POST are pings too"
    );
    assert_eq!(status(&app, &hb).await, "up");
}

#[tokio::test]
async fn uuid_urls_answer_healthchecks_io_errors() {
    let app = spawn_app_with(quiet_config()).await;
    let hb = create(&app, "nightly").await;
    let uuid = hb["uuid"].as_str().unwrap();
    assert_eq!(
        get(&app, &format!("/ping/{uuid}/256")).await,
        (400, "invalid url format".into())
    );
    assert_eq!(
        get(&app, &format!("/ping/{uuid}?rid=not-a-uuid")).await,
        (400, "invalid uuid format".into())
    );
    let r = send(
        &app,
        reqwest::Method::GET,
        &format!("/ping/{}", uuid::Uuid::new_v4()),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.text().await.unwrap(), "not found");
    assert!(pings(&app, &hb).await.is_empty());

    // A deleted heartbeat's UUID, pinged before (so remembered), is not found.
    assert_eq!(get(&app, &format!("/ping/{uuid}")).await.0, 200);
    let r = send(
        &app,
        reqwest::Method::DELETE,
        &format!("/api/heartbeats/{}", hb["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        get(&app, &format!("/ping/{uuid}")).await,
        (404, "not found".into())
    );
}

#[tokio::test]
async fn the_body_is_kept_up_to_the_announced_limit_and_the_rid_times_the_run() {
    let app = spawn_app_with(quiet_config()).await;
    let hb = create(&app, "backup").await;
    let uuid = hb["uuid"].as_str().unwrap();
    let rid = uuid::Uuid::new_v4();
    let r = app
        .client
        .post(app.url(&format!("/ping/{uuid}/start?rid={rid}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let big = "x".repeat(20_000);
    let r = app
        .client
        .post(app.url(&format!("/ping/{uuid}?rid={rid}")))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let limit: usize = r.headers()["ping-body-limit"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let last = &pings(&app, &hb).await[0];
    assert_eq!(last["body"].as_str().unwrap().len(), limit);
    assert_eq!(last["rid"], rid.to_string());
    assert!(last["duration_ms"].is_i64(), "{last}");
}

#[tokio::test]
async fn existing_heartbeats_got_distinct_uuids_and_slugs_by_migration() {
    let app = spawn_app_with(quiet_config()).await;
    // The daemon's own job heartbeats predate the migration. They are created
    // by a background task once the daemon runs: wait for them (bounded), as a
    // loaded machine may take a while.
    let db = app.db().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (all, distinct, unslugged) = loop {
        let row = db
            .query_one(
                "SELECT count(*), count(DISTINCT ping_uuid), count(*) FILTER (WHERE slug = '')
                 FROM heartbeat.heartbeat",
                &[],
            )
            .await
            .unwrap();
        let counts: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
        if counts.0 > 0 || std::time::Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(all > 0);
    assert_eq!(all, distinct);
    assert_eq!(unslugged, 0);
}

#[tokio::test]
async fn slug_urls_ping_by_project_ping_key_and_slug() {
    let app = spawn_app_with(quiet_config()).await;
    let key = default_ping_key(&app).await;
    let hb = create(&app, "Nightly Backup").await;
    assert_eq!(hb["slug"], "nightly-backup");
    for (suffix, kind) in [
        ("", "success"),
        ("/start", "start"),
        ("/log", "log"),
        ("/fail", "fail"),
        ("/0", "success"),
        ("/123", "fail"),
    ] {
        let r = send(
            &app,
            reqwest::Method::GET,
            &format!("/ping/{key}/nightly-backup{suffix}"),
        )
        .await;
        assert_eq!(r.status(), 200, "{suffix}");
        assert_eq!(r.headers()["access-control-allow-origin"], "*");
        assert_eq!(r.headers()["ping-body-limit"], "16384");
        assert_eq!(r.text().await.unwrap(), "OK");
        assert_eq!(pings(&app, &hb).await[0]["kind"], kind, "{suffix}");
    }
    let r = app
        .client
        .post(app.url(&format!("/ping/{key}/nightly-backup")))
        .body("hello world")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(pings(&app, &hb).await[0]["body"], "hello world");
    let r = send(
        &app,
        reqwest::Method::HEAD,
        &format!("/ping/{key}/nightly-backup"),
    )
    .await;
    assert_eq!(r.status(), 200);

    assert_eq!(
        get(&app, &format!("/ping/{key}/nightly-backup/256")).await,
        (400, "invalid url format".into())
    );
    assert_eq!(
        get(&app, &format!("/ping/{key}/Nightly-Backup")).await,
        (400, "invalid url format".into())
    );
    assert_eq!(
        get(&app, &format!("/ping/{key}/nightly-backup?rid=x")).await,
        (400, "invalid uuid format".into())
    );
    assert_eq!(
        get(&app, &format!("/ping/{key}/missing")).await,
        (404, "not found".into())
    );
    assert_eq!(
        get(&app, "/ping/rrrrrrrrrrrrrrrrrrrrrr/nightly-backup").await,
        (404, "not found".into())
    );

    // Renaming derives a new slug (healthchecks.io's v1/v2 rule).
    let r = app
        .client
        .patch(app.url(&format!("/api/heartbeats/{}", hb["id"].as_str().unwrap())))
        .json(&json!({"name": "DB dump"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let renamed: Value = r.json().await.unwrap();
    assert_eq!(renamed["slug"], "db-dump");
    assert_eq!(get(&app, &format!("/ping/{key}/db-dump")).await.0, 200);
    assert_eq!(
        get(&app, &format!("/ping/{key}/nightly-backup")).await.0,
        404
    );
}

#[tokio::test]
async fn two_heartbeats_with_one_slug_make_the_slug_url_ambiguous() {
    let app = spawn_app_with(quiet_config()).await;
    let key = default_ping_key(&app).await;
    let a = create(&app, "foo bar").await;
    let b = create(&app, "foo-bar").await;
    assert_eq!(a["slug"], b["slug"]);
    assert_eq!(
        get(&app, &format!("/ping/{key}/foo-bar")).await,
        (409, "ambiguous slug".into())
    );
    assert!(pings(&app, &a).await.is_empty());
    assert!(pings(&app, &b).await.is_empty());
}

#[tokio::test]
async fn create_1_provisions_a_missing_check_once_within_twice_the_limit() {
    let mut config = quiet_config();
    config.monitor.max_heartbeats_per_project = 1;
    let app = spawn_app_with(config).await;
    let key = default_ping_key(&app).await;
    let url = format!("/ping/{key}/does-not-exist");
    assert_eq!(get(&app, &url).await, (404, "not found".into()));
    let r = send(&app, reqwest::Method::GET, &format!("{url}?create=1")).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert_eq!(r.text().await.unwrap(), "Created");
    assert_eq!(
        get(&app, &format!("{url}?create=1")).await,
        (200, "OK".into())
    );

    let (_, list) = app.get_json("/api/heartbeats").await;
    let created = list["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["slug"] == "does-not-exist")
        .expect("created")
        .clone();
    assert_eq!(created["name"], "does-not-exist");
    assert_eq!(created["period_seconds"], 86_400);
    assert_eq!(created["grace_seconds"], 3_600);
    assert_eq!(created["status"], "up");
    assert_eq!(pings(&app, &created).await.len(), 2);

    // A start ping may create too; a project may go to twice its limit so.
    assert_eq!(
        get(&app, &format!("/ping/{key}/second/start?create=1")).await,
        (201, "Created".into())
    );
    assert_eq!(
        get(&app, &format!("/ping/{key}/third?create=1")).await,
        (404, "not found".into())
    );
    assert_eq!(
        get(&app, "/ping/rrrrrrrrrrrrrrrrrrrrrr/new?create=1").await,
        (404, "not found".into())
    );
}

#[tokio::test]
async fn new_projects_show_their_ping_key() {
    let app = spawn_app_with(quiet_config()).await;
    let (status, project) = app
        .post_json("/api/projects", &json!({"name": "team"}))
        .await;
    assert_eq!(status, 201, "{project}");
    let key = project["ping_key"].as_str().unwrap();
    assert_eq!(key.len(), 22);
    assert!(key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
}

#[tokio::test]
async fn the_ping_prefix_is_configurable() {
    let config = Config {
        hc: HcConfig {
            ping_prefix: "/hc/ping".into(),
        },
        ..quiet_config()
    };
    let app = spawn_app_with(config).await;
    let hb = create(&app, "nightly").await;
    let uuid = hb["uuid"].as_str().unwrap();
    assert_eq!(
        get(&app, &format!("/hc/ping/{uuid}/start")).await,
        (200, "OK".into())
    );
    assert_eq!(pings(&app, &hb).await.len(), 1);
    assert_eq!(get(&app, &format!("/ping/{uuid}")).await.0, 404);
    // The rest of the daemon is where it was.
    assert_eq!(app.get_json("/api/heartbeats").await.0, 200);
    let token_path = hb["ping_url"].as_str().unwrap();
    let token_path = &token_path[token_path.find("/hb/").unwrap()..];
    assert_eq!(get(&app, token_path).await.0, 200);
}

/// What `runitor` does (its README): a start ping with a fresh run id, the
/// command, then a ping to `/<exit-status>` with the same rid and the output's
/// last 10,000 bytes as the body.
async fn runitor(app: &TestApp, base: &str, output: &str, exit: i32) -> u16 {
    let rid = uuid::Uuid::new_v4();
    let r = app
        .client
        .post(app.url(&format!("{base}/start?rid={rid}")))
        .header("user-agent", "runitor/v1.3.0 (+https://bdd.fi/x/runitor)")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tail = &output[output.len().saturating_sub(10_000)..];
    let r = app
        .client
        .post(app.url(&format!("{base}/{exit}?rid={rid}")))
        .header("user-agent", "runitor/v1.3.0 (+https://bdd.fi/x/runitor)")
        .body(tail.to_string())
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

#[tokio::test]
async fn a_job_wrapped_like_runitor_ends_up_or_down() {
    let app = spawn_app_with(quiet_config()).await;
    let ok = create(&app, "rsync").await;
    let output = format!("{}\nsent 12 files\n", "line\n".repeat(5_000));
    let base = format!("/ping/{}", ok["uuid"].as_str().unwrap());
    assert_eq!(runitor(&app, &base, &output, 0).await, 200);
    assert_eq!(status(&app, &ok).await, "up");
    let finish = &pings(&app, &ok).await[0];
    assert_eq!(finish["kind"], "success");
    assert_eq!(finish["exit_code"], 0);
    assert!(finish["duration_ms"].is_i64());
    assert!(finish["body"]
        .as_str()
        .unwrap()
        .ends_with("sent 12 files\n"));
    assert_eq!(finish["body"].as_str().unwrap().len(), 10_000);

    let key = default_ping_key(&app).await;
    let failing = create(&app, "pg-dump").await;
    let base = format!("/ping/{key}/pg-dump");
    assert_eq!(runitor(&app, &base, "pg_dump: error\n", 3).await, 200);
    assert_eq!(status(&app, &failing).await, "down");
    let finish = &pings(&app, &failing).await[0];
    assert_eq!(finish["kind"], "fail");
    assert_eq!(finish["exit_code"], 3);
    assert_eq!(finish["body"], "pg_dump: error\n");
}
