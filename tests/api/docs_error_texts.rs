//! Error texts the docs quote are the code's: each quote is looked up verbatim in
//! its doc, then the error is produced for real and must match it, where `...`
//! or `…` in the quote stands for any text and a few named parts (a database
//! name, a port, a user) are the test's own.

use std::time::Duration;

use serde_json::{json, Value};

use crate::first_hour::{readyz_reason, tcp_url};
use crate::helpers::{spawn_app_with, test_config, TestApp};

/// The text of `doc` (a path under the repository), which must quote `text`.
fn quote(doc: &str, text: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(doc);
    let body = std::fs::read_to_string(&path).unwrap();
    // Quotes may be wrapped over two lines in the Markdown source.
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains(text),
        "{doc} no longer quotes `{text}`: update the quote here and there together"
    );
    text.to_string()
}

/// Whether `actual` is `quoted`, with `...`/`…` matching anything.
fn matches(quoted: &str, actual: &str) -> bool {
    let pattern = regex::escape(quoted)
        .replace(r"\.\.\.", ".*")
        .replace('…', ".*");
    regex::Regex::new(&format!("^{pattern}$"))
        .unwrap()
        .is_match(actual)
}

fn assert_quoted(quoted: &str, actual: &str) {
    assert!(
        matches(quoted, actual),
        "the doc quotes\n  {quoted}\nthe code says\n  {actual}"
    );
}

#[test]
fn the_matcher_takes_ellipses_as_any_text() {
    assert!(matches("a: ... (b)", "a: x y z (b)"));
    assert!(matches("a: … (b)", "a: q (b)"));
    assert!(!matches("a: ... (b)", "a: x (c)"));
}

#[tokio::test]
async fn the_readyz_reasons_in_api_md_are_the_daemons() {
    let doc = "docs/api.md";
    let missing = quote(
        doc,
        r#"database unreachable: database "shop" does not exist (SQLSTATE 3D000)"#,
    );
    let reason = readyz_reason(crate::helpers::database_url("shop")).await;
    assert_quoted(&missing, &reason);

    let password = quote(
        doc,
        r#"database unreachable: password authentication failed for user "heartbeat" (SQLSTATE 28P01)"#,
    );
    let url = tcp_url("postgres", "not-the-password");
    let user = url
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("user="))
        .unwrap()
        .to_string();
    let reason = readyz_reason(url).await;
    assert_quoted(
        &password.replace(r#"user "heartbeat""#, &format!(r#"user "{user}""#)),
        &reason,
    );

    let refused = quote(
        doc,
        "database unreachable: error connecting to server: Connection refused (os error 111) (server 127.0.0.1:5432)",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reason = readyz_reason(format!(
        "host=127.0.0.1 port={port} user=x password=y dbname=z"
    ))
    .await;
    assert_quoted(
        &refused.replace("127.0.0.1:5432", &format!("127.0.0.1:{port}")),
        &reason,
    );
}

/// `heartbeat migrate --config` on a file holding `toml`: its stderr.
async fn config_refusal(toml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("heartbeat.toml");
    std::fs::write(&path, toml).unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
        .arg("migrate")
        .arg("--config")
        .arg(&path)
        .env("DATABASE_URL", "host=127.0.0.1 port=1 dbname=unused")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "a config error exits 2");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

#[tokio::test]
async fn the_config_errors_in_configuration_md_are_the_binarys() {
    let doc = "docs/configuration.md";
    let cron = quote(
        doc,
        r#"heartbeat: invalid configuration: schedule.entries.nightly.cron: day-of-week: … (value: "0 3 * * funday")"#,
    );
    let said = config_refusal(
        "[schedule.entries.nightly]\njob = \"recompute\"\ncron = \"0 3 * * funday\"\n",
    )
    .await;
    assert_quoted(&cron, &said);

    let source = quote(doc, r#"sources[1] (name = "shop"): missing field `url`"#);
    let said = config_refusal(
        "[[sources]]\nname = \"demo\"\nkind = \"demo\"\n\n[[sources]]\nname = \"shop\"\nkind = \"http_json\"\n",
    )
    .await;
    assert_quoted(
        &format!("heartbeat: invalid configuration: {source}"),
        &said,
    );

    let pings = quote(doc, "monitor.pings_kept: must be between 1 and 100000");
    let said = config_refusal("[monitor]\npings_kept = 0\n").await;
    assert_quoted(&format!("heartbeat: invalid configuration: {pings}"), &said);
}

async fn finished_job(app: &TestApp, job_id: &str) -> Value {
    let id = job_id.parse().unwrap();
    tokio::time::timeout(Duration::from_secs(60), app.state.jobs.wait_finished(id))
        .await
        .expect("the job finishes")
        .expect("the job is known");
    let (status, job) = app.get_json(&format!("/api/jobs/{job_id}")).await;
    assert_eq!(status, 200, "{job}");
    job
}

/// A daemon whose cuts directory holds `files`, after one audit job: its error.
async fn audit_error(files: &[(&str, &str)], timeout_secs: f64) -> String {
    let cuts = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(cuts.path().join(name), text).unwrap();
    }
    let mut config = test_config();
    config.audit.cuts_dir = Some(cuts.path().to_path_buf());
    config.audit.statement_timeout_secs = timeout_secs;
    let app = spawn_app_with(config).await;
    let (status, job) = app.post_json("/api/jobs/audit", &json!({})).await;
    assert_eq!(status, 202, "{job}");
    let job = finished_job(&app, job["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    job["error"].as_str().unwrap().to_string()
}

const BAD_WINDOW: &str =
    "-- title: Top clients\n-- description: x\n-- description: y\n-- windows: 24h, 3x\nSELECT 1 AS one\n";

#[tokio::test]
async fn the_audit_errors_the_docs_quote_are_the_jobs() {
    let one = quote(
        "docs/operations/deploying-audit-cuts.md",
        "phase snapshots: 1 audit cut failed: top_clients (top_clients.sql: line 4: '3x' is not a window: ...)",
    );
    let said = audit_error(&[("top_clients.sql", BAD_WINDOW)], 30.0).await;
    assert_quoted(&one, &said);

    let two = quote(
        "docs/api.md",
        "phase snapshots: 2 audit cuts failed: odd (odd.sql: line 3: ...); slow/7d (timed out: ...)",
    );
    let said = audit_error(
        &[
            (
                "odd.sql",
                "-- title: Odd\n-- description: x\n-- windows: 3x\nSELECT 1 AS one\n",
            ),
            (
                "slow.sql",
                "-- title: Slow\n-- windows: 7d\nSELECT pg_sleep(5) IS NULL AS slept\n",
            ),
        ],
        0.5,
    )
    .await;
    assert_quoted(&two, &said);
}

#[tokio::test]
async fn the_cannot_migrate_yet_log_line_names_the_cause_as_readyz_does() {
    let doc = quote(
        "docs/api.md",
        "The daemon's `cannot migrate yet` log line and `heartbeat migrate` say the same.",
    );
    assert!(!doc.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("daemon.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _daemon = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
        .arg("serve")
        .current_dir(dir.path())
        .env(
            "DATABASE_URL",
            crate::helpers::database_url("no_such_database_for_the_log"),
        )
        .env("HEARTBEAT_BIND", format!("127.0.0.1:{port}"))
        .env("HEARTBEAT_NO_SCHEDULER", "1")
        .env("HEARTBEAT_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env_remove("HEARTBEAT_CONFIG")
        .env_remove("HEARTBEAT_ADMIN_KEY")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let cause = r#"database "no_such_database_for_the_log" does not exist (SQLSTATE 3D000)"#;
    let mut line = None;
    for _ in 0..200 {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        line = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["message"] == "cannot migrate yet"
                    || v["fields"]["message"] == "cannot migrate yet"
            });
        if line.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line = line.unwrap_or_else(|| {
        panic!(
            "no 'cannot migrate yet' line:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert!(
        line.to_string().contains(&cause.replace('"', "\\\"")),
        "{line}"
    );
    // /readyz says the same once its own check has run (polled: it may still
    // be on its first attempt).
    let mut reason = Value::Null;
    for _ in 0..200 {
        reason = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        if reason["reason"]
            .as_str()
            .unwrap_or_default()
            .contains(cause)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/readyz never named the cause: {reason}");
}
