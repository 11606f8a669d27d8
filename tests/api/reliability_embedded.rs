//! The embedded PostgreSQL is supervised: a real `heartbeat serve` on its own
//! embedded cluster has its postmaster killed with SIGKILL, restarts it, and
//! loses no ping it acknowledged; at shutdown no server is left on its data
//! directory.

use std::time::{Duration, Instant};

use serde_json::json;

/// The pid in the first line of `postmaster.pid`, if the file exists.
fn postmaster_pid(data_dir: &std::path::Path) -> Option<i32> {
    let text = std::fs::read_to_string(data_dir.join("pg/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

#[tokio::test]
async fn a_killed_embedded_postmaster_is_restarted_and_no_acknowledged_ping_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    // The server user (as root: postgres) must reach the data directory.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let data_dir = dir.path().join("data");
    let config = dir.path().join("heartbeat.toml");
    std::fs::write(&config, "demo = false\n").unwrap();
    let log = dir.path().join("daemon.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut daemon = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
        .arg("serve")
        .env_remove("DATABASE_URL")
        .env_remove("HEARTBEAT_ADMIN_KEY")
        .env("HEARTBEAT_DATA_DIR", &data_dir)
        .env("HEARTBEAT_CONFIG", &config)
        .env("HEARTBEAT_BIND", format!("127.0.0.1:{port}"))
        .env("HEARTBEAT_NO_SCHEDULER", "1")
        .env(
            "HEARTBEAT_DEFINITIONS_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/sql"),
        )
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let ready = |client: reqwest::Client, url: String| async move {
        matches!(client.get(format!("{url}/readyz")).send().await, Ok(r) if r.status() == 200)
    };
    let start = Instant::now();
    while !ready(client.clone(), url.clone()).await {
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the daemon never became ready: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hb: serde_json::Value = client
        .post(format!("{url}/api/heartbeats"))
        .json(&json!({"name": "supervised", "period_seconds": 3600, "grace_seconds": 60}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ping_url = hb["ping_url"].as_str().unwrap().to_string();
    let mut acked = 0;
    for _ in 0..5 {
        let r = client.post(&ping_url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        acked += 1;
    }

    let pid = postmaster_pid(&data_dir).expect("the embedded server runs");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let killed_at = Instant::now();
    // Keep pinging through the outage; count what the daemon acknowledged.
    let mut back_within = None;
    while killed_at.elapsed() < Duration::from_secs(15) {
        if let Ok(r) = client.post(&ping_url).send().await {
            if r.status() == 200 {
                acked += 1;
            }
        }
        if ready(client.clone(), url.clone()).await && postmaster_pid(&data_dir) != Some(pid) {
            back_within = Some(killed_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back_within = back_within.unwrap_or_else(|| {
        panic!(
            "/readyz not 200 within 15 s of the kill: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    eprintln!("ready again {back_within:?} after the kill; {acked} pings acknowledged so far");
    assert!(
        back_within < Duration::from_secs(10),
        "ready again only after {back_within:?}"
    );
    for _ in 0..3 {
        let r = client.post(&ping_url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        acked += 1;
    }
    // Every acknowledged ping is stored: the heartbeat's ping counter says so.
    let id = hb["id"].as_str().unwrap();
    let pings: serde_json::Value = client
        .get(format!("{url}/api/heartbeats/{id}/pings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored = pings["pings"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(stored, acked, "{pings}");

    // The counter moves once the restart returns, which can be just after the
    // server first accepts connections.
    let mut metrics = String::new();
    for _ in 0..50 {
        metrics = client
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains("heartbeat_embedded_postgres_restarts_total 1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("heartbeat_embedded_postgres_restarts_total 1"),
        "{metrics}"
    );
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        log_text.contains("embedded PostgreSQL exited; restarting it"),
        "{log_text}"
    );

    // Graceful stop: the restarted server (not the pid first started) goes too.
    let restarted = postmaster_pid(&data_dir).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), daemon.wait())
        .await
        .expect("the daemon stops")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        !alive(restarted),
        "the restarted server outlived the daemon"
    );
}
