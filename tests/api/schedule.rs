//! The cron table in a running daemon: catch-up on start through the jobs gate,
//! the last success in `schedule_state`, `GET /api/schedule`, `heartbeat schedule`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use heartbeat::app::Application;
use heartbeat::jobs::{
    JobBody, JobContext, JobError, JobKind, JobRequest, JobState, Scope, Trigger,
};
use heartbeat::schedule::state::{PgStore, ScheduleStore};
use heartbeat::schedule::ticker::{EngineGate, Outcome, Ticker};
use heartbeat::schedule::ScheduleCounters;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::{
    spawn_app, spawn_app_on, spawn_app_with, spawn_app_with_bodies, test_config, TestApp,
};

async fn scheduled_app() -> TestApp {
    spawn_app_with(heartbeat::config::Config {
        no_scheduler: false,
        ..test_config()
    })
    .await
}

/// Polls `GET /api/schedule` until every entry has a last success.
async fn wait_all_succeeded(app: &TestApp) -> Value {
    for _ in 0..200 {
        let (status, body) = app.get_json("/api/schedule").await;
        assert_eq!(status, 200, "{body}");
        let entries = body["entries"].as_array().unwrap();
        if entries.iter().all(|e| !e["last_success_at"].is_null()) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the catch-up jobs did not all succeed");
}

async fn cli(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
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

#[tokio::test]
async fn with_no_scheduler_the_table_is_listed_but_nothing_fires() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/api/schedule").await;
    assert_eq!(status, 200);
    assert_eq!(body["running"], false);
    assert_eq!(body["timezone"], "UTC");
    let crons: Vec<_> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["cron"].as_str().unwrap()))
        .collect();
    assert_eq!(
        crons,
        [
            ("recompute", "17 * * * *"),
            ("benchmarks", "23 4 * * *"),
            ("segments", "30 4 * * *"),
            ("audit", "45 4 * * *"),
            ("maintenance", "10 3 * * *")
        ]
    );
    assert!(body["entries"][0]["next_fire_at"].is_null());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, jobs) = app.get_json("/api/jobs").await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0, "{jobs}");
}

#[tokio::test]
async fn a_fresh_daemon_catches_up_each_entry_once_and_records_its_success() {
    let app = scheduled_app().await;
    let body = wait_all_succeeded(&app).await;
    assert_eq!(body["running"], true);
    for e in body["entries"].as_array().unwrap() {
        assert_eq!(e["counters"]["caught_up"], 1, "{e}");
        assert_eq!(e["counters"]["missed"], 0, "{e}");
        assert!(!e["next_fire_at"].is_null(), "{e}");
        assert!(!e["last_tick_at"].is_null(), "{e}");
    }
    let (_, jobs) = app.get_json("/api/jobs").await;
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 5, "one job per entry, not one per missed tick");
    assert!(jobs.iter().all(|j| j["trigger"] == "cron"));

    let db = app.db().await;
    let rows = db
        .query(
            "SELECT entry FROM heartbeat.schedule_state WHERE last_success_at IS NOT NULL ORDER BY entry",
            &[],
        )
        .await
        .unwrap();
    let names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(
        names,
        [
            "audit",
            "benchmarks",
            "maintenance",
            "recompute",
            "segments"
        ]
    );
}

#[tokio::test]
async fn a_restarted_daemon_does_not_catch_up_what_already_succeeded() {
    let mut app = scheduled_app().await;
    wait_all_succeeded(&app).await;
    app.shut_down().await;

    // A second daemon on the same database: the successes are newer than every
    // previous fire time, so nothing runs.
    let config = heartbeat::config::Config {
        no_scheduler: false,
        database_url: Some(app.database_url.clone()),
        ..test_config()
    };
    let again = Application::build(config, app.database_url.clone())
        .await
        .unwrap();
    let state = again.state().clone();
    let stop = CancellationToken::new();
    let server = tokio::spawn(again.run_until_stopped(stop.clone()));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let recent = state.jobs.recent().await.unwrap();
    assert!(recent.is_empty(), "{recent:?}");
    let counters = state.schedule.snapshot();
    assert!(counters.values().all(|c| c.caught_up == 0), "{counters:?}");
    stop.cancel();
    let _ = server.await;
}

#[tokio::test]
async fn heartbeat_schedule_prints_each_entry_with_its_next_fire_and_last_success() {
    let app = scheduled_app().await;
    wait_all_succeeded(&app).await;
    let (code, out, err) = cli(&["schedule", "--url", &app.address]).await;
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "cron table running; times in UTC");
    assert!(lines[1].starts_with("ENTRY"), "{out}");
    assert!(
        lines[2].starts_with("recompute") && lines[2].contains("17 * * * *"),
        "{out}"
    );
    assert!(
        !out.contains("never"),
        "every entry has a last success: {out}"
    );
    assert_eq!(
        out.matches("+00:00").count(),
        10,
        "next fire and last success per entry: {out}"
    );

    let (code, out, _) = cli(&["schedule", "--url", &app.address, "--json"]).await;
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["entries"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn heartbeat_schedule_next_prints_fire_times_and_exits_2_on_a_bad_expression() {
    let (code, out, _) = cli(&[
        "schedule",
        "next",
        "0 0 29 2 *",
        "--after",
        "2026-11-23T00:00:00Z",
        "-n",
        "2",
    ])
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "2028-02-29T00:00:00+00:00\n2032-02-29T00:00:00+00:00\n"
    );

    let (code, out, _) = cli(&[
        "schedule",
        "next",
        "30 1 * * *",
        "--tz",
        "Europe/Berlin",
        "--after",
        "2026-10-24T12:00:00Z",
        "-n",
        "2",
    ])
    .await;
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "2026-10-25T01:30:00+02:00\n2026-10-26T01:30:00+01:00\n"
    );

    let (code, _, err) = cli(&["schedule", "next", "0 0 * * 8"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("day-of-week: 8 is out of range 0-7"), "{err}");

    let (code, _, err) = cli(&["schedule", "next", "@daily", "--tz", "Mars/Olympus"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("Mars/Olympus"), "{err}");
}

/// Works a seeded random few milliseconds; records each run's job id and trigger.
struct RandomWork {
    rng: Arc<Mutex<rand::rngs::StdRng>>,
    ran: Arc<Mutex<Vec<(Uuid, Trigger)>>>,
}

impl JobBody for RandomWork {
    fn run(&self, ctx: JobContext) -> futures::future::BoxFuture<'static, Result<Value, JobError>> {
        self.ran.lock().unwrap().push((ctx.job_id(), ctx.trigger()));
        let ms = self.rng.lock().unwrap().gen_range(0..25);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Value::Null)
        })
    }
}

#[tokio::test]
async fn under_a_seeded_stream_of_ticks_and_user_requests_every_tick_runs_once_or_is_absorbed() {
    const TICKS: i64 = 1000;
    let mut config = test_config();
    config.jobs.retain_count = 100_000;
    let rng = Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(0x6862)));
    let ran = Arc::new(Mutex::new(Vec::new()));
    let work: Arc<dyn JobBody> = Arc::new(RandomWork {
        rng: rng.clone(),
        ran: ran.clone(),
    });
    let app = spawn_app_with_bodies(config, vec![(JobKind::Recompute, work)]).await;
    let engine = app.state.jobs.clone();
    let table = heartbeat::config::Config::from_toml(
        "[schedule.entries.recompute]\ncron = \"* * * * *\"\n\
         [schedule.entries.benchmarks]\nenabled = false\n\
         [schedule.entries.segments]\nenabled = false\n\
         [schedule.entries.audit]\nenabled = false\n\
         [schedule.entries.maintenance]\nenabled = false\n",
    )
    .unwrap()
    .schedule
    .table()
    .unwrap();
    let gate = Arc::new(EngineGate {
        engine: engine.clone(),
        pool: app.state.pool.clone(),
    });
    // The ticker is stepped with the tick times themselves: one call per minute of
    // schedule, while real jobs run and users ask in between.
    let start: DateTime<Utc> = "2026-11-23T00:00:30Z".parse().unwrap();
    let counters = ScheduleCounters::default();
    let mut ticker = Ticker::new(table, gate, &counters, start);
    let mut fires = Vec::new();
    for _ in 0..TICKS {
        let (users, pause) = {
            let mut rng = rng.lock().unwrap();
            let users: Vec<Scope> = (0..rng.gen_range(0..3))
                .map(|_| {
                    if rng.gen_bool(0.5) {
                        Scope::All
                    } else {
                        Scope::Metrics([format!("m{}", rng.gen_range(0..3))].into())
                    }
                })
                .collect();
            (users, rng.gen_range(0..6))
        };
        for scope in users {
            let req = JobRequest {
                kind: JobKind::Recompute,
                scope,
                trigger: Trigger::User,
            };
            engine.submit(req).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let now = ticker.next_wake().unwrap();
        fires.extend(ticker.tick(now).await);
    }
    // Let every job, follow-ups included, finish.
    for _ in 0..600 {
        let idle = engine.active(JobKind::Recompute).await.unwrap().is_none()
            && engine.queued(JobKind::Recompute).await.unwrap().is_none();
        if idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Every minute's tick is there once, in order.
    let expected: Vec<_> = (1..=TICKS)
        .map(|m| start - chrono::Duration::seconds(30) + chrono::Duration::minutes(m))
        .collect();
    let scheduled: Vec<_> = fires.iter().map(|f| f.scheduled_at).collect();
    assert_eq!(scheduled, expected);
    let fired: Vec<_> = fires
        .iter()
        .filter(|f| f.outcome == Outcome::Fired)
        .collect();
    let absorbed = fires
        .iter()
        .filter(|f| f.outcome == Outcome::Absorbed)
        .count();
    assert_eq!(
        fired.len() + absorbed,
        TICKS as usize,
        "each tick is run or absorbed"
    );
    assert!(
        fired.len() > 50 && absorbed > 50,
        "the stream exercises both: {} fired, {absorbed} absorbed",
        fired.len()
    );

    // A fired tick made one job that ran once; an absorbed tick's job ran too.
    let ran = ran.lock().unwrap().clone();
    let ran_ids: HashSet<Uuid> = ran.iter().map(|(id, _)| *id).collect();
    assert_eq!(ran_ids.len(), ran.len(), "no job ran twice");
    let fired_ids: HashSet<Uuid> = fired.iter().map(|f| f.job_id.unwrap()).collect();
    assert_eq!(
        fired_ids.len(),
        fired.len(),
        "no two ticks made the same job"
    );
    let cron_runs = ran.iter().filter(|(_, t)| *t == Trigger::Cron).count();
    assert_eq!(cron_runs, fired.len(), "every fired tick ran exactly once");
    let tick_jobs: HashSet<Uuid> = fires.iter().map(|f| f.job_id.unwrap()).collect();
    for id in &tick_jobs {
        assert!(ran_ids.contains(id), "job {id} serving a tick ran");
        let job = engine.get(*id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    }
    let c = counters.entry("recompute").values();
    assert_eq!(
        (c.fired as usize, c.absorbed as usize, c.missed, c.caught_up),
        (fired.len(), absorbed, 0, 0)
    );
}

/// A daemon named `node` (no scheduler of its own: the test steps the tick loop).
async fn node_on(node: &str, database_url: Option<String>) -> TestApp {
    let mut config = test_config();
    config.jobs.node_id = Some(node.into());
    match database_url {
        Some(url) => spawn_app_on(config, url).await,
        None => spawn_app_with(config).await,
    }
}

/// A node's tick loop, stepped by the test with exact times: its own engine and
/// pool, the shared table and database.
fn ticker_of(app: &TestApp, start: &str) -> Ticker {
    let table = app.state.config.schedule.table().unwrap();
    let gate = Arc::new(EngineGate {
        engine: app.state.jobs.clone(),
        pool: app.state.pool.clone(),
    });
    Ticker::new(
        table,
        gate,
        &ScheduleCounters::default(),
        start.parse().unwrap(),
    )
}

fn store_of(app: &TestApp) -> PgStore {
    PgStore {
        pool: app.state.pool.clone(),
    }
}

/// Steps every node's tick loop at `at`; returns the recompute entry's outcomes.
async fn step_all(tickers: &mut [Ticker], nodes: &[&TestApp], at: &str) -> Vec<Outcome> {
    let at: DateTime<Utc> = at.parse().unwrap();
    let mut outcomes = Vec::new();
    for (t, app) in tickers.iter_mut().zip(nodes) {
        let fires = t.step(&store_of(app), at).await;
        outcomes.extend(
            fires
                .into_iter()
                .filter(|f| f.entry == "recompute")
                .map(|f| f.outcome),
        );
    }
    outcomes
}

async fn job_heartbeat_paused(app: &TestApp) -> Option<bool> {
    app.db()
        .await
        .query_opt(
            "SELECT paused FROM heartbeat.heartbeat WHERE name = 'job:recompute'",
            &[],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

/// Every recompute job the cluster knows, by id: each node's list (its own jobs
/// and the ones it sees published by the others).
async fn recompute_jobs(nodes: &[&TestApp]) -> HashSet<String> {
    let mut ids = HashSet::new();
    for node in nodes {
        let (_, jobs) = node.get_json("/api/jobs?kind=recompute").await;
        for job in jobs["jobs"].as_array().unwrap() {
            ids.insert(job["job_id"].as_str().unwrap().to_string());
        }
    }
    ids
}

#[tokio::test]
async fn an_entry_paused_on_one_node_of_three_fires_nowhere_and_resumed_on_another_catches_up_once()
{
    let n1 = node_on("n1", None).await;
    let n2 = node_on("n2", Some(n1.database_url.clone())).await;
    let mut n3 = node_on("n3", Some(n1.database_url.clone())).await;
    // The job heartbeats exist once a daemon's monitor has started.
    for _ in 0..200 {
        if job_heartbeat_paused(&n1).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(job_heartbeat_paused(&n1).await, Some(false));
    let mut tickers: Vec<Ticker> = [&n1, &n2, &n3]
        .iter()
        .map(|n| ticker_of(n, "2026-11-23T10:00:30Z"))
        .collect();

    let (status, body) = n1
        .post_json("/api/schedule/recompute/pause", &serde_json::json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["paused"], true);
    assert!(body["paused_until"].is_null());
    assert_eq!(job_heartbeat_paused(&n1).await, Some(true), "silenced");

    for at in ["2026-11-23T10:17:00Z", "2026-11-23T11:17:00Z"] {
        let outcomes = step_all(&mut tickers, &[&n1, &n2, &n3], at).await;
        assert_eq!(outcomes, vec![Outcome::Paused { ticks: 1 }; 3], "{at}");
    }
    let (_, view) = n3.get_json("/api/schedule").await;
    let recompute = &view["entries"][0];
    assert_eq!(recompute["name"], "recompute");
    assert_eq!(recompute["paused"], true);
    assert_eq!(
        recompute["missed_while_paused"], 2,
        "counted once across three nodes: {recompute}"
    );

    // Node C restarts while paused: a new daemon on the same database, whose
    // start-up (job heartbeats, catch-up) must neither lift the pause nor
    // un-silence the job heartbeat, and whose fresh tick loop fires nothing.
    n3.shut_down().await;
    let n3 = node_on("n3", Some(n1.database_url.clone())).await;
    let nodes = [&n1, &n2, &n3];
    let (_, view) = n3.get_json("/api/schedule").await;
    assert_eq!(view["entries"][0]["paused"], true, "{view}");
    assert_eq!(
        job_heartbeat_paused(&n3).await,
        Some(true),
        "still silenced after the restart"
    );
    let mut restarted = ticker_of(&n3, "2026-11-23T11:30:00Z");
    restarted.load(&store_of(&n3).load().await.unwrap());
    let caught: Vec<_> = restarted
        .catch_up("2026-11-23T11:30:00Z".parse().unwrap())
        .await
        .into_iter()
        .filter(|f| f.entry == "recompute")
        .collect();
    assert!(caught.is_empty(), "{caught:?}");
    tickers[2] = restarted;
    let outcomes = step_all(&mut tickers, &nodes, "2026-11-23T12:17:00Z").await;
    assert_eq!(
        outcomes,
        vec![Outcome::Paused { ticks: 1 }; 3],
        "the pause holds on the restarted node too"
    );
    assert!(
        recompute_jobs(&nodes).await.is_empty(),
        "no node fired while paused"
    );

    let (status, body) = n2
        .post_json("/api/schedule/recompute/resume", &serde_json::json!({}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["paused"], false);
    assert_eq!(job_heartbeat_paused(&n1).await, Some(false), "un-silenced");
    let mut outcomes = step_all(&mut tickers, &nodes, "2026-11-23T12:40:00Z").await;
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        [
            Outcome::CaughtUp,
            Outcome::ClaimedElsewhere,
            Outcome::ClaimedElsewhere
        ],
        "one catch-up run cluster-wide"
    );
    assert_eq!(
        recompute_jobs(&nodes).await.len(),
        1,
        "exactly one recompute job across the three nodes"
    );
    let outcomes = step_all(&mut tickers, &nodes, "2026-11-23T12:50:00Z").await;
    assert!(outcomes.is_empty(), "{outcomes:?}");
}

#[tokio::test]
async fn a_pause_survives_a_daemon_restart() {
    let mut app = node_on("n1", None).await;
    let until = "2099-01-01T00:00:00Z";
    let (status, body) = app
        .post_json(
            "/api/schedule/segments/pause",
            &serde_json::json!({ "until": until }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.shut_down().await;
    let again = node_on("n1", Some(app.database_url.clone())).await;
    let (_, view) = again.get_json("/api/schedule").await;
    let segments = view["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "segments")
        .unwrap()
        .clone();
    assert_eq!(segments["paused"], true, "{segments}");
    assert_eq!(segments["paused_until"], "2099-01-01T00:00:00Z");
}

#[tokio::test]
async fn trigger_fires_an_entry_through_the_gate_as_manual_and_unknown_entries_are_404() {
    let app = spawn_app().await;
    let (status, body) = app
        .post_json("/api/schedule/audit/trigger", &serde_json::json!({}))
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().unwrap();
    let (_, job) = app.get_json(&format!("/api/jobs/{id}")).await;
    assert_eq!(job["trigger"], "manual");
    assert_eq!(job["kind"], "audit");

    for verb in ["pause", "resume", "trigger"] {
        let (status, body) = app
            .post_json(
                &format!("/api/schedule/nightly/{verb}"),
                &serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 404, "{verb}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("'nightly'"),
            "{body}"
        );
    }
    let (status, body) = app
        .post_json(
            "/api/schedule/recompute/pause",
            &serde_json::json!({"until": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn a_read_only_key_cannot_pause_resume_or_trigger() {
    let mut config = test_config();
    config.admin_key = Some("admin-key-0123456789abcdef".into());
    let app = spawn_app_with(config).await;
    let r = app
        .client
        .post(app.url("/api/projects"))
        .bearer_auth("admin-key-0123456789abcdef")
        .json(&serde_json::json!({"name": "ops"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let p: Value = r.json().await.unwrap();
    let read_only = p["read_only_key"].as_str().unwrap();
    for verb in ["pause", "resume", "trigger"] {
        let r = app
            .client
            .post(app.url(&format!("/api/schedule/recompute/{verb}")))
            .bearer_auth(read_only)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{verb}");
    }
}

#[tokio::test]
async fn heartbeat_schedule_pause_resume_and_trigger_drive_the_daemon() {
    let app = spawn_app().await;
    let (code, out, err) = cli(&[
        "schedule",
        "pause",
        "recompute",
        "--until",
        "2099-01-01T00:00:00Z",
        "--url",
        &app.address,
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        "recompute paused on every node until 2099-01-01T00:00:00Z\n"
    );
    let (_, view) = app.get_json("/api/schedule").await;
    assert_eq!(view["entries"][0]["paused"], true);
    let (code, out, _) = cli(&["schedule", "resume", "recompute", "--url", &app.address]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("recompute resumed"), "{out}");
    let (_, view) = app.get_json("/api/schedule").await;
    assert_eq!(view["entries"][0]["paused"], false);
    let (code, out, _) = cli(&["schedule", "trigger", "segments", "--url", &app.address]).await;
    assert_eq!(code, 0);
    assert!(out.starts_with("segments triggered: job "), "{out}");
    // A request the daemon refuses (404) is exit 2 in the one CLI table
    // (src/cli/exit.rs, README "Exit codes").
    let (code, _, err) = cli(&["schedule", "pause", "nightly", "--url", &app.address]).await;
    assert_eq!(code, 2);
    assert!(err.contains("no cron entry named 'nightly'"), "{err}");
}
