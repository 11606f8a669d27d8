//! The refresh bodies through the jobs engine: the HTTP recompute, phases in the
//! job JSON, and the demo start-up that fills an empty cockpit.

use std::time::Duration;

use heartbeat::config::Config;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, test_config, TestApp};

async fn finished_job(app: &TestApp, job_id: &str) -> Value {
    let id = job_id.parse().unwrap();
    tokio::time::timeout(Duration::from_secs(60), app.state.jobs.wait_finished(id))
        .await
        .expect("the job finishes")
        .expect("the job is known");
    let (status, job) = app.get_json(&format!("/api/jobs/{job_id}")).await;
    assert_eq!(status, 200, "{job}");
    job
}

fn demo_and(extra: &str) -> Config {
    let parsed = Config::from_toml(&format!(
        "{extra}\n[[sources]]\nname = \"demo\"\nkind = \"demo\"\ndays = 2\n"
    ))
    .unwrap();
    Config {
        sources: parsed.sources,
        ..test_config()
    }
}

#[tokio::test]
async fn a_recompute_requested_over_http_ingests_then_computes_the_demo_metrics() {
    let app = spawn_app_with(demo_and("")).await;
    let (status, submitted) = app
        .post_json(
            "/api/metrics/recompute",
            &json!({"metric_ids": "all", "trigger": "user"}),
        )
        .await;
    assert_eq!(status, 202, "{submitted}");
    let job = finished_job(&app, submitted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    let phases: Vec<&str> = job["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["ingest", "compute"]);
    assert_eq!(job["phases"][0]["detail"]["sources"][0]["status"], "ok");

    let (_, list) = app.get_json("/api/metrics").await;
    let metrics = list["metrics"].as_array().unwrap();
    assert!(metrics.len() >= 6, "{list}");
    for m in metrics {
        assert!(!m["latest_bucket"].is_null(), "{m}");
    }

    // A scoped request computes only what it names.
    let (status, submitted) = app
        .post_json("/api/metrics/recompute", &json!({"metric_ids": ["orders"]}))
        .await;
    assert_eq!(status, 202, "{submitted}");
    let job = finished_job(&app, submitted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(
        job["phases"][1]["detail"]["metrics"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_failing_source_is_named_in_the_ingest_phase_and_fails_the_job() {
    let app = spawn_app_with(demo_and(
        "[[sources]]\nname = \"crm\"\nkind = \"http_json\"\nurl = \"http://127.0.0.1:1/x\"\nretries = 0\n",
    ))
    .await;
    let (_, submitted) = app
        .post_json("/api/metrics/recompute", &json!({"metric_ids": "all"}))
        .await;
    let job = finished_job(&app, submitted["job_id"].as_str().unwrap()).await;
    assert_eq!(job["state"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap().contains("crm"), "{job}");
    let sources = job["phases"][0]["detail"]["sources"].as_array().unwrap();
    assert_eq!(sources[0]["source"], "crm");
    assert_eq!(sources[0]["status"], "failed");
    assert_eq!(sources[1]["status"], "ok", "the demo source still ingested");
    assert_eq!(job["phases"][1]["name"], "compute", "compute still ran");
}

#[tokio::test]
async fn demo_mode_fills_an_empty_cockpit_at_start_up() {
    let config = Config {
        demo: Some(true),
        ..test_config()
    };
    let app = spawn_app_with(config).await;
    for _ in 0..240 {
        let (_, list) = app.get_json("/api/metrics").await;
        let banded = list["metrics"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| !m["band"].is_null());
        if banded {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no metric with a band within a minute of start-up");
}
