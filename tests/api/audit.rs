//! Audit cuts: registry sync, snapshots, failure isolation, the read API, and the
//! deploy script that refreshes them.

use std::path::Path;

use heartbeat::jobs::{JobBody, JobContext, JobKind, Scope};
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app_with, test_config, TestApp};
use crate::segments::{ensure_event_table, insert_events, insert_named_events, run_job};

const EVENTS_PER_CLIENT: &str = "\
-- title: Events per client
-- description: How busy each client was.
-- windows: 24h, 7d
SELECT client_id, count(*) AS events
FROM heartbeat.event
WHERE occurred_at >= $1 AND occurred_at < $2
GROUP BY client_id
ORDER BY events DESC, client_id;
";

const CONSTANT: &str = "\
-- title: Constant
-- windows: 30d
SELECT 1 AS one, 'x' AS letter -- a trailing comment
";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// An app whose cuts directory is a fresh temp dir, with a short statement timeout.
async fn app_with_cuts_dir(dir: &Path) -> TestApp {
    let mut config = test_config();
    config.audit.cuts_dir = Some(dir.to_path_buf());
    config.audit.statement_timeout_secs = 0.5;
    config.audit.max_rows = 100;
    let app = spawn_app_with(config).await;
    ensure_event_table(&app.db().await).await;
    app
}

fn ids(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

async fn snapshot_keys(app: &TestApp) -> Vec<(String, String)> {
    app.db()
        .await
        .query(
            "SELECT cut_id, window_label FROM heartbeat.audit_cut_snapshot ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn keys(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn registry_sync_follows_cut_files_being_added_changed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "per_client.sql", EVENTS_PER_CLIENT);
    write(dir.path(), "constant.sql", CONSTANT);
    let app = app_with_cuts_dir(dir.path()).await;

    let job = run_job(&app, "audit").await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let phases: Vec<&str> = job["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["sync", "snapshots"]);
    assert_eq!(
        ids(&job["result"]["sync"]["added"]),
        ["constant", "per_client"]
    );
    assert_eq!(
        snapshot_keys(&app).await,
        keys(&[
            ("constant", "30d"),
            ("per_client", "24h"),
            ("per_client", "7d")
        ])
    );

    // Change per_client (new title, 24h window dropped), remove constant, add fresh.
    write(
        dir.path(),
        "per_client.sql",
        &EVENTS_PER_CLIENT
            .replace("Events per client", "Busy clients")
            .replace("24h, 7d", "7d"),
    );
    std::fs::remove_file(dir.path().join("constant.sql")).unwrap();
    write(
        dir.path(),
        "fresh.sql",
        &CONSTANT.replace("Constant", "Fresh"),
    );

    let job = run_job(&app, "audit").await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let sync = &job["result"]["sync"];
    assert_eq!(ids(&sync["added"]), ["fresh"]);
    assert_eq!(ids(&sync["changed"]), ["per_client"]);
    assert_eq!(ids(&sync["removed"]), ["constant"]);
    assert_eq!(job["phases"][0]["detail"], *sync);
    assert_eq!(
        snapshot_keys(&app).await,
        keys(&[("fresh", "30d"), ("per_client", "7d")])
    );

    let (status, list) = app.get_json("/api/audit/cuts").await;
    assert_eq!(status, 200, "{list}");
    let cuts = list["cuts"].as_array().unwrap();
    assert_eq!(cuts.len(), 2);
    assert_eq!(cuts[1]["cut_id"], "per_client");
    assert_eq!(cuts[1]["title"], "Busy clients");
    assert_eq!(cuts[1]["windows"][0]["window"], "7d");
    assert!(cuts[1]["windows"][0]["age_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(cuts[1]["windows"][0]["stale"], false);

    // A third run with nothing changed reports every cut unchanged.
    let job = run_job(&app, "audit").await;
    assert_eq!(
        ids(&job["result"]["sync"]["unchanged"]),
        ["fresh", "per_client"]
    );
}

#[tokio::test]
async fn a_snapshot_holds_the_cut_rows_as_json_with_the_window_it_covered() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "per_client.sql", EVENTS_PER_CLIENT);
    let app = app_with_cuts_dir(dir.path()).await;
    let db = app.db().await;
    insert_events(&db, "acme", 3, 2, 1.0).await;
    insert_events(&db, "globex", 1, 2, 1.0).await;
    insert_events(&db, "initech", 5, 72, 1.0).await; // only inside 7d

    let job = run_job(&app, "audit").await;
    assert_eq!(job["state"], "succeeded", "{job}");

    let (status, day) = app.get_json("/api/audit/cuts/per_client?window=24h").await;
    assert_eq!(status, 200, "{day}");
    assert_eq!(day["window"], "24h");
    assert_eq!(day["columns"], json!(["client_id", "events"]));
    assert_eq!(
        day["rows"],
        json!([{"client_id": "acme", "events": 3}, {"client_id": "globex", "events": 1}])
    );
    assert_eq!(day["row_count"], 2);
    let start: chrono::DateTime<chrono::Utc> =
        day["window_start"].as_str().unwrap().parse().unwrap();
    let end: chrono::DateTime<chrono::Utc> = day["window_end"].as_str().unwrap().parse().unwrap();
    assert_eq!(end - start, chrono::Duration::hours(24));

    // No window given: the cut's first.
    let (_, first) = app.get_json("/api/audit/cuts/per_client").await;
    assert_eq!(first["window"], "24h");

    let (_, week) = app.get_json("/api/audit/cuts/per_client?window=7d").await;
    assert_eq!(
        week["rows"][0],
        json!({"client_id": "initech", "events": 5})
    );
    assert_eq!(week["row_count"], 3);
}

#[tokio::test]
async fn a_cut_with_a_sql_error_or_a_timeout_is_named_and_the_other_cuts_still_run() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a_broken.sql",
        "-- title: Broken\n-- windows: 7d\nSELECT * FROM heartbeat.no_such_table",
    );
    write(dir.path(), "b_good.sql", CONSTANT);
    write(
        dir.path(),
        "c_slow.sql",
        "-- title: Slow\n-- windows: 24h\nSELECT pg_sleep(5) AS slept",
    );
    write(
        dir.path(),
        "d_writer.sql",
        "-- title: Writer\n-- windows: 24h\nSELECT cut_id FROM heartbeat.audit_cut_registry FOR UPDATE",
    );
    write(
        dir.path(),
        "e_huge.sql",
        "-- title: Huge\n-- windows: 24h\nSELECT n FROM generate_series(1, 101) AS n",
    );
    write(
        dir.path(),
        "f_at_limit.sql",
        "-- title: At the limit\n-- windows: 24h\nSELECT n FROM generate_series(1, 100) AS n ORDER BY n DESC",
    );
    let app = app_with_cuts_dir(dir.path()).await;

    let job = run_job(&app, "audit").await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("4 audit cuts failed"), "{error}");
    assert!(
        error.contains("e_huge/24h (returned more than 100 rows (audit.max_rows)"),
        "{error}"
    );
    assert!(error.contains("a_broken/7d (SQL error 42P01"), "{error}");
    assert!(error.contains("c_slow/24h (timed out"), "{error}");
    assert!(error.contains("d_writer/24h (SQL error 25006"), "{error}");
    assert!(!error.contains("b_good"), "{error}");
    assert!(!error.contains("f_at_limit"), "{error}");

    let failed = job["result"]["snapshots"]["failed"].as_array().unwrap();
    let named: Vec<&str> = failed
        .iter()
        .map(|f| f["cut_id"].as_str().unwrap())
        .collect();
    assert_eq!(named, ["a_broken", "c_slow", "d_writer", "e_huge"]);
    assert!(failed[0]["error"]
        .as_str()
        .unwrap()
        .contains("no_such_table"));
    assert_eq!(job["phases"][1]["detail"]["failed"], json!(failed));
    assert_eq!(job["progress"], json!({"done": 6, "total": 6}));

    // The good cut got its snapshot; the broken one is registered but pending.
    let (status, good) = app.get_json("/api/audit/cuts/b_good?window=30d").await;
    assert_eq!(status, 200, "{good}");
    assert_eq!(good["rows"], json!([{"one": 1, "letter": "x"}]));
    let (_, at_limit) = app.get_json("/api/audit/cuts/f_at_limit").await;
    assert_eq!(at_limit["row_count"], 100);
    assert_eq!(
        at_limit["rows"][0],
        json!({"n": 100}),
        "the cut's order is kept"
    );
    let (status, pending) = app.get_json("/api/audit/cuts/a_broken?window=7d").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&pending), "snapshot_pending");
}

#[tokio::test]
async fn a_bad_window_is_rejected_at_sync_naming_the_file_and_other_cuts_still_sync() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "good.sql", CONSTANT);
    write(
        dir.path(),
        "odd_window.sql",
        "-- title: Odd\n-- windows: 7d, 3x\nSELECT 1 AS one",
    );
    let app = app_with_cuts_dir(dir.path()).await;

    let job = run_job(&app, "audit").await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("odd_window.sql: line 2: '3x' is not a window"),
        "{error}"
    );
    let sync = &job["result"]["sync"];
    assert_eq!(ids(&sync["added"]), ["good"]);
    assert_eq!(sync["failed"][0]["cut_id"], "odd_window");
    assert_eq!(job["phases"][0]["detail"]["failed"], sync["failed"]);
    assert_eq!(snapshot_keys(&app).await, keys(&[("good", "30d")]));
    let (status, body) = app.get_json("/api/audit/cuts/odd_window").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "unknown_cut");
}

#[tokio::test]
async fn audit_404s_say_whether_the_cut_the_window_or_the_snapshot_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "per_client.sql", EVENTS_PER_CLIENT);
    let app = app_with_cuts_dir(dir.path()).await;

    let (status, body) = app.get_json("/api/audit/cuts/per_client?window=7d").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "unknown_cut");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no audit cut 'per_client'"));

    // Registered (sync ran on its own) but not computed yet.
    let mut client = app.state.pool.get().await.unwrap();
    let disk = heartbeat::audit::registry::scan(dir.path()).unwrap();
    let ctx = JobContext::detached(JobKind::Audit, Scope::All, app.state.pool.clone());
    heartbeat::audit::registry::sync(&mut client, &disk, &ctx)
        .await
        .unwrap();
    let (status, body) = app.get_json("/api/audit/cuts/per_client?window=7d").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "snapshot_pending");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("awaits its first refresh"));
    let (_, list) = app.get_json("/api/audit/cuts").await;
    assert_eq!(list["cuts"][0]["windows"][0]["computed_at"], Value::Null);

    let (status, body) = app.get_json("/api/audit/cuts/per_client?window=3d").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "unknown_window");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("its windows are 24h, 7d"));
}

#[tokio::test]
async fn a_missing_cuts_directory_fails_the_job_without_emptying_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "constant.sql", CONSTANT);
    let app = app_with_cuts_dir(dir.path()).await;
    assert_eq!(run_job(&app, "audit").await["state"], "succeeded");

    let body = heartbeat::audit::AuditBody {
        cuts_dir: dir.path().join("not-there"),
        statement_timeout: std::time::Duration::from_secs(1),
        max_rows: 10,
    };
    let ctx = JobContext::detached(JobKind::Audit, Scope::All, app.state.pool.clone());
    let err = body.run(ctx).await.unwrap_err();
    assert!(err.to_string().contains("not-there"), "{err}");
    assert_eq!(snapshot_keys(&app).await, keys(&[("constant", "30d")]));
}

#[tokio::test]
async fn the_demo_cuts_sync_and_compute_over_the_event_table() {
    let mut config = test_config();
    config.audit.cuts_dir = None; // <definitions_dir>/cuts: the repo's sql/cuts
    let app = spawn_app_with(config).await;
    let db = app.db().await;
    ensure_event_table(&db).await;
    insert_named_events(&db, "acme", "order", 4, 1, 50.0).await;
    insert_named_events(&db, "globex", "order", 1, 1, 20.0).await;
    insert_named_events(&db, "globex", "payment_failed", 3, 1, 1.0).await;
    insert_named_events(&db, "globex", "page_view", 7, 1, 1.0).await;

    let job = run_job(&app, "audit").await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        ids(&job["result"]["sync"]["added"]),
        ["event_mix", "payment_failures", "top_clients"]
    );
    assert_eq!(job["progress"]["total"], 7);
    let (_, top) = app.get_json("/api/audit/cuts/top_clients?window=24h").await;
    assert_eq!(top["rows"][0]["client_id"], "acme");
    assert_eq!(top["rows"][0]["revenue"], 200.0);
    assert_eq!(top["rows"][1]["page_views"], 7);
    let (_, failures) = app
        .get_json("/api/audit/cuts/payment_failures?window=7d")
        .await;
    assert_eq!(
        failures["rows"],
        json!([{"client_id": "globex", "failed_payments": 3, "orders": 1, "failure_rate": 0.75}])
    );
    let (_, mix) = app.get_json("/api/audit/cuts/event_mix?window=24h").await;
    assert_eq!(mix["rows"][0]["name"], "page_view");
    assert_eq!(mix["rows"][0]["events"], 7);
}

#[test]
fn deploy_sh_dry_run_prints_every_step_in_order_without_running_them() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("bash")
        .arg(format!("{root}/deploy/deploy.sh"))
        .arg("--dry-run")
        .env("HEARTBEAT_URL", "http://127.0.0.1:8123")
        .env("HEARTBEAT_BIN", "/nonexistent/heartbeat")
        .current_dir(root)
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps = [
        "useradd --system",
        "install -m 0755 /nonexistent/heartbeat /usr/local/bin/heartbeat",
        "/usr/local/share/heartbeat/definitions",
        "/usr/local/bin/heartbeat migrate",
        "systemctl daemon-reload",
        "systemctl restart heartbeat.service",
        "http://127.0.0.1:8123/readyz",
        "/usr/local/bin/heartbeat refresh audit --trigger deploy --url http://127.0.0.1:8123 --timeout 10m",
    ];
    let mut from = 0;
    for step in steps {
        let at = stdout[from..]
            .find(step)
            .unwrap_or_else(|| panic!("step '{step}' missing or out of order in:\n{stdout}"));
        from += at + step.len();
    }
    // Nothing ran: every step line is marked as a dry run.
    assert!(stdout.lines().filter(|l| l.starts_with("+ ")).count() >= steps.len());

    let typo = std::process::Command::new("bash")
        .arg(format!("{root}/deploy/deploy.sh"))
        .arg("--dryrun")
        .output()
        .unwrap();
    assert_eq!(
        typo.status.code(),
        Some(2),
        "an unknown flag must not deploy"
    );
    assert!(typo.stdout.is_empty());
}

#[tokio::test]
async fn cancelling_an_audit_job_stops_its_running_cut_on_the_server() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "sleepy.sql",
        "-- title: Sleepy\n-- windows: 24h\nSELECT pg_sleep(60) AS slept",
    );
    let mut config = test_config();
    config.audit.cuts_dir = Some(dir.path().to_path_buf());
    config.audit.statement_timeout_secs = 120.0;
    let app = spawn_app_with(config).await;
    let db = app.db().await;
    let sleeping = "SELECT count(*) FROM pg_stat_activity
                    WHERE state = 'active' AND query LIKE '%pg_sleep(60)%'
                      AND pid <> pg_backend_pid()";

    let (_, submitted) = app
        .post_json("/api/jobs/audit", &json!({"trigger": "user"}))
        .await;
    let id = submitted["job_id"].as_str().unwrap().to_string();
    let mut started = false;
    // Bounded, generous: on a loaded machine the job may take seconds to start.
    for _ in 0..1200 {
        let n: i64 = db.query_one(sleeping, &[]).await.unwrap().get(0);
        if n > 0 {
            started = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(started, "the cut never started");

    let (status, _) = app
        .post_json(&format!("/api/jobs/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(status, 202);
    let job = app
        .state
        .jobs
        .wait_finished(id.parse().unwrap())
        .await
        .unwrap();
    let job = serde_json::to_value(job).unwrap();
    assert_eq!(job["state"], "cancelled", "{job}");
    // The server ends a cancelled statement and updates pg_stat_activity on its
    // own schedule; well under a second, given a few on a loaded machine. A cut
    // left running would stay there for its whole 60 s.
    let mut n: i64 = 1;
    for _ in 0..200 {
        n = db.query_one(sleeping, &[]).await.unwrap().get(0);
        if n == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(n, 0, "the cut's statement still runs on the server");
    assert!(snapshot_keys(&app).await.is_empty());
}

#[test]
fn deploy_sh_installs_definitions_whole_then_migrates_restarts_and_refreshes_audit() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let log = root.join("calls.log");
    let stub = |path: &Path, body: &str| {
        std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(path)
            .status()
            .unwrap();
    };
    // The source tree being deployed: one cut and the unit.
    let src = root.join("src");
    std::fs::create_dir_all(src.join("sql/cuts")).unwrap();
    std::fs::create_dir_all(src.join("deploy")).unwrap();
    std::fs::write(src.join("sql/cuts/new_cut.sql"), CONSTANT).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/heartbeat.service"),
        src.join("deploy/heartbeat.service"),
    )
    .unwrap();
    // A previous deploy left a cut that is gone from the source.
    let defs = root.join("defs");
    std::fs::create_dir_all(defs.join("cuts")).unwrap();
    std::fs::write(defs.join("cuts/old_cut.sql"), CONSTANT).unwrap();
    // Stand-ins for the binary, systemctl and curl record how they were called.
    let bin_dir = root.join("stubs");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let record = format!("echo \"$(basename \"$0\") $*\" >> {}", log.display());
    stub(&src.join("heartbeat"), &record);
    stub(&bin_dir.join("systemctl"), &record);
    stub(&bin_dir.join("curl"), &record);
    std::fs::create_dir_all(root.join("prefix/bin")).unwrap();
    std::fs::create_dir_all(root.join("units")).unwrap();
    std::fs::write(
        root.join("env"),
        "DATABASE_URL=postgres://db.example/heartbeat\n",
    )
    .unwrap();

    let user = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .unwrap()
        .unwrap()
        .name;
    let out = std::process::Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/deploy.sh"))
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .env("HEARTBEAT_SRC", &src)
        .env("HEARTBEAT_BIN", src.join("heartbeat"))
        .env("HEARTBEAT_PREFIX", root.join("prefix"))
        .env("HEARTBEAT_DEFINITIONS_DIR", &defs)
        .env("HEARTBEAT_CONFIG", root.join("absent.toml"))
        .env("HEARTBEAT_ENV_FILE", root.join("env"))
        .env("HEARTBEAT_UNIT_DIR", root.join("units"))
        .env("HEARTBEAT_USER", &user)
        .env("HEARTBEAT_URL", "http://127.0.0.1:8124")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    assert!(defs.join("cuts/new_cut.sql").exists());
    assert!(
        !defs.join("cuts/old_cut.sql").exists(),
        "a removed cut file stays deployed"
    );
    assert!(root.join("prefix/bin/heartbeat").exists());
    assert!(root.join("units/heartbeat.service").exists());
    let calls = std::fs::read_to_string(&log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(
        calls,
        [
            "heartbeat migrate",
            "systemctl daemon-reload",
            "systemctl restart heartbeat.service",
            "curl -fsS -o /dev/null http://127.0.0.1:8124/readyz",
            "heartbeat refresh audit --trigger deploy --url http://127.0.0.1:8124 --timeout 10m",
        ]
    );
}

#[tokio::test]
async fn in_demo_mode_the_first_recompute_is_followed_by_audit_and_segment_snapshots() {
    let mut config = test_config();
    config.demo = Some(true);
    let app = spawn_app_with(config).await;
    let db = app.db().await;
    ensure_event_table(&db).await;
    insert_named_events(&db, "acme", "order", 2, 1, 10.0).await;

    let recompute = run_job(&app, "recompute").await;
    assert_eq!(recompute["state"], "succeeded", "{recompute}");
    let mut cuts = Value::Null;
    for _ in 0..200 {
        let (_, list) = app.get_json("/api/audit/cuts").await;
        let computed = list["cuts"].as_array().is_some_and(|cuts| {
            cuts.len() == 3
                && cuts.iter().all(|c| {
                    c["windows"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|w| !w["computed_at"].is_null())
                })
        });
        if computed {
            cuts = list;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!cuts.is_null(), "the demo cuts were not filled");
    let mut day = Value::Null;
    for _ in 0..200 {
        let (status, body) = app.get_json("/api/segments").await;
        if status == 200 {
            day = body;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let clients = day["clients"].as_array().expect("a segment snapshot");
    assert!(clients.iter().any(|c| c["client_id"] == "acme"), "{day}");
}
