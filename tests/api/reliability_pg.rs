//! PostgreSQL goes away under a running daemon, and a daemon starts before its
//! database: jobs fail with a clear error, pings are refused (503) rather than lost,
//! `/readyz` follows the database, and everything recovers without a restart.
//!
//! Each test owns a private cluster (the shared test cluster must not be stopped),
//! stopped and started with `pg_ctl` as the cluster's owner.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use heartbeat::app::Application;
use heartbeat::config::Config;
use heartbeat::db::embedded::EmbeddedCluster;
use heartbeat::monitor::MonitorConfig;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::helpers::test_config;

/// A cluster only this test uses; stopped for good when dropped.
struct PrivateCluster {
    cluster: EmbeddedCluster,
    dir: tempfile::TempDir,
}

impl PrivateCluster {
    fn start() -> PrivateCluster {
        let dir = tempfile::Builder::new()
            .prefix("heartbeat-reliability-")
            .tempdir_in("/tmp")
            .unwrap();
        let mut cluster = EmbeddedCluster::init(dir.path(), true).expect("private cluster inits");
        cluster.start().expect("private cluster starts");
        PrivateCluster { cluster, dir }
    }

    fn url(&self) -> String {
        self.cluster
            .connection_string(heartbeat::db::embedded::DATABASE)
    }

    /// Runs `pg_ctl -D <pgdata> <args>` as the owner of the cluster.
    fn pg_ctl(&self, args: &[&str]) {
        let root = self.cluster.root();
        let mut cmd = Command::new(self.cluster.bin_dir().join("pg_ctl"));
        cmd.arg("-D").arg(root.join("pg")).args(args);
        if nix::unistd::geteuid().is_root() {
            let owner = std::fs::metadata(root.join("pg")).unwrap();
            use std::os::unix::fs::MetadataExt;
            cmd.uid(owner.uid()).gid(owner.gid());
        }
        let out = cmd.stdin(Stdio::null()).output().expect("pg_ctl runs");
        assert!(
            out.status.success(),
            "pg_ctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w", "-t", "30"]);
    }

    /// Starts the server again on the same socket directory and port.
    fn start_again(&self) {
        let root = self.cluster.root();
        let options = format!(
            "-k {} -h 127.0.0.1 -p {} -c fsync=off -c synchronous_commit=off",
            root.join("run").display(),
            self.cluster.port()
        );
        let log = root.join("postgres.log");
        self.pg_ctl(&[
            "start",
            "-w",
            "-t",
            "30",
            "-l",
            log.to_str().unwrap(),
            "-o",
            &options,
        ]);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        // The server may have been restarted by pg_ctl, so it is no longer the child
        // the cluster's guardian watches: stop it by its data directory.
        let root = self.cluster.root();
        let mut cmd = Command::new(self.cluster.bin_dir().join("pg_ctl"));
        cmd.arg("-D")
            .arg(root.join("pg"))
            .args(["stop", "-m", "immediate", "-w"]);
        if nix::unistd::geteuid().is_root() {
            if let Ok(owner) = std::fs::metadata(root.join("pg")) {
                use std::os::unix::fs::MetadataExt;
                cmd.uid(owner.uid()).gid(owner.gid());
            }
        }
        let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
        let _ = &self.dir;
    }
}

/// A daemon running in this process against `database_url`.
struct Daemon {
    base: String,
    client: reqwest::Client,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Daemon {
    async fn start(config: Config, database_url: String) -> Daemon {
        let config = Config {
            database_url: Some(database_url.clone()),
            ..config
        };
        let app = Application::build(config, database_url)
            .await
            .expect("the daemon builds even when the database is away");
        let base = format!("http://127.0.0.1:{}", app.port());
        let stop = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(stop.clone()));
        Daemon {
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            stop,
            server,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn readyz(&self) -> (u16, Value) {
        let r = self.client.get(self.url("/readyz")).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Polls `/readyz` until it answers `want`, for at most `limit`.
    async fn wait_readyz(&self, want: u16, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (status, body) = self.readyz().await;
            if status == want {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz did not answer {want} within {limit:?}: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self.client.get(self.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn ping(&self, ping_url: &str) -> u16 {
        self.client
            .post(ping_url)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn wait_job(&self, id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let (status, job) = self.get(&format!("/api/jobs/{id}")).await;
            if status == 200 && job["finished_at"].is_string() {
                return job;
            }
            assert!(Instant::now() < deadline, "job {id} did not finish: {job}");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
    }
}

/// An hourly counter that sleeps as long as `public.slow.secs` says, so a test can
/// make a recompute last while PostgreSQL is restarted under it.
const SLOW_METRIC: &str = "-- title: Slow counter\n-- kind: counter\n-- grain: hour\n\
SELECT b.bucket, coalesce(c.n, 0)::float8 AS value
FROM generate_series($1, $2 - interval '1 hour', interval '1 hour') AS b(bucket)
CROSS JOIN LATERAL (SELECT pg_sleep(coalesce((SELECT max(secs) FROM public.slow), 0))) AS s
LEFT JOIN (
    SELECT date_trunc('hour', occurred_at) AS bucket, count(*) AS n
    FROM heartbeat.event
    WHERE name = 'tick' AND occurred_at >= $1 AND occurred_at < $2
    GROUP BY 1
) c USING (bucket);
";

fn quiet_config(definitions: &tempfile::TempDir) -> Config {
    Config {
        definitions_dir: Some(definitions.path().to_path_buf()),
        monitor: MonitorConfig {
            loops: false,
            ..MonitorConfig::default()
        },
        ..test_config()
    }
}

fn slow_definitions() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("metrics")).unwrap();
    std::fs::write(dir.path().join("metrics/slow.sql"), SLOW_METRIC).unwrap();
    dir
}

async fn seed(url: &str, slow_secs: f64) {
    let db = heartbeat::db::connect_direct(url).await.unwrap();
    db.batch_execute("CREATE TABLE IF NOT EXISTS public.slow (secs float8)")
        .await
        .unwrap();
    db.execute("DELETE FROM public.slow", &[]).await.unwrap();
    db.execute("INSERT INTO public.slow VALUES ($1)", &[&slow_secs])
        .await
        .unwrap();
    let batch: i64 = db
        .query_one("SELECT nextval('heartbeat.ingest_batch_seq')", &[])
        .await
        .unwrap()
        .get(0);
    db.execute(
        "INSERT INTO heartbeat.event (source, event_id, occurred_at, client_id, name, value, batch_id)
         SELECT 'test', 'e' || i, now() - i * interval '7 minutes', 'c1', 'tick', 1, $1
         FROM generate_series(1, 50) AS i
         ON CONFLICT DO NOTHING",
        &[&batch],
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_fails_the_running_job_refuses_pings_and_recovers_without_a_daemon_restart(
) {
    let pg = PrivateCluster::start();
    let definitions = slow_definitions();
    let daemon = Daemon::start(quiet_config(&definitions), pg.url()).await;
    daemon.wait_readyz(200, Duration::from_secs(30)).await;
    seed(&pg.url(), 60.0).await;

    let (status, hb) = daemon
        .post("/api/heartbeats", &json!({"name": "nightly backup"}))
        .await;
    assert_eq!(status, 201, "{hb}");
    // The advertised URL carries the configured bind (port 0 here): keep its path.
    let advertised = hb["ping_url"].as_str().unwrap();
    let ping_url = daemon.url(&advertised[advertised.find("/hb/").unwrap()..]);
    assert_eq!(
        daemon.ping(&ping_url).await,
        200,
        "a ping while up is acknowledged"
    );

    // A recompute that will still be running when the database goes away.
    let (status, submitted) = daemon
        .post("/api/metrics/recompute", &json!({"metric_ids": "all"}))
        .await;
    assert_eq!(status, 202, "{submitted}");
    let job_id = submitted["job_id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, job) = daemon.get(&format!("/api/jobs/{job_id}")).await;
        if job["state"] == "running" {
            break;
        }
        assert!(Instant::now() < deadline, "the job never ran: {job}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    pg.stop();

    let failed = daemon.wait_job(&job_id, Duration::from_secs(15)).await;
    assert_eq!(failed["state"], "failed", "{failed}");
    let error = failed["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(!error.is_empty(), "the failed job says why: {failed}");

    let (status, body) = daemon.readyz().await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{body}"
    );
    for _ in 0..3 {
        assert_eq!(
            daemon.ping(&ping_url).await,
            503,
            "a ping while PostgreSQL is down is refused, so the client retries"
        );
    }

    pg.start_again();
    let back = Instant::now();
    // The restarted server no longer needs to sleep.
    let db = heartbeat::db::connect_direct(&pg.url()).await.unwrap();
    db.execute("UPDATE public.slow SET secs = 0", &[])
        .await
        .unwrap();
    daemon.wait_readyz(200, Duration::from_secs(5)).await;
    let (status, submitted) = daemon
        .post("/api/metrics/recompute", &json!({"metric_ids": "all"}))
        .await;
    assert_eq!(status, 202, "{submitted}");
    let next = daemon
        .wait_job(
            submitted["job_id"].as_str().unwrap(),
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(next["state"], "succeeded", "{next}");
    assert!(
        back.elapsed() < Duration::from_secs(5),
        "the next job succeeded {:?} after PostgreSQL came back",
        back.elapsed()
    );

    assert_eq!(daemon.ping(&ping_url).await, 200);
    let stored: Vec<String> = db
        .query(
            "SELECT p.kind || ' ' || h.name || ' ' || p.at FROM heartbeat.ping p JOIN heartbeat.heartbeat h ON h.heartbeat_id = p.heartbeat_id ORDER BY p.at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        stored
            .iter()
            .filter(|p| p.contains("nightly backup"))
            .count(),
        2,
        "exactly the two acknowledged pings are stored: {stored:?}"
    );
    let values: i64 = db
        .query_one(
            "SELECT count(*) FROM heartbeat.metric_value WHERE metric_id = 'slow'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(values > 0, "the recompute after recovery wrote values");

    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_started_before_its_database_answers_503_with_the_reason_then_becomes_ready() {
    let pg = PrivateCluster::start();
    let url = pg.url();
    pg.stop();

    let definitions = slow_definitions();
    let daemon = Daemon::start(quiet_config(&definitions), url.clone()).await;
    let (status, body) = daemon.get("/healthz").await;
    assert_eq!(status, 200, "the process is alive: {body}");
    let (status, body) = daemon.readyz().await;
    assert_eq!(status, 503, "{body}");
    let reason = body["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("unreachable") || reason.contains("migrations pending"),
        "the reason names the problem: {body}"
    );
    assert_eq!(body["error"]["code"], "not_ready", "{body}");
    // Still not ready a little later: it keeps retrying, it has not given up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(daemon.readyz().await.0, 503);

    pg.start_again();
    daemon.wait_readyz(200, Duration::from_secs(40)).await;
    seed(&url, 0.0).await;
    let (status, submitted) = daemon
        .post("/api/metrics/recompute", &json!({"metric_ids": "all"}))
        .await;
    assert_eq!(status, 202, "{submitted}");
    let job = daemon
        .wait_job(
            submitted["job_id"].as_str().unwrap(),
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(job["state"], "succeeded", "{job}");

    daemon.shutdown().await;
}
