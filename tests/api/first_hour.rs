//! The first hour of a new user: the built binary, started outside the source
//! tree with no flags about definitions, serves the demo metrics and cuts; and
//! `heartbeat init` writes files that a daemon then computes.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::fresh_database;

/// A `heartbeat serve` process whose working directory is `cwd` (outside the
/// repository), on a free port, with its log in `<cwd>/daemon.log`. Killed on drop.
async fn daemon_in(
    cwd: &Path,
    database_url: &str,
    data_dir: &Path,
    definitions: Option<&Path>,
) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(cwd.join("daemon.log")).unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"));
    cmd.arg("serve")
        .current_dir(cwd)
        .env("DATABASE_URL", database_url)
        .env("HEARTBEAT_DATA_DIR", data_dir)
        .env("HEARTBEAT_BIND", format!("127.0.0.1:{port}"))
        .env("HEARTBEAT_NO_SCHEDULER", "1")
        .env_remove("HEARTBEAT_DEFINITIONS_DIR")
        .env_remove("HEARTBEAT_CONFIG")
        .env_remove("HEARTBEAT_ADMIN_KEY")
        .env("HEARTBEAT_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    if let Some(dir) = definitions {
        cmd.env("HEARTBEAT_DEFINITIONS_DIR", dir);
    }
    let child = cmd.spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..400 {
        if let Ok(r) = reqwest::get(format!("{url}/readyz")).await {
            if r.status() == 200 {
                return (child, url);
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let log = std::fs::read_to_string(cwd.join("daemon.log")).unwrap_or_default();
    panic!("the daemon on {url} did not become ready:\n{log}");
}

/// Runs the binary in `cwd` with `args`; returns (exit code, stdout, stderr).
async fn heartbeat(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
        .current_dir(cwd)
        .args(args)
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

async fn get(url: &str) -> Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The JSON log line with this `message`.
fn log_line(cwd: &Path, message: &str) -> Value {
    let log = std::fs::read_to_string(cwd.join("daemon.log")).unwrap();
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == message || l["message"] == message)
        .unwrap_or_else(|| panic!("no log line '{message}' in:\n{log}"))
}

fn field<'a>(line: &'a Value, name: &str) -> &'a Value {
    if line["fields"].is_object() {
        &line["fields"][name]
    } else {
        &line[name]
    }
}

#[tokio::test]
async fn started_outside_the_repository_the_binary_serves_the_embedded_demo() {
    let cwd = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let db = fresh_database().await;
    let (_daemon, url) = daemon_in(cwd.path(), &db, data.path(), None).await;

    let loaded = log_line(cwd.path(), "definitions loaded");
    assert_eq!(field(&loaded, "source"), "embedded demo", "{loaded}");
    assert_eq!(field(&loaded, "metrics"), 7, "{loaded}");
    assert_eq!(field(&loaded, "cuts"), 3, "{loaded}");

    for what in ["all", "audit"] {
        let (code, out, err) = heartbeat(
            cwd.path(),
            &["refresh", what, "--url", &url, "--timeout", "2m"],
        )
        .await;
        assert_eq!(code, 0, "refresh {what}: {out}{err}");
    }
    let metrics = get(&format!("{url}/api/metrics")).await;
    assert_eq!(metrics["metrics"].as_array().unwrap().len(), 7, "{metrics}");
    let cuts = get(&format!("{url}/api/audit/cuts")).await;
    assert_eq!(cuts["cuts"].as_array().unwrap().len(), 3, "{cuts}");
    let heartbeats = get(&format!("{url}/api/heartbeats")).await;
    for hb in heartbeats["heartbeats"].as_array().unwrap() {
        let name = hb["name"].as_str().unwrap_or_default();
        if name.starts_with("job:") {
            assert_ne!(hb["status"], "down", "{hb}");
        }
    }
}

#[tokio::test]
async fn init_writes_examples_a_daemon_then_computes() {
    let cwd = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let (code, out, err) = heartbeat(cwd.path(), &["init", "mydefs"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("mydefs/metrics/example_events.sql"), "{out}");
    let (code, _, err) = heartbeat(cwd.path(), &["init", "mydefs"]).await;
    assert_eq!(code, 1, "a second init must not overwrite");
    assert!(err.contains("already exists"), "{err}");

    // A relative HEARTBEAT_DEFINITIONS_DIR is the working directory's.
    let db = fresh_database().await;
    let (_daemon, url) = daemon_in(cwd.path(), &db, data.path(), Some(Path::new("mydefs"))).await;
    let loaded = log_line(cwd.path(), "definitions loaded");
    assert_eq!(field(&loaded, "source"), "definitions_dir", "{loaded}");
    assert_eq!(
        field(&loaded, "dir").as_str().unwrap(),
        cwd.path().join("mydefs").display().to_string()
    );
    for what in ["all", "audit"] {
        let (code, out, err) = heartbeat(
            cwd.path(),
            &["refresh", what, "--url", &url, "--timeout", "2m"],
        )
        .await;
        assert_eq!(code, 0, "refresh {what}: {out}{err}");
    }
    let metrics = get(&format!("{url}/api/metrics")).await;
    assert_eq!(metrics["metrics"][0]["id"], "example_events", "{metrics}");
    let cuts = get(&format!("{url}/api/audit/cuts")).await;
    assert_eq!(
        cuts["cuts"][0]["cut_id"], "example_busiest_clients",
        "{cuts}"
    );
}

#[tokio::test]
async fn an_empty_definitions_directory_is_a_warning_naming_it() {
    let cwd = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let empty = cwd.path().join("nothing-here");
    let db = fresh_database().await;
    let (_daemon, _url) = daemon_in(cwd.path(), &db, data.path(), Some(&empty)).await;
    let log = std::fs::read_to_string(cwd.path().join("daemon.log")).unwrap();
    let warning = log
        .lines()
        .find(|l| l.contains("the metrics directory is missing"))
        .unwrap_or_else(|| panic!("no warning in:\n{log}"));
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains(&empty.join("metrics").display().to_string()),
        "{warning}"
    );
}

/// The `/readyz` reason of a daemon built on `database_url`, once it names the
/// database (the first attempts may still be under way).
pub(crate) async fn readyz_reason(database_url: String) -> String {
    let mut config = crate::helpers::test_config();
    config.database_url = Some(database_url.clone());
    let app = heartbeat::app::Application::build(config, database_url)
        .await
        .unwrap();
    let url = format!("http://127.0.0.1:{}/readyz", app.port());
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(stop.clone()));
    let mut last = Value::Null;
    for _ in 0..100 {
        let r = reqwest::get(&url).await.unwrap();
        assert_eq!(r.status(), 503);
        last = r.json().await.unwrap();
        if last["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("database")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    let _ = server.await;
    assert_eq!(last["reason"], last["error"]["message"], "{last}");
    last["reason"].as_str().unwrap_or_default().to_string()
}

/// The test server over TCP, as `user:password@127.0.0.1:port/dbname` would name it.
pub(crate) fn tcp_url(dbname: &str, password: &str) -> String {
    let config: tokio_postgres::Config = crate::helpers::database_url("postgres").parse().unwrap();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_string(),
    };
    format!(
        "host={host} port={} user={} password={password} dbname={dbname}",
        config.get_ports().first().copied().unwrap_or(5432),
        config.get_user().unwrap_or("postgres"),
    )
}

#[tokio::test]
async fn readyz_says_which_database_does_not_exist() {
    let reason = readyz_reason(crate::helpers::database_url("no_such_database_here")).await;
    assert!(
        reason.contains(r#"database "no_such_database_here" does not exist"#),
        "{reason}"
    );
    assert!(reason.contains("3D000"), "{reason}");
}

#[tokio::test]
async fn readyz_says_the_password_was_refused() {
    let reason = readyz_reason(tcp_url("postgres", "not-the-password")).await;
    assert!(
        reason.contains("password authentication failed"),
        "{reason}"
    );
    assert!(reason.contains("28P01"), "{reason}");
}

#[tokio::test]
async fn readyz_names_the_server_that_refused_the_connection() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("host=127.0.0.1 port={port} user=x password=y dbname=z");
    let reason = readyz_reason(url).await;
    assert!(
        reason.to_lowercase().contains("connection refused"),
        "{reason}"
    );
    assert!(reason.contains(&format!("127.0.0.1:{port}")), "{reason}");
}

#[tokio::test]
async fn migrate_names_the_missing_database_and_exits_1() {
    let cwd = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
        .current_dir(cwd.path())
        .arg("migrate")
        .env(
            "DATABASE_URL",
            crate::helpers::database_url("no_such_database_here"),
        )
        .env_remove("HEARTBEAT_CONFIG")
        .output()
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(r#"database "no_such_database_here" does not exist"#),
        "{err}"
    );
}

#[tokio::test]
async fn a_repeated_migrate_prints_only_its_result() {
    let db = fresh_database().await;
    for _ in 0..2 {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
            .arg("migrate")
            .env("DATABASE_URL", &db)
            .env("RUST_LOG", "info")
            .env_remove("HEARTBEAT_CONFIG")
            .output()
            .await
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(stdout.starts_with("schema at version"), "{stdout}");
        assert!(
            !stdout.contains("NOTICE") && !stderr.contains("NOTICE"),
            "{stdout}{stderr}"
        );
        assert!(!stderr.contains("already exists"), "{stderr}");
    }
}
