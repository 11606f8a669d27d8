//! The first hour's "done when", as a newcomer does it: the binary started with
//! no flags and no configuration from an empty directory (its own embedded
//! PostgreSQL, the internal cron table on, the demo on). The only settings are
//! the ones a test needs to stay out of the machine's way, a free port and its
//! own data directory. It serves the demo metrics and cuts, and every `job:*`
//! heartbeat stays up through a refresh of each job.

use std::time::{Duration, Instant};

use serde_json::Value;

async fn get(client: &reqwest::Client, url: &str) -> Option<Value> {
    client.get(url).send().await.ok()?.json().await.ok()
}

/// Polls `url` until `done` holds for its JSON, or panics with the daemon's log
/// after `limit`.
async fn wait_for(
    client: &reqwest::Client,
    url: &str,
    limit: Duration,
    log: &std::path::Path,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let start = Instant::now();
    let mut last = Value::Null;
    while start.elapsed() < limit {
        if let Some(v) = get(client, url).await {
            if done(&v) {
                return v;
            }
            last = v;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = std::fs::read_to_string(log).unwrap_or_default();
    panic!("{url} never got there; last {last}\n{log}");
}

#[tokio::test]
async fn the_bare_binary_in_an_empty_directory_serves_the_demo_and_its_job_heartbeats_stay_up() {
    let dir = tempfile::tempdir().unwrap();
    // The server user (as root: postgres) must reach the data directory.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let cwd = dir.path().join("empty");
    std::fs::create_dir(&cwd).unwrap();
    let log = dir.path().join("daemon.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"));
    cmd.arg("serve")
        .current_dir(&cwd)
        .env("HEARTBEAT_BIND", format!("127.0.0.1:{port}"))
        .env("HEARTBEAT_DATA_DIR", dir.path().join("data"))
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true);
    for var in [
        "DATABASE_URL",
        "HEARTBEAT_CONFIG",
        "HEARTBEAT_ADMIN_KEY",
        "HEARTBEAT_DEFINITIONS_DIR",
        "HEARTBEAT_NO_SCHEDULER",
        "HEARTBEAT_LOG_FORMAT",
        "HEARTBEAT_SELF_PING_URL",
    ] {
        cmd.env_remove(var);
    }
    let mut daemon = cmd.spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let minutes = Duration::from_secs(180);
    wait_for(&client, &format!("{url}/readyz"), minutes, &log, |v| {
        v["status"] == "ready"
    })
    .await;

    // The demo fill: every metric with a value, every cut with its snapshots.
    let metrics = wait_for(&client, &format!("{url}/api/metrics"), minutes, &log, |v| {
        v["metrics"]
            .as_array()
            .is_some_and(|m| m.len() == 7 && m.iter().all(|m| !m["latest_value"].is_null()))
    })
    .await;
    assert_eq!(metrics["metrics"].as_array().unwrap().len(), 7);
    let cuts = wait_for(
        &client,
        &format!("{url}/api/audit/cuts"),
        minutes,
        &log,
        |v| v["cuts"].as_array().is_some_and(|c| c.len() == 3),
    )
    .await;
    assert_eq!(cuts["cuts"].as_array().unwrap().len(), 3, "{cuts}");

    // A refresh of each job, as the CLI does it; each succeeds.
    for what in ["all", "benchmarks", "segments", "audit", "maintenance"] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
            .current_dir(&cwd)
            .args(["refresh", what, "--url", &url, "--timeout", "3m"])
            .env_remove("HEARTBEAT_KEY")
            .env_remove("HEARTBEAT_ADMIN_KEY")
            .output()
            .await
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "refresh {what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Each job heartbeat is pinged when its job finishes: up, none down.
    let heartbeats = wait_for(
        &client,
        &format!("{url}/api/heartbeats"),
        minutes,
        &log,
        |v| {
            let jobs: Vec<&Value> = v["heartbeats"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|h| h["name"].as_str().is_some_and(|n| n.starts_with("job:")))
                .collect();
            [
                "recompute",
                "benchmarks",
                "segments",
                "audit",
                "maintenance",
            ]
            .iter()
            .all(|k| {
                jobs.iter()
                    .any(|h| h["name"] == format!("job:{k}") && h["status"] == "up")
            })
        },
    )
    .await;
    for hb in heartbeats["heartbeats"].as_array().unwrap() {
        if hb["name"].as_str().unwrap_or_default().starts_with("job:") {
            assert_eq!(hb["status"], "up", "a job heartbeat is not up: {hb}");
        }
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let loaded = text
        .lines()
        .find(|l| l.contains("definitions loaded"))
        .unwrap_or_else(|| panic!("no 'definitions loaded' line:\n{text}"));
    assert!(loaded.contains("embedded demo"), "{loaded}");

    // A clean stop, so the embedded cluster is not left running.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let stopped = tokio::time::timeout(Duration::from_secs(60), daemon.wait()).await;
    assert!(stopped.is_ok(), "the daemon did not stop within 60 s");
}
