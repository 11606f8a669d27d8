//! A job wrapped by `runitor`, as its client sends the pings (its
//! `internal/api.go`): every ping a POST with `Content-Type: text/plain` and
//! its own User-Agent, to `<base>/<handle>/start` with an empty body, then to
//! `<base>/<handle>/<exit-status>` with the output's tail (its ring buffer,
//! 10,000 bytes unless the instance's `Ping-Body-Limit` is smaller) as the
//! body. It reads `Ping-Body-Limit` from the answers and counts only a 200 as
//! delivered. Seen through healthchecks.io's Management API, as a runitor
//! user would look at the run. (`tests/api/hc_ping.rs` has the same run seen
//! through Heartbeat's own API, with a rid.)

use reqwest::Method;
use serde_json::{json, Value};

use crate::hc_support::{path_of, HcWorld};

const UA: &str = "runitor/v1.3.0 (+https://bdd.fi/x/runitor)";

/// One runitor ping: its status and the `Ping-Body-Limit` it announced.
async fn ping(w: &HcWorld, url: &str, body: &str) -> (u16, Option<usize>) {
    let r = w
        .app
        .client
        .post(url)
        .header("Content-Type", "text/plain")
        .header("User-Agent", UA)
        .header("Content-Length", body.len().to_string())
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let limit = r
        .headers()
        .get("Ping-Body-Limit")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    (r.status().as_u16(), limit)
}

/// Runs a job the way runitor does; answers the check's status afterwards.
async fn run(w: &HcWorld, base: &str, output: &str, exit: u8) -> String {
    let (status, limit) = ping(w, &format!("{base}/start"), "").await;
    assert_eq!(status, 200, "runitor counts only a 200 as delivered");
    let limit = limit.expect("the start's answer announces the body limit");
    let keep = limit.min(10_000);
    let tail = &output[output.len().saturating_sub(keep)..];
    let (status, _) = ping(w, &format!("{base}/{exit}"), tail).await;
    assert_eq!(status, 200);
    let uuid = base.rsplit('/').next().unwrap();
    let (_, check) = w
        .call(Method::GET, &format!("/api/v3/checks/{uuid}"), Some(w.rw()))
        .await;
    check["status"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_runitor_job_ends_up_or_down_with_its_output_tail_logged() {
    let w = HcWorld::new().await;
    let check = w
        .create_check(json!({"name": "rsync", "timeout": 3600, "grace": 60}))
        .await;
    let uuid = check["uuid"].as_str().unwrap();
    let base = w.app.url(&format!("/ping/{uuid}"));

    let output = format!("{}sent 12 files\n", "line\n".repeat(5_000));
    assert_eq!(run(&w, &base, &output, 0).await, "up");
    let logged = w.history(uuid, "pings").await;
    let (finish, start) = (&logged[0], &logged[1]);
    assert_eq!(
        (start["type"].as_str(), start["n"].as_i64()),
        (Some("start"), Some(1))
    );
    assert_eq!(
        start["body_url"],
        Value::Null,
        "an empty start keeps no body"
    );
    assert_eq!(finish["type"], "success");
    for p in [start, finish] {
        assert_eq!(p["method"], "POST");
        assert_eq!(p["ua"], UA);
    }
    assert!(finish["duration"].as_f64().unwrap() >= 0.0, "{finish}");
    let r = w
        .app
        .client
        .get(w.app.url(&path_of(finish["body_url"].as_str().unwrap())))
        .header("X-Api-Key", w.rw())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert_eq!(body.len(), 10_000);
    assert!(body.ends_with("sent 12 files\n"));

    assert_eq!(
        run(&w, &base, "rsync: connection refused\n", 12).await,
        "down"
    );
    let finish = &w.history(uuid, "pings").await[0];
    assert_eq!(finish["type"], "fail");
    assert_eq!(finish["n"], 4);

    // A later clean run brings it back up.
    assert_eq!(run(&w, &base, "sent 3 files\n", 0).await, "up");
}
