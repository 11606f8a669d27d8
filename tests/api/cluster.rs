//! Many nodes, one flight: three daemon processes against one database.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::process::Child;

use crate::helpers::{fresh_database, spawn_daemon};

/// One `heartbeat serve` process.
struct Node {
    name: String,
    url: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start(name: &str, database_url: &str, probe_ms: u64) -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("metrics")).unwrap();
        std::fs::write(dir.path().join("metrics/a.sql"), "-- test").unwrap();
        let config = dir.path().join("heartbeat.toml");
        std::fs::write(
            &config,
            format!("[jobs]\nnode_id = \"{name}\"\nprobe_body_ms = {probe_ms}\n"),
        )
        .unwrap();
        let (child, url) = spawn_daemon(
            database_url,
            dir.path(),
            Some(&config),
            &dir.path().join("node.log"),
        )
        .await;
        Node {
            name: name.to_string(),
            url,
            child,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("node.log")).unwrap_or_default()
    }

    async fn recompute(&self, client: &reqwest::Client) -> Value {
        let r = client
            .post(format!("{}/api/metrics/recompute", self.url))
            .json(&json!({"metric_ids": "all"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}", self.name);
        r.json().await.unwrap()
    }

    async fn job(&self, client: &reqwest::Client, id: &str) -> (u16, Value) {
        let r = client
            .get(format!("{}/api/jobs/{id}", self.url))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    fn kill(&mut self) {
        self.child.start_kill().unwrap();
    }
}

async fn three_nodes(probe_ms: u64) -> (String, Vec<Node>) {
    let db = fresh_database().await;
    let nodes = vec![
        Node::start("n1", &db, probe_ms).await,
        Node::start("n2", &db, probe_ms).await,
        Node::start("n3", &db, probe_ms).await,
    ];
    (db, nodes)
}

async fn wait_finished(node: &Node, client: &reqwest::Client, id: &str) -> Value {
    for _ in 0..600 {
        let (status, job) = node.job(client, id).await;
        if status == 200 && job["finished_at"].is_string() {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not finish on {}", node.name);
}

/// Committed probe intervals, in start order.
async fn probe_rows(
    db: &str,
) -> Vec<(
    uuid::Uuid,
    String,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
)> {
    let client = heartbeat::db::connect_direct(db).await.unwrap();
    client
        .query(
            "SELECT job_id, node, started_at, finished_at FROM heartbeat.job_probe ORDER BY started_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn assert_no_overlap(
    rows: &[(
        uuid::Uuid,
        String,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    )],
) {
    for pair in rows.windows(2) {
        assert!(
            pair[1].2 >= pair[0].3,
            "two jobs of one lane overlapped: {:?} and {:?}",
            pair[0],
            pair[1]
        );
    }
}

#[tokio::test]
async fn a_thousand_requests_spread_over_three_nodes_create_exactly_one_job() {
    // The job holds 10 s: all 1,000 requests arrive while it runs, even on a
    // loaded 2-core machine.
    let (db, nodes) = three_nodes(10_000).await;
    let client = reqwest::Client::new();
    let first = nodes[0].recompute(&client).await;
    let id = first["job_id"].as_str().unwrap().to_string();
    let posts = (0..1000).map(|i| {
        let client = client.clone();
        let node = &nodes[i % 3];
        async move { node.recompute(&client).await }
    });
    let sent = Instant::now();
    let answers = futures::future::join_all(posts).await;
    assert!(
        sent.elapsed() < Duration::from_secs(9),
        "the requests outlived the job: {:?}",
        sent.elapsed()
    );
    for a in &answers {
        assert_eq!(a["job_id"], id.as_str(), "{a}");
        assert_eq!(a["coalesced"], true);
    }
    // Every node answers for the running job.
    for node in &nodes {
        let (status, job) = node.job(&client, &id).await;
        assert_eq!(status, 200, "{}", node.name);
        assert_eq!(job["node"], "n1");
    }
    let job = wait_finished(&nodes[1], &client, &id).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["coalesced_requests"], 1001);
    assert_eq!(probe_rows(&db).await.len(), 1, "exactly one run");
}

#[tokio::test]
async fn killing_the_owner_mid_job_lets_another_node_start_afresh_within_two_seconds() {
    let (db, mut nodes) = three_nodes(5000).await;
    let client = reqwest::Client::new();
    let first = nodes[0].recompute(&client).await;
    let old = first["job_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    nodes[0].kill();
    let killed = Instant::now();
    let fresh = loop {
        let r = nodes[1].recompute(&client).await;
        if r["job_id"] != old.as_str() {
            break r;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(2),
            "still coalescing onto the dead job"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        killed.elapsed() < Duration::from_secs(2),
        "took {:?}",
        killed.elapsed()
    );
    assert_eq!(fresh["coalesced"], false);
    let new_id = fresh["job_id"].as_str().unwrap();
    let job = wait_finished(&nodes[1], &client, new_id).await;
    assert_eq!(job["state"], "succeeded");
    assert_eq!(job["node"], "n2");
    // The killed job left nothing; the fresh one is complete.
    let rows = probe_rows(&db).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0.to_string(), new_id);
    // Its id is gone with its node.
    let (status, _) = nodes[2].job(&client, &old).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn cutting_the_lock_connection_cancels_the_job_and_no_two_nodes_run_a_lane_at_once() {
    // Jobs hold their work 3 s, longer than the 1 s lock watch, so a cut is noticed.
    let (db, nodes) = three_nodes(3000).await;
    let client = reqwest::Client::new();
    let admin = heartbeat::db::connect_direct(&db).await.unwrap();
    let started = Instant::now();
    let mut cut: Vec<(String, String)> = Vec::new();
    let mut round = 0usize;
    let cut_at = [Duration::from_millis(1000), Duration::from_millis(6500)];
    while started.elapsed() < Duration::from_secs(10) {
        nodes[round % 3].recompute(&client).await;
        round += 1;
        if cut.len() < cut_at.len() && started.elapsed() >= cut_at[cut.len()] {
            let r = client
                .get(format!("{}/api/metrics/active-job", nodes[0].url))
                .send()
                .await
                .unwrap();
            let active: Value = r.json().await.unwrap();
            if let Some(id) = active["job"]["job_id"].as_str() {
                let owner = active["job"]["node"].as_str().unwrap().to_string();
                let n = admin
                    .execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                         WHERE application_name LIKE 'heartbeat-lane-lock:recompute:%'
                           AND datname = current_database()",
                        &[],
                    )
                    .await
                    .unwrap();
                assert_eq!(n, 1, "one node holds the lane lock");
                cut.push((id.to_string(), owner));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cut.len(), 2, "the lock was cut twice");
    for (id, owner) in &cut {
        let node = nodes.iter().find(|n| &n.name == owner).unwrap();
        let job = wait_finished(node, &client, id).await;
        assert_eq!(job["state"], "failed", "{job}\n{}", node.log());
        assert!(
            job["error"]
                .as_str()
                .unwrap()
                .contains("lost the lane lock"),
            "{job}"
        );
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rows = probe_rows(&db).await;
    assert!(
        rows.len() >= 2,
        "jobs kept running after the cuts: {rows:?}"
    );
    assert_no_overlap(&rows);
    for (id, _) in &cut {
        assert!(
            rows.iter().all(|r| &r.0.to_string() != id),
            "a cut job committed its work"
        );
    }
}

#[tokio::test]
async fn a_hundred_ticks_under_skewed_clocks_run_exactly_once_each() {
    use heartbeat::jobs::JobKind;
    use heartbeat::schedule::claim::claim_tick;
    let db = fresh_database().await;
    let mut conns = Vec::new();
    for _ in 0..3 {
        conns.push(std::sync::Arc::new(
            heartbeat::db::connect_direct(&db).await.unwrap(),
        ));
    }
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-23T00:17:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut winners = vec![0u32; 100];
    for (tick, winner) in winners.iter_mut().enumerate() {
        // Each node fires at its own skewed wall time, but claims the nominal time.
        let scheduled = base + chrono::Duration::hours(tick as i64);
        let claims = conns.iter().enumerate().map(|(n, conn)| {
            let conn = conn.clone();
            let skew_ms = ((tick * 7 + n * 13) % 40) as u64;
            async move {
                tokio::time::sleep(Duration::from_millis(skew_ms)).await;
                claim_tick(&*conn, JobKind::Recompute, scheduled, &format!("n{n}"))
                    .await
                    .unwrap()
            }
        });
        *winner = futures::future::join_all(claims)
            .await
            .into_iter()
            .filter(|won| *won)
            .count() as u32;
    }
    assert!(winners.iter().all(|w| *w == 1), "{winners:?}");
}
