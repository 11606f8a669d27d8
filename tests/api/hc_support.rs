//! What the healthchecks.io tests share: a keyed daemon without background
//! loops, two projects, and calls made the way healthchecks.io's clients make
//! them (`X-Api-Key`).

use heartbeat::monitor::MonitorConfig;
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, test_config, TestApp};

pub const ADMIN: &str = "admin-key-for-hc-tests-0123456789abcd";

/// A keyed daemon whose deadline loop does not run (tests call
/// `deadline::run_once` when they need flips), and two projects.
pub struct HcWorld {
    pub app: TestApp,
    pub team: Value,
    pub other: Value,
}

impl HcWorld {
    pub async fn new() -> Self {
        Self::with_monitor(MonitorConfig {
            loops: false,
            ..MonitorConfig::default()
        })
        .await
    }

    /// The same world with `monitor` as the monitor's settings (a check
    /// limit, a ring size).
    pub async fn with_monitor(monitor: MonitorConfig) -> Self {
        let mut config = test_config();
        config.admin_key = Some(ADMIN.into());
        config.monitor = monitor;
        let app = spawn_app_with(config).await;
        let mut projects = Vec::new();
        for name in ["team", "other"] {
            let r = app
                .client
                .post(app.url("/api/projects"))
                .bearer_auth(ADMIN)
                .json(&json!({ "name": name }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            projects.push(r.json::<Value>().await.unwrap());
        }
        let other = projects.pop().unwrap();
        let team = projects.pop().unwrap();
        Self { app, team, other }
    }

    pub fn rw(&self) -> &str {
        self.team["read_write_key"].as_str().unwrap()
    }

    pub fn ro(&self) -> &str {
        self.team["read_only_key"].as_str().unwrap()
    }

    pub fn other_rw(&self) -> &str {
        self.other["read_write_key"].as_str().unwrap()
    }

    /// A Management API call without a body; the answer's status and JSON
    /// (Null when it is not JSON).
    pub async fn call(&self, method: Method, path: &str, key: Option<&str>) -> (u16, Value) {
        let mut req = self.app.client.request(method, self.app.url(path));
        if let Some(k) = key {
            req = req.header("X-Api-Key", k);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// A Management API call with a JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let mut req = self
            .app
            .client
            .request(method, self.app.url(path))
            .json(&body);
        if let Some(k) = key {
            req = req.header("X-Api-Key", k);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Creates a check in the team project through `POST /api/v3/checks/`.
    pub async fn create_check(&self, body: Value) -> Value {
        let (status, check) = self
            .send(Method::POST, "/api/v3/checks/", Some(self.rw()), body)
            .await;
        assert_eq!(status, 201, "{check}");
        check
    }

    /// A check's `pings` or `flips` list through the v3 Management API with
    /// the read-write key, newest first.
    pub async fn history(&self, uuid: &str, list: &str) -> Vec<Value> {
        let (status, body) = self
            .call(
                Method::GET,
                &format!("/api/v3/checks/{uuid}/{list}/"),
                Some(self.rw()),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body[list].as_array().unwrap().clone()
    }

    /// Pings `url` (a check's `ping_url` plus a suffix and query), answering
    /// the status.
    pub async fn ping(&self, method: Method, url: &str, body: &str) -> u16 {
        self.app
            .client
            .request(method, url)
            .header("User-Agent", "hc-tests/1.0")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Creates a channel in the team project through Heartbeat's own API.
    pub async fn create_channel(&self, name: &str) -> String {
        let r = self
            .app
            .client
            .post(self.app.url("/api/channels"))
            .bearer_auth(self.rw())
            .json(&json!({"name": name, "kind": "pagerduty", "config": {"routing_key": "R0123456789abcdefXYZ"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

/// The path of an absolute URL the daemon wrote (its host is the configured
/// bind address, port 0 in tests).
pub fn path_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).expect("absolute URL");
    format!("/{}", rest.split_once('/').map(|(_, p)| p).unwrap_or(""))
}

/// A Management API call without a body, answered as it is sent: the status,
/// the `Content-Type` and the body's text (for healthchecks.io's bare
/// answers, which are not JSON).
pub async fn raw(
    app: &TestApp,
    method: Method,
    path: &str,
    key: Option<&str>,
) -> (u16, String, String) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(k) = key {
        req = req.header("X-Api-Key", k);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, content_type, r.text().await.unwrap())
}

/// healthchecks.io's answer to a resume of a check that is not paused.
pub fn not_paused() -> (u16, String, String) {
    (
        409,
        "text/html; charset=utf-8".into(),
        "check is not paused".into(),
    )
}
