//! A failed delivery's recorded error names what went wrong, never where it
//! was sent: a webhook's or an `http` channel's URL may carry a token in its
//! query, and the error is shown by the API (alerts, attempts, the test
//! endpoint) and written to the log.

use heartbeat::monitor::deadline;
use serde_json::json;

use crate::helpers::{spawn_app_with, TestApp};
use crate::notify_channels::{add_channel, deliverer, pinged, quiet_config};

const TOKEN: &str = "tk_Q9z8Y7x6W5v4U3t2";

/// A loopback URL nothing listens on (the port was just free), with the token
/// in its query.
fn refusing_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}/hook?token={TOKEN}")
}

/// Every error the API shows for `channel`: its alerts' last errors and each
/// attempt's.
async fn shown_errors(app: &TestApp, channel: &str) -> Vec<String> {
    let (status, alerts) = app
        .get_json(&format!("/api/channels/{channel}/alerts"))
        .await;
    assert_eq!(status, 200, "{alerts}");
    let alerts = alerts["alerts"].as_array().unwrap().clone();
    assert!(!alerts.is_empty());
    let mut errors = Vec::new();
    for a in &alerts {
        errors.extend(a["last_error"].as_str().map(String::from));
        let (status, detail) = app.get_json(&format!("/api/alerts/{}", a["id"])).await;
        assert_eq!(status, 200, "{detail}");
        assert!(
            !detail.to_string().contains(TOKEN),
            "the alert's detail shows the URL's token: {detail}"
        );
        for attempt in detail["attempts"].as_array().unwrap() {
            errors.extend(attempt["error"].as_str().map(String::from));
        }
    }
    errors
}

fn assert_says_why_not_where(errors: &[String]) {
    assert!(!errors.is_empty(), "an error was recorded");
    for e in errors {
        assert!(!e.contains(TOKEN), "the error shows the URL's token: {e}");
        assert!(!e.contains("/hook"), "the error shows the URL: {e}");
        assert!(
            e.to_lowercase().contains("connect"),
            "the error still says what went wrong: {e}"
        );
    }
}

#[tokio::test]
async fn a_failing_webhooks_recorded_error_does_not_contain_its_urls_token() {
    let app = spawn_app_with(quiet_config()).await;
    let c = add_channel(
        &app,
        json!({"kind": "webhook", "config": {"url": refusing_url()}}),
    )
    .await;
    let id = c["id"].as_str().unwrap();
    let (_hb, when) = pinged(&app, "backup", json!({})).await;
    deadline::run_once(&app.state.pool, when).await.unwrap();
    let done = deliverer(&app)
        .deliver_once(&app.state.pool, when)
        .await
        .unwrap();
    assert_eq!(done.retrying, 1, "{done:?}");
    assert_says_why_not_where(&shown_errors(&app, id).await);

    // The test endpoint answers the same kind of error.
    let (status, outcome) = app
        .post_json(&format!("/api/channels/{id}/test"), &json!({}))
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["ok"], false);
    assert_says_why_not_where(&[outcome["error"].as_str().unwrap_or("").to_string()]);
}

#[tokio::test]
async fn a_failing_http_channels_recorded_error_does_not_contain_its_urls_token() {
    let app = spawn_app_with(quiet_config()).await;
    let request = json!({"method": "POST", "url": refusing_url(), "body": "$NAME is $STATUS"});
    let c = add_channel(
        &app,
        json!({"kind": "http", "config": {"down": request, "test": request}}),
    )
    .await;
    let id = c["id"].as_str().unwrap();
    let (status, outcome) = app
        .post_json(&format!("/api/channels/{id}/test"), &json!({}))
        .await;
    assert_eq!(status, 200, "{outcome}");
    assert_eq!(outcome["ok"], false, "{outcome}");
    let errors: Vec<String> = shown_errors(&app, id).await;
    assert_says_why_not_where(&errors);
    assert_eq!(
        outcome["error"].as_str().map(String::from),
        errors.first().cloned()
    );
}
