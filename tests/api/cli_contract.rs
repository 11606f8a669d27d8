//! The one exit-code table (README.md, "Exit codes"; `heartbeat::cli::exit`),
//! checked verb by verb against a live daemon: `status`, `schedule`,
//! `project create` (`refresh` has its own file, `cli_refresh.rs`).

use heartbeat::cli::exit;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, spawn_app_with, test_config, TestApp};

const ADMIN: &str = "an-admin-key-of-some-length";

/// Runs the binary with `args` (and `--url` unless `url` is None); returns
/// (exit code, stdout, stderr).
async fn heartbeat(args: &[&str], url: &str) -> (u8, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
        .args(args)
        .args(["--url", url])
        .env_remove("HEARTBEAT_KEY")
        .env_remove("HEARTBEAT_ADMIN_KEY")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1) as u8,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A URL nothing listens on.
fn nowhere() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

async fn keyed_app() -> TestApp {
    let mut config = test_config();
    config.admin_key = Some(ADMIN.into());
    spawn_app_with(config).await
}

#[tokio::test]
async fn status_exits_by_the_table_and_its_json_is_the_apis() {
    let app = spawn_app().await;
    // The daemon's own job heartbeats are created by a background task once it
    // runs; wait for them (bounded), so both reads below see the same list.
    let jobs = heartbeat::monitor::selfcheck::default_schedules().len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (_, list) = app.get_json("/api/heartbeats").await;
        let n = list["heartbeats"].as_array().map_or(0, Vec::len);
        if n >= jobs || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (code, out, err) = heartbeat(&["status", "--json"], &app.address).await;
    assert_eq!(code, exit::SUCCESS, "{err}");
    let printed: Value = serde_json::from_str(&out).unwrap();
    let (_, api) = app.get_json("/api/heartbeats").await;
    assert!(printed["heartbeats"].is_array(), "{out}");
    // The same document; statuses and ping times may move between the two reads.
    let ids = |v: &Value| -> Vec<Value> {
        v["heartbeats"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].clone())
            .collect()
    };
    assert_eq!(ids(&printed), ids(&api));

    let (_, hb) = app
        .post_json(
            "/api/heartbeats",
            &json!({"name": "nightly", "period_seconds": 3600}),
        )
        .await;
    let ping_url = hb["ping_url"].as_str().unwrap();
    let path = &ping_url[ping_url.find("/hb/").unwrap()..];
    let failed = app
        .client
        .get(app.url(&format!("{path}/fail")))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 200);
    let (code, _, err) = heartbeat(&["status", "--fail-on-down"], &app.address).await;
    assert_eq!(code, exit::BAD, "a down heartbeat: {err}");
    let (code, _, _) = heartbeat(&["status"], &app.address).await;
    assert_eq!(
        code,
        exit::SUCCESS,
        "without --fail-on-down a down heartbeat is reported, not an error"
    );

    let (code, _, err) = heartbeat(&["status"], &nowhere()).await;
    assert_eq!(code, exit::USAGE_OR_CONNECTION, "unreachable: {err}");
    let keyed = keyed_app().await;
    let (code, _, err) = heartbeat(&["status"], &keyed.address).await;
    assert_eq!(code, exit::USAGE_OR_CONNECTION, "no key: {err}");
    assert!(err.contains("401"), "{err}");
}

#[tokio::test]
async fn schedule_exits_by_the_table() {
    let app = spawn_app().await;
    let (code, out, err) = heartbeat(&["schedule", "--json"], &app.address).await;
    assert_eq!(code, exit::SUCCESS, "{err}");
    let printed: Value = serde_json::from_str(&out).unwrap();
    let (_, api) = app.get_json("/api/schedule").await;
    assert_eq!(
        printed["entries"].as_array().map(Vec::len),
        api["entries"].as_array().map(Vec::len)
    );
    let (code, _, err) = heartbeat(&["schedule"], &nowhere()).await;
    assert_eq!(code, exit::USAGE_OR_CONNECTION, "unreachable: {err}");
    let keyed = keyed_app().await;
    let (code, _, err) = heartbeat(&["schedule"], &keyed.address).await;
    assert_eq!(code, exit::USAGE_OR_CONNECTION, "no key: {err}");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
        .args(["schedule", "next", "0 0 * * 8"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::USAGE_OR_CONNECTION as i32));
}

#[tokio::test]
async fn project_create_exits_by_the_table() {
    let app = keyed_app().await;
    let with_key = |name: &'static str| {
        let url = app.address.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
                .args(["project", "create", name, "--url", &url])
                .env("HEARTBEAT_ADMIN_KEY", ADMIN)
                .env_remove("HEARTBEAT_KEY")
                .output()
                .await
                .unwrap();
            (
                out.status.code().unwrap_or(-1) as u8,
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (code, err) = with_key("shop").await;
    assert_eq!(code, exit::SUCCESS, "{err}");
    let (code, err) = with_key("shop").await;
    assert_eq!(code, exit::USAGE_OR_CONNECTION, "a taken name: {err}");
    assert!(err.contains("409"), "{err}");
    let (code, _, err) = heartbeat(&["project", "create", "other"], &app.address).await;
    assert_eq!(code, exit::USAGE_OR_CONNECTION, "no key: {err}");
    let (code, _, err) = heartbeat(&["project", "create", "other"], &nowhere()).await;
    assert_eq!(code, exit::USAGE_OR_CONNECTION, "unreachable: {err}");
}

#[tokio::test]
async fn a_bad_argument_exits_with_the_usage_code_for_every_verb() {
    for args in [
        &["status", "--nope"][..],
        &["schedule", "--nope"],
        &["project", "create"],
        &["refresh"],
    ] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
            .args(args)
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(exit::USAGE_OR_CONNECTION as i32),
            "{args:?}"
        );
    }
}

#[tokio::test]
async fn refresh_prints_the_scope_it_asked_for_and_the_jobs_own_duration() {
    let app = spawn_app().await;
    let (code, out, err) = heartbeat(&["refresh", "all", "--metric", "orders"], &app.address).await;
    assert_eq!(code, exit::SUCCESS, "{out}{err}");
    let first = out.lines().next().unwrap_or_default();
    assert!(first.contains("all (metrics: orders): started"), "{out}");
    let (_, jobs) = app.get_json("/api/jobs").await;
    let job = &jobs["jobs"][0];
    let at = |k: &str| chrono::DateTime::parse_from_rfc3339(job[k].as_str().unwrap()).unwrap();
    let took = (at("finished_at") - at("started_at")).num_milliseconds() as f64 / 1000.0;
    let printed = format!("succeeded in {took:.1}s");
    assert!(out.contains(&printed), "want '{printed}' in {out}");
}

#[tokio::test]
async fn every_job_creating_route_takes_no_body_as_all_defaults() {
    let app = spawn_app().await;
    for path in [
        "/api/metrics/recompute",
        "/api/jobs/recompute",
        "/api/jobs/audit",
        "/api/jobs/benchmarks",
        "/api/jobs/segments",
        "/api/jobs/maintenance",
    ] {
        let r = app.client.post(app.url(path)).send().await.unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        assert_eq!(status, 202, "{path}: {body}");
    }
}

#[tokio::test]
async fn the_id_limit_counts_distinct_ids() {
    let app = spawn_app().await;
    let copies = vec!["orders"; 1001];
    let (status, body) = app
        .post_json("/api/metrics/recompute", &json!({"metric_ids": copies}))
        .await;
    assert_eq!(status, 202, "1,001 copies of one id are one id: {body}");
    let job_id = body["job_id"].as_str().unwrap();
    let (_, job) = app.get_json(&format!("/api/jobs/{job_id}")).await;
    assert_eq!(job["scope"], json!(["orders"]), "{job}");
    let distinct: Vec<String> = (0..1001).map(|i| format!("m{i}")).collect();
    let (status, body) = app
        .post_json("/api/metrics/recompute", &json!({"metric_ids": distinct}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1001 ids"),
        "{body}"
    );
}
