//! Detection rules as a user meets them, under a controlled clock (one
//! deadline-loop iteration at a chosen `now`): the daemon's own job heartbeats
//! that cannot be switched off by accident, failure and recovery thresholds, and
//! tags.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use heartbeat::monitor::deadline;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app_with, TestApp};

// The monitor tests' quiet daemon and heartbeat helpers.
use crate::monitor::{create, get_hb, quiet_app, quiet_config};

async fn patch(app: &TestApp, id: &str, body: Value) -> (u16, Value) {
    let r = app
        .client
        .patch(app.url(&format!("/api/heartbeats/{id}")))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn delete(app: &TestApp, id: &str) -> (u16, Value) {
    let r = app
        .client
        .delete(app.url(&format!("/api/heartbeats/{id}")))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn ping_path(hb: &Value) -> String {
    let url = hb["ping_url"].as_str().unwrap();
    url[url.find("/hb/").unwrap()..].to_string()
}

async fn ping(app: &TestApp, path: &str) -> DateTime<Utc> {
    let r = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    let token = path.trim_start_matches("/hb/");
    let token = token.split(['/', '?']).next().unwrap();
    let db = app.state.pool.get().await.unwrap();
    db.query_one(
        "SELECT last_ping_at FROM heartbeat.heartbeat WHERE token = $1",
        &[&token],
    )
    .await
    .unwrap()
    .get(0)
}

async fn tick(app: &TestApp, now: DateTime<Utc>) -> deadline::Tick {
    deadline::run_once(&app.state.pool, now).await.unwrap()
}

async fn flips(app: &TestApp, id: &str) -> Vec<Value> {
    let (status, body) = app.get_json(&format!("/api/heartbeats/{id}/flips")).await;
    assert_eq!(status, 200, "{body}");
    body["flips"].as_array().unwrap().clone()
}

fn secs(n: i64) -> chrono::Duration {
    chrono::Duration::seconds(n)
}

async fn job_heartbeat(app: &TestApp, kind: &str) -> Option<Value> {
    let (_, list) = app.get_json("/api/heartbeats").await;
    list["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == format!("job:{kind}"))
        .cloned()
}

async fn wait_job_heartbeat(app: &TestApp, kind: &str) -> Value {
    for _ in 0..200 {
        if let Some(hb) = job_heartbeat(app, kind).await {
            return hb;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no job:{kind} heartbeat");
}

#[tokio::test]
async fn a_job_heartbeat_can_be_paused_but_not_deleted_or_retimed() {
    let app = quiet_app().await;
    let hb = wait_job_heartbeat(&app, "audit").await;
    assert_eq!(hb["job"], true, "{hb}");
    let id = hb["id"].as_str().unwrap();

    let (status, body) = delete(&app, id).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(error_code(&body), "job_heartbeat");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("job:audit") && message.contains("cannot be deleted"),
        "{message}"
    );

    for (field, value) in [
        ("period_seconds", json!(60)),
        ("grace_seconds", json!(60)),
        ("schedule", json!("0 * * * *")),
        ("tz", json!("Europe/Paris")),
        ("name", json!("renamed")),
    ] {
        let (status, body) = patch(&app, id, json!({ field: value })).await;
        assert_eq!(status, 409, "{field}: {body}");
        assert_eq!(error_code(&body), "job_heartbeat");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(field) && message.contains("cron table"),
            "{message}"
        );
    }
    // Unchanged values are no change; pausing is allowed.
    let (status, body) = patch(
        &app,
        id,
        json!({"schedule": hb["schedule"], "tz": "UTC", "paused": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "paused");
    assert_eq!(body["schedule"], hb["schedule"]);
    // A user's own heartbeat is not a job heartbeat, and can be deleted.
    let own = create(&app, json!({"name": "job:mine"})).await;
    assert_eq!(own["job"], false);
    assert_eq!(delete(&app, own["id"].as_str().unwrap()).await.0, 204);
}

#[tokio::test]
async fn a_job_heartbeat_deleted_behind_the_apis_back_comes_back_within_one_interval() {
    let interval = Duration::from_millis(300);
    let mut config = quiet_config();
    config.monitor.deadline_interval_ms = interval.as_millis() as u64;
    let app = spawn_app_with(config).await;
    let before = wait_job_heartbeat(&app, "segments").await;
    let db = app.db().await;
    let gone = Instant::now();
    let n = db
        .execute(
            "DELETE FROM heartbeat.heartbeat WHERE name = 'job:segments'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let back = loop {
        if let Some(hb) = job_heartbeat(&app, "segments").await {
            break hb;
        }
        assert!(
            gone.elapsed() < Duration::from_secs(10),
            "job:segments never came back"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let took = gone.elapsed();
    // One interval, plus room for a busy test machine to schedule the loop.
    assert!(
        took <= interval + Duration::from_millis(700),
        "came back after {took:?}"
    );
    // The same heartbeat: id, token (the jobs ping it), timing.
    for field in ["id", "ping_url", "schedule", "tz", "grace_seconds"] {
        assert_eq!(back[field], before[field], "{field}");
    }
    assert_eq!(back["status"], "pending");
}

fn at(hb: &Value, field: &str) -> DateTime<Utc> {
    hb[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {hb}"))
        .parse()
        .unwrap()
}

fn streaks(hb: &Value) -> (i64, i64) {
    (
        hb["failure_streak"].as_i64().unwrap(),
        hb["success_streak"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn thresholds_are_validated_naming_the_field() {
    let app = quiet_app().await;
    let hb = create(&app, json!({"name": "defaults"})).await;
    assert_eq!(
        (
            hb["failure_threshold"].as_i64(),
            hb["recovery_threshold"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(streaks(&hb), (0, 0));
    for field in ["failure_threshold", "recovery_threshold"] {
        for bad in [json!(0), json!(101), json!(-1)] {
            let (status, body) = app
                .post_json("/api/heartbeats", &json!({"name": "x", field: bad}))
                .await;
            assert_eq!(status, 422, "{field}={bad}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.starts_with(field), "{message}");
            let (status, body) =
                patch(&app, hb["id"].as_str().unwrap(), json!({ field: bad })).await;
            assert_eq!(status, 422, "{field}={bad}: {body}");
            assert!(body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field));
        }
        for good in [1, 100] {
            let (status, body) =
                patch(&app, hb["id"].as_str().unwrap(), json!({ field: good })).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body[field], good);
        }
    }
}

#[tokio::test]
async fn mixed_failures_in_a_row_take_it_down_at_the_threshold_and_successes_in_a_row_bring_it_back(
) {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "flaky", "period_seconds": 3600, "grace_seconds": 300,
               "failure_threshold": 3, "recovery_threshold": 2}),
    )
    .await;
    let id = hb["id"].as_str().unwrap();
    let path = ping_path(&hb);

    // A success between failures starts the count again.
    let first = ping(&app, &path).await;
    assert_eq!(tick(&app, first).await.flips, 1, "pending -> up");
    ping(&app, &format!("{path}/fail")).await;
    assert_eq!(streaks(&get_hb(&app, id).await), (1, 0));
    let ok = ping(&app, &format!("{path}/0")).await;
    assert_eq!(streaks(&get_hb(&app, id).await), (0, 1));
    assert_eq!(tick(&app, ok).await.flips, 0);

    // A fail ping and a non-zero exit code: two in a row, still up.
    ping(&app, &format!("{path}/fail")).await;
    let second = ping(&app, &format!("{path}/2")).await;
    let hb = get_hb(&app, id).await;
    assert_eq!(streaks(&hb), (2, 0));
    assert_eq!(hb["status"], "up", "{hb}");
    assert_eq!(tick(&app, second).await.flips, 0);

    // The third is a missed deadline: not at the deadline, one second after.
    let deadline = at(&hb, "next_deadline");
    assert_eq!(deadline, second + secs(3900));
    assert_eq!(tick(&app, deadline - secs(1)).await.flips, 0);
    assert_eq!(tick(&app, deadline).await.flips, 0);
    assert_eq!(flips(&app, id).await.len(), 1, "only the first success");
    assert_eq!(tick(&app, deadline + secs(1)).await.flips, 1);
    let f = flips(&app, id).await;
    assert_eq!(
        (f[0]["from"].as_str(), f[0]["to"].as_str()),
        (Some("up"), Some("down"))
    );
    assert_eq!(at(&f[0], "at"), deadline, "dated at the missed deadline");
    let hb = get_hb(&app, id).await;
    assert_eq!(hb["status"], "down");
    assert_eq!(streaks(&hb), (3, 0));

    // One success is not enough to recover; a missed deadline before the second
    // one starts the recovery count again.
    let first = ping(&app, &path).await;
    let hb = get_hb(&app, id).await;
    assert_eq!(
        (hb["status"].as_str(), streaks(&hb)),
        (Some("down"), (0, 1))
    );
    assert_eq!(tick(&app, first).await.flips, 0);
    let deadline = at(&get_hb(&app, id).await, "next_deadline");
    assert_eq!(tick(&app, deadline).await.flips, 0);
    assert_eq!(streaks(&get_hb(&app, id).await), (0, 1));
    assert_eq!(tick(&app, deadline + secs(1)).await.flips, 0);
    assert_eq!(streaks(&get_hb(&app, id).await), (1, 0));
    ping(&app, &path).await;
    let hb = get_hb(&app, id).await;
    assert_eq!(
        (hb["status"].as_str(), streaks(&hb)),
        (Some("down"), (0, 1))
    );
    // The second success in a row (an exit code 0) brings it up, dated at it.
    let up = ping(&app, &format!("{path}/0")).await;
    let hb = get_hb(&app, id).await;
    assert_eq!((hb["status"].as_str(), streaks(&hb)), (Some("up"), (0, 2)));
    assert_eq!(tick(&app, up).await.flips, 1);
    let f = flips(&app, id).await;
    assert_eq!(
        (f[0]["from"].as_str(), f[0]["to"].as_str()),
        (Some("down"), Some("up"))
    );
    assert_eq!(at(&f[0], "at"), up);
}

#[tokio::test]
async fn missed_deadlines_alone_count_one_per_period() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "quiet", "period_seconds": 600, "grace_seconds": 60,
               "failure_threshold": 2}),
    )
    .await;
    let id = hb["id"].as_str().unwrap();
    let pinged = ping(&app, &ping_path(&hb)).await;
    assert_eq!(tick(&app, pinged).await.flips, 1, "pending -> up");
    // First miss at pinged + 660; the next period runs from the missed due time
    // (pinged + 600), so the second miss is at pinged + 1260.
    assert_eq!(tick(&app, pinged + secs(661)).await.flips, 0);
    let hb = get_hb(&app, id).await;
    assert_eq!(streaks(&hb), (1, 0));
    assert_eq!(at(&hb, "next_deadline"), pinged + secs(1260));
    assert_eq!(tick(&app, pinged + secs(1260)).await.flips, 0);
    assert_eq!(tick(&app, pinged + secs(1261)).await.flips, 1);
    let f = flips(&app, id).await;
    assert_eq!(at(&f[0], "at"), pinged + secs(1260));
    // Left alone while down, it is not re-examined.
    assert_eq!(tick(&app, pinged + secs(86_400)).await.examined, 0);
}

#[tokio::test]
async fn raising_or_lowering_a_threshold_applies_to_the_current_streak() {
    let app = quiet_app().await;
    let hb = create(&app, json!({"name": "t", "failure_threshold": 3})).await;
    let id = hb["id"].as_str().unwrap();
    let path = ping_path(&hb);
    ping(&app, &path).await;
    ping(&app, &format!("{path}/fail")).await;
    ping(&app, &format!("{path}/fail")).await;
    assert_eq!(get_hb(&app, id).await["status"], "up");
    let (status, hb) = patch(&app, id, json!({"failure_threshold": 2})).await;
    assert_eq!(status, 200, "{hb}");
    assert_eq!(hb["status"], "down", "{hb}");
}

#[tokio::test]
async fn several_signals_in_one_batch_fold_in_order_and_the_last_threshold_reached_decides() {
    let app = quiet_app().await;
    let db = app.db().await;
    // (fail, ok, failing, failure_threshold, recovery_threshold, runs) -> {fail, ok, failing}
    for (args, want) in [
        ("0, 0, false, 3, 2, '{-3,2,-1}'", vec![1, 0, 0]),
        ("0, 0, false, 3, 2, '{-2}'", vec![2, 0, 0]),
        ("2, 0, false, 3, 2, '{-1}'", vec![3, 0, 1]),
        ("3, 0, true, 3, 2, '{1,-1,1}'", vec![0, 1, 1]),
        ("0, 1, true, 3, 2, '{1}'", vec![0, 2, 0]),
        ("0, 5, false, 1, 1, '{}'", vec![0, 5, 0]),
    ] {
        let row = db
            .query_one(&format!("SELECT heartbeat.fold_signals({args})"), &[])
            .await
            .unwrap();
        let got: Vec<i32> = row.get(0);
        assert_eq!(got, want, "{args}");
    }
}

fn names(list: &Value) -> Vec<String> {
    list["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn tags_are_validated_kept_sorted_and_filter_the_list() {
    let app = quiet_app().await;
    let db = create(
        &app,
        json!({"name": "db backup", "tags": ["prod", "db:main", "prod"]}),
    )
    .await;
    assert_eq!(db["tags"], json!(["db:main", "prod"]));
    let web = create(&app, json!({"name": "web", "tags": ["staging"]})).await;
    let bare = create(&app, json!({"name": "bare"})).await;
    assert_eq!(bare["tags"], json!([]));

    let (status, list) = app.get_json("/api/heartbeats?tag=prod").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(names(&list), ["db backup"]);
    let (_, list) = app.get_json("/api/heartbeats?tag=nothing").await;
    assert!(names(&list).is_empty());
    let (status, body) = app.get_json("/api/heartbeats?tag=a%20b").await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("tag:"));

    for bad in [json!(["has space"]), json!([""]), json!(["x".repeat(51)])] {
        let (status, body) = app
            .post_json("/api/heartbeats", &json!({"name": "bad", "tags": bad}))
            .await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("tags:"));
    }
    let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    let (status, _) = app
        .post_json("/api/heartbeats", &json!({"name": "bad", "tags": many}))
        .await;
    assert_eq!(status, 422);

    // An update replaces the list; leaving it out keeps it.
    let web_id = web["id"].as_str().unwrap();
    let (status, hb) = patch(&app, web_id, json!({"tags": ["prod", "web"]})).await;
    assert_eq!(status, 200, "{hb}");
    assert_eq!(hb["tags"], json!(["prod", "web"]));
    let (_, hb) = patch(&app, web_id, json!({"grace_seconds": 60})).await;
    assert_eq!(hb["tags"], json!(["prod", "web"]));
    let (_, list) = app.get_json("/api/heartbeats?tag=prod").await;
    assert_eq!(names(&list), ["db backup", "web"]);
    let _ = db;
}

#[tokio::test]
async fn heartbeat_status_with_a_tag_looks_only_at_those_heartbeats() {
    let app = quiet_app().await;
    let prod = create(&app, json!({"name": "prod job", "tags": ["prod"]})).await;
    let dev = create(&app, json!({"name": "dev job", "tags": ["dev"]})).await;
    ping(&app, &ping_path(&prod)).await;
    ping(&app, &format!("{}/fail", ping_path(&dev))).await;
    let status = heartbeat::monitor::client::status_tagged;
    assert!(!status(&app.address, None, false, Some("prod"))
        .await
        .unwrap());
    assert!(status(&app.address, None, false, Some("dev"))
        .await
        .unwrap());

    let cli = |tag: &'static str| {
        let address = app.address.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
                .args(["status", "--fail-on-down", "--tag", tag])
                .env("HEARTBEAT_URL", address)
                .env_remove("HEARTBEAT_ADMIN_KEY")
                .env_remove("HEARTBEAT_CONFIG")
                .output()
                .await
                .unwrap()
        }
    };
    let out = cli("prod").await;
    assert!(out.status.success(), "{out:?}");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("prod job") && !table.contains("dev job"),
        "{table}"
    );
    let out = cli("dev").await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
}
