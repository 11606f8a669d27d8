//! A pause with `until` on a real database: the entry's job heartbeat stays
//! silenced while paused, and when `until` passes the pause ends by itself on
//! every node, the heartbeat speaks again, and the entry catches up once.

use std::sync::Arc;
use std::time::Duration;

use heartbeat::schedule::state::PgStore;
use heartbeat::schedule::ticker::{EngineGate, Outcome, Ticker};
use heartbeat::schedule::ScheduleCounters;

use crate::helpers::{spawn_app_on, spawn_app_with, test_config, TestApp};

async fn node_on(node: &str, database_url: Option<String>) -> TestApp {
    let mut config = test_config();
    config.jobs.node_id = Some(node.into());
    match database_url {
        Some(url) => spawn_app_on(config, url).await,
        None => spawn_app_with(config).await,
    }
}

/// A node's tick loop, stepped by the test at exact (injected) times.
fn ticker_of(app: &TestApp, start: &str) -> Ticker {
    let gate = Arc::new(EngineGate {
        engine: app.state.jobs.clone(),
        pool: app.state.pool.clone(),
    });
    Ticker::new(
        app.state.config.schedule.table().unwrap(),
        gate,
        &ScheduleCounters::default(),
        start.parse().unwrap(),
    )
}

async fn step(ticker: &mut Ticker, app: &TestApp, at: &str) -> Vec<Outcome> {
    let store = PgStore {
        pool: app.state.pool.clone(),
    };
    ticker
        .step(&store, at.parse().unwrap())
        .await
        .into_iter()
        .filter(|f| f.entry == "recompute")
        .map(|f| f.outcome)
        .collect()
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

#[tokio::test]
async fn a_pause_until_a_time_silences_the_job_heartbeat_and_ends_by_itself_on_every_node() {
    let n1 = node_on("n1", None).await;
    let n2 = node_on("n2", Some(n1.database_url.clone())).await;
    for _ in 0..400 {
        if job_heartbeat_paused(&n1).await.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(job_heartbeat_paused(&n1).await, Some(false));
    // The pause must end in the future of the real clock; the tick loops run on
    // injected times around it.
    let (status, body) = n1
        .post_json(
            "/api/schedule/recompute/pause",
            &serde_json::json!({"until": "2099-01-01T00:30:00Z"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["paused_until"], "2099-01-01T00:30:00Z");
    assert_eq!(job_heartbeat_paused(&n1).await, Some(true), "silenced");

    let mut t1 = ticker_of(&n1, "2098-12-31T23:30:00Z");
    let mut t2 = ticker_of(&n2, "2098-12-31T23:30:00Z");
    for (t, app) in [(&mut t1, &n1), (&mut t2, &n2)] {
        let outcomes = step(t, app, "2099-01-01T00:17:00Z").await;
        assert_eq!(outcomes, vec![Outcome::Paused { ticks: 1 }]);
    }
    assert_eq!(
        job_heartbeat_paused(&n2).await,
        Some(true),
        "still silenced"
    );

    // `until` has come: the first node to look ends the pause for everyone.
    let mut outcomes = step(&mut t1, &n1, "2099-01-01T00:30:00Z").await;
    outcomes.extend(step(&mut t2, &n2, "2099-01-01T00:30:00Z").await);
    outcomes.sort_by_key(|o| format!("{o:?}"));
    assert_eq!(
        outcomes,
        vec![Outcome::CaughtUp, Outcome::ClaimedElsewhere],
        "one catch-up run across the nodes"
    );
    assert_eq!(job_heartbeat_paused(&n1).await, Some(false), "un-silenced");
    let (_, view) = n2.get_json("/api/schedule").await;
    let recompute = &view["entries"][0];
    assert_eq!(recompute["name"], "recompute");
    assert_eq!(recompute["paused"], false, "{recompute}");
    assert!(recompute["paused_until"].is_null(), "{recompute}");
}
