//! Alerts: the outbox written with each flip, delivery to a webhook receiver run by
//! the test (signed, retried with backoff, surviving a restart), the daemon's own
//! job heartbeats, and `heartbeat run`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use heartbeat::config::Config;
use heartbeat::jobs::JobKind;
use heartbeat::monitor::{deadline, MonitorConfig};
use heartbeat::notify::outbox as delivery;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, spawn_app_with_bodies, test_config, TestApp};

fn quiet_config() -> Config {
    Config {
        monitor: MonitorConfig {
            loops: false,
            ..MonitorConfig::default()
        },
        ..test_config()
    }
}

/// A webhook receiver that fails the first `failures` requests with 500.
#[derive(Clone, Default)]
struct Receiver {
    failures: Arc<AtomicUsize>,
    seen: Arc<AtomicUsize>,
    accepted: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Receiver {
    async fn start(failures: usize) -> (Self, String) {
        let r = Receiver::default();
        r.failures.store(failures, Ordering::SeqCst);
        let shared = r.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let r = shared.clone();
                async move {
                    r.seen.fetch_add(1, Ordering::SeqCst);
                    let left = r.failures.load(Ordering::SeqCst);
                    if left > 0 {
                        r.failures.store(left - 1, Ordering::SeqCst);
                        return StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    r.accepted.lock().unwrap().push((headers, body));
                    StatusCode::NO_CONTENT
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (r, url)
    }

    fn accepted(&self) -> Vec<Value> {
        self.accepted
            .lock()
            .unwrap()
            .iter()
            .map(|(_, b)| serde_json::from_slice(b).unwrap())
            .collect()
    }
}

async fn create(app: &TestApp, body: Value) -> Value {
    let (status, hb) = app.post_json("/api/heartbeats", &body).await;
    assert_eq!(status, 201, "{hb}");
    hb
}

fn ping_path(hb: &Value) -> String {
    let url = hb["ping_url"].as_str().unwrap();
    url[url.find("/hb/").unwrap()..].to_string()
}

async fn ping(app: &TestApp, path: &str) {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
}

async fn last_ping_at(app: &TestApp, id: &str) -> DateTime<Utc> {
    let (_, hb) = app.get_json(&format!("/api/heartbeats/{id}")).await;
    hb["last_ping_at"].as_str().unwrap().parse().unwrap()
}

async fn add_webhook(app: &TestApp, url: &str, secret: Option<&str>) {
    let (status, body) = app
        .post_json("/api/webhooks", &json!({"url": url, "secret": secret}))
        .await;
    assert_eq!(status, 201, "{body}");
}

/// A heartbeat that was pinged and whose deadline has passed at the returned
/// instant (not yet flipped).
async fn heartbeat_gone_quiet(app: &TestApp) -> (Value, DateTime<Utc>) {
    let hb = create(
        app,
        json!({"name": "cron-job", "period_seconds": 60, "grace_seconds": 30}),
    )
    .await;
    ping(app, &ping_path(&hb)).await;
    let at = last_ping_at(app, hb["id"].as_str().unwrap()).await;
    (hb, at + chrono::Duration::seconds(91))
}

#[tokio::test]
async fn a_flip_writes_one_signed_alert_per_webhook_and_delivery_posts_it() {
    let app = spawn_app_with(quiet_config()).await;
    let (receiver, url) = Receiver::start(0).await;
    add_webhook(&app, &url, Some("s3cret-signing-key")).await;
    let (hb, when) = heartbeat_gone_quiet(&app).await;
    let tick = deadline::run_once(&app.state.pool, when).await.unwrap();
    // The loop first sees it after its deadline: the first success
    // (pending -> up, silent) and the miss (up -> down, one alert).
    assert_eq!((tick.flips, tick.alerts), (2, 1));
    let cfg = &app.state.config.monitor;
    let deliverer = delivery::Deliverer::new(cfg, app.address.clone(), None);
    let done = deliverer.deliver_once(&app.state.pool, when).await.unwrap();
    assert_eq!(done.delivered, 1);
    let accepted = receiver.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1);
    let (headers, body) = &accepted[0];
    let alert: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(alert["event"], "down");
    assert_eq!(alert["heartbeat"]["id"], hb["id"]);
    assert_eq!(alert["heartbeat"]["name"], "cron-job");
    assert!(alert["at"].is_string());
    let signature = headers[delivery::SIGNATURE_HEADER].to_str().unwrap();
    assert_eq!(
        signature,
        format!("sha256={}", delivery::sign("s3cret-signing-key", body))
    );
    // Delivered once: a second pass sends nothing.
    let again = deliverer
        .deliver_once(&app.state.pool, when + chrono::Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(again.delivered, 0);
    // Up again: one more alert.
    ping(&app, &ping_path(&hb)).await;
    let back = last_ping_at(&app, hb["id"].as_str().unwrap()).await;
    deadline::run_once(&app.state.pool, back).await.unwrap();
    deliverer.deliver_once(&app.state.pool, back).await.unwrap();
    let events: Vec<_> = receiver
        .accepted()
        .iter()
        .map(|a| a["event"].clone())
        .collect();
    assert_eq!(events, vec![json!("down"), json!("up")]);
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_alert_on_the_third_attempt_after_backoff() {
    let app = spawn_app_with(quiet_config()).await;
    let (receiver, url) = Receiver::start(2).await;
    add_webhook(&app, &url, None).await;
    let (_, when) = heartbeat_gone_quiet(&app).await;
    deadline::run_once(&app.state.pool, when).await.unwrap();
    let cfg = app.state.config.monitor.clone();
    let deliverer = delivery::Deliverer::new(&cfg, app.address.clone(), None);
    let pass = |now| deliverer.deliver_once(&app.state.pool, now);
    assert_eq!(pass(when).await.unwrap().retrying, 1);
    // Not due again until the backoff has passed.
    let first_retry = when + delivery::backoff(&cfg, 1);
    assert_eq!(
        pass(first_retry - chrono::Duration::seconds(1))
            .await
            .unwrap(),
        Default::default()
    );
    assert_eq!(pass(first_retry).await.unwrap().retrying, 1);
    let second_retry = first_retry + delivery::backoff(&cfg, 2);
    assert_eq!(delivery::backoff(&cfg, 2), delivery::backoff(&cfg, 1) * 2);
    assert_eq!(pass(second_retry).await.unwrap().delivered, 1);
    assert_eq!(receiver.seen.load(Ordering::SeqCst), 3);
    assert_eq!(receiver.accepted().len(), 1);
    let db = app.db().await;
    let row = db
        .query_one(
            "SELECT state, attempts, last_status FROM heartbeat.alert",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "delivered");
    assert_eq!(row.get::<_, i32>(1), 3);
    assert_eq!(row.get::<_, Option<i32>>(2), Some(204));
}

#[tokio::test]
async fn an_alert_flipped_before_a_restart_is_delivered_after_it() {
    let mut first = spawn_app_with(quiet_config()).await;
    let (receiver, url) = Receiver::start(0).await;
    add_webhook(&first, &url, None).await;
    // Real time here: the next daemon's worker runs on the wall clock.
    let hb = create(
        &first,
        json!({"name": "quick", "period_seconds": 1, "grace_seconds": 0}),
    )
    .await;
    ping(&first, &ping_path(&hb)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tick = deadline::run_once(&first.state.pool, Utc::now())
        .await
        .unwrap();
    assert_eq!(tick.alerts, 1);
    first.shut_down().await;
    assert!(receiver.accepted().is_empty());

    // The same database, a new daemon with its loops running.
    let mut config = test_config();
    config.monitor.delivery_interval_ms = 50;
    config.database_url = Some(first.database_url.clone());
    let app = heartbeat::app::Application::build(config, first.database_url.clone())
        .await
        .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    for _ in 0..200 {
        if !receiver.accepted().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1, "delivered exactly once");
    assert_eq!(accepted[0]["heartbeat"]["id"], hb["id"]);
    stop.cancel();
}

#[tokio::test]
async fn with_its_loops_running_the_daemon_flips_and_alerts_on_its_own() {
    let mut config = test_config();
    config.monitor.deadline_interval_ms = 50;
    config.monitor.delivery_interval_ms = 50;
    let app = spawn_app_with(config).await;
    let (receiver, url) = Receiver::start(0).await;
    add_webhook(&app, &url, None).await;
    let hb = create(
        &app,
        json!({"name": "fast", "period_seconds": 1, "grace_seconds": 0}),
    )
    .await;
    ping(&app, &ping_path(&hb)).await;
    for _ in 0..100 {
        if !receiver.accepted().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receiver.accepted()[0]["event"], "down");
    let (_, hb) = app
        .get_json(&format!("/api/heartbeats/{}", hb["id"].as_str().unwrap()))
        .await;
    assert_eq!(hb["status"], "down");
}

#[tokio::test]
async fn webhooks_are_listed_and_deleted() {
    let app = spawn_app_with(quiet_config()).await;
    add_webhook(&app, "http://127.0.0.1:9/hook", Some("x-signing-key-0123")).await;
    let (_, list) = app.get_json("/api/webhooks").await;
    let hooks = list["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0]["has_secret"], true);
    assert!(
        hooks[0].get("secret").is_none(),
        "the secret is never shown"
    );
    let id = hooks[0]["id"].as_str().unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/api/webhooks/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, _) = app
        .post_json("/api/webhooks", &json!({"url": "ftp://x"}))
        .await;
    assert_eq!(status, 422);
    // A secret keys the signature: a short one is refused, and nothing is made.
    let (status, body) = app
        .post_json(
            "/api/webhooks",
            &json!({"url": "http://127.0.0.1:9/hook", "secret": "s3cret"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("secret: at least 16 characters"), "{body}");
    let (_, list) = app.get_json("/api/webhooks").await;
    assert!(list["webhooks"].as_array().unwrap().is_empty(), "{list}");
}

async fn job_heartbeat(app: &TestApp, kind: &str) -> Value {
    for _ in 0..100 {
        let (_, list) = app.get_json("/api/heartbeats").await;
        if let Some(hb) = list["heartbeats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == format!("job:{kind}"))
        {
            return hb.clone();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no job:{kind} heartbeat");
}

async fn wait_status(app: &TestApp, id: &str, status: &str) -> Value {
    for _ in 0..100 {
        let (_, hb) = app.get_json(&format!("/api/heartbeats/{id}")).await;
        if hb["status"] == status {
            return hb;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("heartbeat {id} never became {status}");
}

/// The real audit work until `fail` is set; then a failure naming a source.
struct FailingBody {
    real: Arc<dyn heartbeat::jobs::JobBody>,
    fail: Arc<std::sync::atomic::AtomicBool>,
}

impl heartbeat::jobs::JobBody for FailingBody {
    fn run(
        &self,
        ctx: heartbeat::jobs::JobContext,
    ) -> futures::future::BoxFuture<'static, Result<Value, heartbeat::jobs::JobError>> {
        if !self.fail.load(Ordering::SeqCst) {
            return self.real.run(ctx);
        }
        Box::pin(async {
            Err(heartbeat::jobs::JobError::Failed(
                "source shop unreachable".into(),
            ))
        })
    }
}

#[tokio::test]
async fn each_job_kind_has_a_heartbeat_that_follows_its_cron_entry() {
    let app = spawn_app_with(quiet_config()).await;
    for (kind, schedule) in [
        ("recompute", "17 * * * *"),
        ("benchmarks", "23 4 * * *"),
        ("segments", "30 4 * * *"),
        ("audit", "45 4 * * *"),
    ] {
        let hb = job_heartbeat(&app, kind).await;
        assert_eq!(hb["schedule"], schedule);
        assert_eq!(hb["status"], "pending");
    }
}

#[tokio::test]
async fn a_successful_job_pings_its_heartbeat_and_a_failed_one_turns_it_down() {
    let config = quiet_config();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let body: Arc<dyn heartbeat::jobs::JobBody> = Arc::new(FailingBody {
        real: Arc::new(heartbeat::audit::AuditBody::from_config(&config)),
        fail: fail.clone(),
    });
    let app = spawn_app_with_bodies(config, vec![(JobKind::Audit, body)]).await;
    let hb = job_heartbeat(&app, "audit").await;
    let id = hb["id"].as_str().unwrap();
    let (status, r) = app.post_json("/api/jobs/audit", &json!({})).await;
    assert_eq!(status, 202, "{r}");
    wait_status(&app, id, "up").await;
    fail.store(true, Ordering::SeqCst);
    let (status, _) = app.post_json("/api/jobs/audit", &json!({})).await;
    assert_eq!(status, 202);
    wait_status(&app, id, "down").await;
    let (_, pings) = app.get_json(&format!("/api/heartbeats/{id}/pings")).await;
    let last = &pings["pings"][0];
    assert_eq!(last["kind"], "fail");
    assert!(
        last["body"]
            .as_str()
            .unwrap()
            .contains("source shop unreachable"),
        "{last}"
    );
    let tick = deadline::run_once(&app.state.pool, Utc::now())
        .await
        .unwrap();
    assert!(tick.flips >= 1);
}

#[tokio::test]
async fn heartbeat_run_pings_start_and_the_exit_code_with_the_output_tail() {
    let app = spawn_app_with(quiet_config()).await;
    let hb = create(&app, json!({"name": "wrapped"})).await;
    let url = app.url(&ping_path(&hb));
    let command: Vec<String> = ["sh", "-c", "echo hello from the job; echo oops >&2; exit 3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let code = heartbeat::monitor::client::run(&url, &command).await;
    assert_eq!(code, 3, "the command's exit code passes through");
    let (_, pings) = app
        .get_json(&format!(
            "/api/heartbeats/{}/pings",
            hb["id"].as_str().unwrap()
        ))
        .await;
    let pings = pings["pings"].as_array().unwrap();
    assert_eq!(pings.len(), 2);
    assert_eq!(pings[1]["kind"], "start");
    assert_eq!(pings[0]["kind"], "fail");
    assert_eq!(pings[0]["exit_code"], 3);
    assert_eq!(pings[0]["rid"], pings[1]["rid"]);
    assert!(pings[0]["duration_ms"].is_i64());
    let body = pings[0]["body"].as_str().unwrap();
    assert!(
        body.contains("hello from the job") && body.contains("oops"),
        "{body}"
    );
}

#[tokio::test]
async fn heartbeat_run_keeps_the_exit_code_when_pings_fail() {
    let command: Vec<String> = ["sh", "-c", "exit 0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let quick = Duration::from_millis(10);
    let run = heartbeat::monitor::client::run_with_retry;
    assert_eq!(
        run("http://127.0.0.1:9/hb/hb_AAAAAAAAAAAAAAAA", &command, quick).await,
        0
    );
    let failing: Vec<String> = ["sh", "-c", "exit 7"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        run("http://127.0.0.1:9/hb/hb_AAAAAAAAAAAAAAAA", &failing, quick).await,
        7
    );
    let missing = vec!["/no/such/command".to_string()];
    assert_eq!(run("http://127.0.0.1:9/hb/x", &missing, quick).await, 127);
}

#[tokio::test]
async fn heartbeat_status_reports_whether_any_heartbeat_is_down() {
    let app = spawn_app_with(quiet_config()).await;
    let hb = create(&app, json!({"name": "gate"})).await;
    ping(&app, &ping_path(&hb)).await;
    let status = heartbeat::monitor::client::status;
    assert!(!status(&app.address, None, false).await.unwrap());
    ping(&app, &format!("{}/fail", ping_path(&hb))).await;
    assert!(status(&app.address, None, true).await.unwrap());
    let table =
        heartbeat::monitor::client::status_table(&[json!({"status": "down", "name": "gate"})]);
    assert!(table.lines().nth(1).unwrap().starts_with("down"), "{table}");
}
