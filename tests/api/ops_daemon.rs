//! The daemon as systemd and a log shipper see it: the real binary, with
//! `NOTIFY_SOCKET` pointed at a datagram socket this test owns; its JSON log
//! lines; the self-ping to an outside monitor.

use std::os::unix::net::UnixDatagram;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::get;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{fresh_database, spawn_app_with, test_config};

const ADMIN_KEY: &str = "ops-test-admin-key-9f8e7d6c5b4a";
const DB_PASSWORD: &str = "hunter2-db-password";

/// A `heartbeat serve` child process and the lines of its stderr.
struct Daemon {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    address: String,
}

impl Daemon {
    /// Starts the binary with JSON logs against a fresh database (reached over the
    /// test cluster's trusted unix socket, so the password in the DSN is only
    /// there to be kept out of the logs).
    async fn start(envs: &[(&str, String)]) -> Daemon {
        let url = format!("{} password={DB_PASSWORD}", fresh_database().await);
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"));
        cmd.arg("serve")
            .args([
                "--bind",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--no-scheduler",
            ])
            .args([
                "--definitions-dir",
                concat!(env!("CARGO_MANIFEST_DIR"), "/sql"),
            ])
            .env("DATABASE_URL", &url)
            .env("HEARTBEAT_ADMIN_KEY", ADMIN_KEY)
            .env("RUST_LOG", "info")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("HEARTBEAT_CONFIG")
            .env_remove("HEARTBEAT_SELF_PING_URL")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the binary starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        let stderr = child.stderr.take().unwrap();
        tokio::spawn({
            let lines = lines.clone();
            async move {
                let mut addr_tx = Some(addr_tx);
                let mut reader = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    if let Ok(v) = serde_json::from_str::<Value>(&line) {
                        if v["message"] == "listening" {
                            if let Some(tx) = addr_tx.take() {
                                let _ = tx.send(v["addr"].as_str().unwrap_or("").to_string());
                            }
                        }
                    }
                    lines.lock().unwrap().push(line);
                }
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(30), addr_rx)
            .await
            .unwrap_or_else(|_| panic!("no 'listening' line: {:?}", lines.lock().unwrap()))
            .unwrap();
        Daemon {
            child,
            lines,
            address: format!("http://{addr}"),
        }
    }

    /// SIGTERM, then waits for a clean exit.
    async fn stop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the daemon exits after SIGTERM")
            .unwrap();
        assert!(status.success(), "exit status {status}");
        // Let the reader drain the last lines.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

/// Receives one notify datagram, or None after `within`.
async fn recv(sock: &tokio::net::UnixDatagram, within: Duration) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(within, sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test]
async fn the_daemon_tells_systemd_ready_then_watchdog_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_nonblocking(true).unwrap();
    let sock = tokio::net::UnixDatagram::from_std(sock).unwrap();
    let mut daemon = Daemon::start(&[
        ("NOTIFY_SOCKET", path.display().to_string()),
        ("WATCHDOG_USEC", "300000".to_string()),
    ])
    .await;

    let first = recv(&sock, Duration::from_secs(30)).await.expect("READY=1");
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    // READY means migrated: readiness answers 200 straight away.
    let ready = reqwest::get(format!("{}/readyz", daemon.address))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    let mut watchdogs = 0;
    while watchdogs < 3 {
        let msg = recv(&sock, Duration::from_secs(2))
            .await
            .expect("WATCHDOG=1 about every 150 ms");
        assert!(!msg.contains("STOPPING"), "{msg:?}");
        watchdogs += msg.lines().filter(|l| *l == "WATCHDOG=1").count();
    }

    daemon.stop().await;
    let mut stopping = false;
    while let Some(msg) = recv(&sock, Duration::from_millis(500)).await {
        stopping |= msg.lines().any(|l| l == "STOPPING=1");
    }
    assert!(stopping, "STOPPING=1 on shutdown");
}

#[tokio::test]
async fn json_logs_carry_job_fields_and_never_the_key_or_the_database_password() {
    let mut daemon = Daemon::start(&[]).await;
    let client = reqwest::Client::new();
    let submitted: Value = client
        .post(format!("{}/api/jobs/benchmarks", daemon.address))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = submitted["job_id"].as_str().expect("a job id").to_string();
    for _ in 0..100 {
        let job: Value = client
            .get(format!("{}/api/jobs/{id}", daemon.address))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["finished_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.stop().await;

    let log = daemon.log();
    let mut job_lines = 0;
    // docs/operations/supervision.md ("Logs"): the engine's lines about a job
    // carry job_id, kind, phase and node as top-level fields.
    let engine_lines = [
        "job started",
        "follow-up started",
        "phase started",
        "job finished",
        "cron tick absorbed by the running job",
        "cron tick absorbed by a job on another node",
        "could not publish the finished job",
    ];
    let mut engine_seen = std::collections::BTreeSet::new();
    for line in &log {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if v["job_id"] == id.as_str() {
            let message = v["message"].as_str().unwrap_or_default();
            if engine_lines.contains(&message) {
                engine_seen.insert(message.to_string());
                for field in ["kind", "phase", "node"] {
                    assert!(v[field].is_string(), "no top-level {field}: {line}");
                }
            }
        }
        assert!(!line.contains(ADMIN_KEY), "the admin key leaked: {line}");
        assert!(
            !line.contains(DB_PASSWORD),
            "the DB password leaked: {line}"
        );
        if v["message"] == "job finished" && v["job_id"] == id.as_str() {
            job_lines += 1;
            assert_eq!(v["kind"], "benchmarks", "{line}");
            assert!(v["phase"].is_string(), "{line}");
            assert!(v["node"].is_string(), "{line}");
        }
    }
    assert_eq!(job_lines, 1, "one 'job finished' line: {log:#?}");
    for message in ["job started", "phase started", "job finished"] {
        assert!(
            engine_seen.contains(message),
            "no '{message}' line: {log:#?}"
        );
    }
    let db_line = log
        .iter()
        .find(|l| l.contains("using database"))
        .expect("the database is named at start");
    assert!(db_line.contains("password=***"), "{db_line}");
}

/// A writer the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A webhook with `secret` inserted straight into the database, as another
/// node (or this daemon before a restart) would have made it, and a heartbeat
/// that has just failed, so the deadline loop writes an alert for that webhook
/// and this daemon's delivery worker claims it. Returns once an attempt is
/// recorded.
async fn deliver_to_a_webhook_made_elsewhere(app: &crate::helpers::TestApp, secret: &str) {
    let db = app.db().await;
    db.execute(
        "INSERT INTO heartbeat.channel (channel_id, project_id, name, kind, config)
         SELECT gen_random_uuid(), project_id, 'webhook', 'webhook',
                jsonb_build_object('url', 'http://127.0.0.1:9/hook', 'secret', $1::text)
         FROM heartbeat.project WHERE name = 'default'",
        &[&secret],
    )
    .await
    .unwrap();
    let (status, hb) = app
        .post_json("/api/heartbeats", &serde_json::json!({"name": "fails"}))
        .await;
    assert_eq!(status, 201, "{hb}");
    let url = hb["ping_url"].as_str().unwrap();
    let fail = format!("{}/fail", &url[url.find("/hb/").unwrap()..]);
    let r = app.client.get(app.url(&fail)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    for _ in 0..200 {
        let attempts: i64 = db
            .query_one(
                "SELECT count(*) FROM heartbeat.alert a JOIN heartbeat.channel c USING (channel_id)
                 WHERE c.config->>'secret' = $1 AND a.attempts > 0",
                &[&secret],
            )
            .await
            .unwrap()
            .get(0);
        if attempts > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the delivery worker never tried the webhook");
}

#[tokio::test]
async fn the_log_writer_masks_webhook_secrets_keys_and_dsn_passwords_in_any_field() {
    use heartbeat::ops::redact::{register_secret, Redacting};
    // Webhook secrets are masked wherever they appear, not only after a
    // `"secret":` key: one created through the API, one the delivery worker
    // loaded from the database. Unique per run, since the registry is
    // process-wide.
    let created = format!("wh-created-{}", uuid::Uuid::new_v4().simple());
    let loaded = format!("wh-loaded-{}", uuid::Uuid::new_v4().simple());
    let mut config = test_config();
    config.monitor.deadline_interval_ms = 50;
    config.monitor.delivery_interval_ms = 50;
    let app = spawn_app_with(config).await;
    let (status, hook) = app
        .post_json(
            "/api/webhooks",
            &serde_json::json!({"url": "https://hooks.example/created", "secret": created}),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    deliver_to_a_webhook_made_elsewhere(&app, &loaded).await;

    let out = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(Redacting({
            let out = out.clone();
            move || out.clone()
        }))
        .finish();
    register_secret("hbk_project_key_4242424242");
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!(
            url = "postgres://heartbeat:pg-pass-777@db:5432/heartbeat",
            "cannot connect"
        );
        tracing::info!(
            webhook = %serde_json::json!({"url": "https://hooks.example/x", "secret": "whsec_abcdef123"}),
            "webhook created"
        );
        tracing::info!(auth = "Bearer hbk_project_key_4242424242", "request");
        tracing::info!(dsn = "host=db user=hb password=kv-pass-888", "config");
        tracing::info!(signing_key = %created, "signing an alert");
        tracing::warn!(error = %format!("hmac over {loaded} failed"), "delivery");
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    for secret in [
        "pg-pass-777",
        "whsec_abcdef123",
        "hbk_project_key_4242424242",
        "kv-pass-888",
        created.as_str(),
        loaded.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert!(text.contains("https://hooks.example/x"), "{text}");
    assert!(text.contains("hmac over *** failed"), "{text}");
    assert!(
        text.contains("postgres://heartbeat:***@db:5432/heartbeat"),
        "{text}"
    );
    for line in text.lines() {
        serde_json::from_str::<Value>(line).expect("still JSON after masking");
    }
}

/// An outside monitor that counts pings.
async fn outside_monitor() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let router = axum::Router::new().route(
        "/ping/{id}",
        get({
            let hits = hits.clone();
            move || async move {
                hits.fetch_add(1, Ordering::SeqCst);
                "OK"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{addr}/ping/abc"), hits)
}

#[tokio::test]
async fn the_daemon_self_pings_while_healthy_and_goes_silent_when_a_loop_stalls() {
    let (url, hits) = outside_monitor().await;
    let mut config = test_config();
    config.ops.self_ping_url = Some(url);
    config.ops.self_ping_interval_secs = 1;
    let app = spawn_app_with(config).await;
    for _ in 0..60 {
        if hits.load(Ordering::SeqCst) >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        hits.load(Ordering::SeqCst) >= 2,
        "pings every second while healthy"
    );

    // A watched loop that never beats again: the daemon stops vouching for itself.
    let _stuck = app
        .state
        .liveness
        .register("deadline", Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let silent_from = hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        silent_from,
        "no ping while a loop is stalled"
    );
}

#[tokio::test]
async fn a_deleted_webhooks_secret_is_dropped_from_the_log_redactor() {
    use heartbeat::ops::redact::scrub;
    let secret = format!("wh-deleted-{}", uuid::Uuid::new_v4().simple());
    let app = spawn_app_with(test_config()).await;
    let (status, hook) = app
        .post_json(
            "/api/webhooks",
            &serde_json::json!({"url": "https://hooks.example/gone", "secret": secret}),
        )
        .await;
    assert_eq!(status, 201, "{hook}");
    assert_eq!(scrub(&format!("x {secret}")), "x ***");
    let id = hook["id"].as_str().unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/api/webhooks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Nothing holds the secret any more: the redactor does not keep it either.
    assert_eq!(scrub(&format!("x {secret}")), format!("x {secret}"));
}
