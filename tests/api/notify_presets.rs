//! Every preset against a local receiver standing in for the service (its
//! `config.url` override): method, path, headers and body as the service's
//! published API documents them, for `down` and `up`, with a heartbeat name
//! that would break a careless template.

use axum::http::Method;
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with, TestApp};
use crate::notify_channels::{
    add_channel, down_then_up, pinged, quiet_config, Receiver, Seen, NASTY,
};

/// Makes a `kind` channel at a receiver answering `answer`, takes a heartbeat
/// down and up again, and returns the heartbeat and the requests seen.
async fn run(kind: &str, config: Value, answer: Value) -> (TestApp, Value, Vec<Seen>) {
    let app = spawn_app_with(quiet_config()).await;
    let (receiver, url) = Receiver::start(answer).await;
    let mut config = config;
    let base = config["url"].as_str().unwrap_or("").to_string();
    config["url"] = json!(format!("{url}{base}"));
    add_channel(&app, json!({"kind": kind, "config": config})).await;
    let (hb, when) = pinged(&app, NASTY, json!({})).await;
    down_then_up(&app, &hb, when).await;
    let seen = receiver.seen();
    (app, hb, seen)
}

fn id(hb: &Value) -> &str {
    hb["id"].as_str().unwrap()
}

#[tokio::test]
async fn slack_gets_a_json_text_post_for_down_and_up() {
    let (_app, _hb, seen) = run("slack", json!({"url": "/services/T0/B0/XXX"}), json!({})).await;
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.uri.path(), "/services/T0/B0/XXX");
        assert_eq!(s.header("content-type"), "application/json");
    }
    let down = seen[0].json()["text"].as_str().unwrap().to_string();
    assert!(down.starts_with(&format!("{NASTY} is DOWN")), "{down}");
    let up = seen[1].json()["text"].as_str().unwrap().to_string();
    assert!(up.starts_with(&format!("{NASTY} is up again")), "{up}");
}

#[tokio::test]
async fn discord_mattermost_and_google_chat_get_their_message_fields() {
    for (kind, field, content_type) in [
        ("discord", "content", "application/json"),
        ("mattermost", "text", "application/json"),
        ("google_chat", "text", "application/json; charset=UTF-8"),
    ] {
        let (_app, _hb, seen) = run(kind, json!({"url": "/hook"}), json!({})).await;
        assert_eq!(seen.len(), 2, "{kind}");
        assert_eq!(seen[0].method, Method::POST);
        assert_eq!(seen[0].header("content-type"), content_type);
        assert!(
            seen[0].json()[field].as_str().unwrap().contains(NASTY),
            "{kind}"
        );
    }
}

#[tokio::test]
async fn teams_gets_an_adaptive_card_in_a_message() {
    let (_app, _hb, seen) = run("teams", json!({"url": "/workflows/x"}), json!({})).await;
    let body = seen[0].json();
    assert_eq!(body["type"], "message");
    let att = &body["attachments"][0];
    assert_eq!(
        att["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(att["content"]["type"], "AdaptiveCard");
    assert_eq!(
        att["content"]["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert_eq!(
        att["content"]["body"][0]["text"],
        format!("{NASTY} is DOWN")
    );
}

#[tokio::test]
async fn pagerduty_triggers_on_down_and_resolves_the_same_dedup_key_on_up() {
    let (_app, hb, seen) = run(
        "pagerduty",
        json!({"routing_key": "R0123456789abcdefXYZ"}),
        json!({"status": "success", "message": "Event processed", "dedup_key": "x"}),
    )
    .await;
    assert_eq!(seen.len(), 2);
    let (trigger, resolve) = (seen[0].json(), seen[1].json());
    for s in &seen {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.uri.path(), "/v2/enqueue");
    }
    assert_eq!(trigger["routing_key"], "R0123456789abcdefXYZ");
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(trigger["payload"]["summary"], format!("{NASTY} is DOWN"));
    assert_eq!(trigger["payload"]["severity"], "critical");
    assert_eq!(trigger["payload"]["source"], "heartbeat");
    assert!(trigger["payload"]["timestamp"].is_string());
    assert_eq!(resolve["event_action"], "resolve");
    let key = format!("heartbeat-{}", id(&hb));
    assert_eq!(trigger["dedup_key"], key);
    assert_eq!(resolve["dedup_key"], key);
}

#[tokio::test]
async fn opsgenie_creates_an_alert_by_alias_and_closes_it_by_alias() {
    let (_app, hb, seen) = run(
        "opsgenie",
        json!({"api_key": "eb243592-faa2-4ba2-a551q-1afdf565c889"}),
        json!({"result": "Request will be processed", "requestId": "r"}),
    )
    .await;
    assert_eq!(seen.len(), 2);
    let alias = format!("heartbeat-{}", id(&hb));
    assert_eq!(seen[0].uri.path(), "/v2/alerts");
    assert_eq!(
        seen[0].header("authorization"),
        "GenieKey eb243592-faa2-4ba2-a551q-1afdf565c889"
    );
    let create = seen[0].json();
    assert_eq!(create["alias"], alias);
    assert!(create["message"].as_str().unwrap().chars().count() <= 130);
    assert_eq!(seen[1].uri.path(), format!("/v2/alerts/{alias}/close"));
    assert_eq!(seen[1].uri.query(), Some("identifierType=alias"));
    assert_eq!(seen[1].method, Method::POST);
}

#[tokio::test]
async fn github_opens_an_issue_on_down_then_comments_on_and_closes_that_issue() {
    let (app, _hb, seen) = run(
        "github",
        json!({"token": "ghp_0123456789abcdefghij", "repo": "acme/ops"}),
        json!({"number": 1347, "state": "open"}),
    )
    .await;
    assert_eq!(seen.len(), 3, "{seen:?}");
    for s in &seen {
        assert_eq!(s.header("authorization"), "Bearer ghp_0123456789abcdefghij");
        assert_eq!(s.header("accept"), "application/vnd.github+json");
        assert_eq!(s.header("x-github-api-version"), "2022-11-28");
    }
    assert_eq!(seen[0].method, Method::POST);
    assert_eq!(seen[0].uri.path(), "/repos/acme/ops/issues");
    assert_eq!(seen[0].json()["title"], format!("{NASTY} is DOWN"));
    assert_eq!(seen[1].method, Method::POST);
    assert_eq!(seen[1].uri.path(), "/repos/acme/ops/issues/1347/comments");
    assert!(seen[1].json()["body"]
        .as_str()
        .unwrap()
        .contains("up again"));
    assert_eq!(seen[2].method, Method::PATCH);
    assert_eq!(seen[2].uri.path(), "/repos/acme/ops/issues/1347");
    assert_eq!(seen[2].json()["state"], "closed");
    // Closed: nothing is kept for the next outage to reuse.
    let kept: i64 = app
        .db()
        .await
        .query_one("SELECT count(*) FROM heartbeat.channel_issue", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 0);
}

#[tokio::test]
async fn gitea_uses_its_v1_api_and_token_auth() {
    let (_app, _hb, seen) = run(
        "gitea",
        json!({"url": "", "token": "0123456789abcdef", "repo": "acme/ops"}),
        json!({"number": 7}),
    )
    .await;
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].uri.path(), "/api/v1/repos/acme/ops/issues");
    assert_eq!(seen[0].header("authorization"), "token 0123456789abcdef");
    assert_eq!(
        seen[1].uri.path(),
        "/api/v1/repos/acme/ops/issues/7/comments"
    );
    assert_eq!(seen[2].method, Method::PATCH);
    assert_eq!(seen[2].uri.path(), "/api/v1/repos/acme/ops/issues/7");
}

#[tokio::test]
async fn ntfy_gotify_and_telegram_get_their_documented_requests() {
    let (_app, _hb, seen) = run(
        "ntfy",
        json!({"topic": "backups", "token": "tk_abcdefghijklmnop"}),
        json!({"id": "x"}),
    )
    .await;
    assert_eq!(seen[0].uri.path(), "/");
    assert_eq!(
        seen[0].header("authorization"),
        "Bearer tk_abcdefghijklmnop"
    );
    let body = seen[0].json();
    assert_eq!(body["topic"], "backups");
    assert_eq!(body["title"], format!("{NASTY} is DOWN"));
    assert_eq!(body["priority"], 5);

    let (_app, _hb, seen) = run(
        "gotify",
        json!({"url": "", "token": "AbCdEf123456"}),
        json!({"id": 1}),
    )
    .await;
    assert_eq!(seen[0].uri.path(), "/message");
    assert_eq!(seen[0].header("x-gotify-key"), "AbCdEf123456");
    assert_eq!(seen[0].json()["title"], format!("{NASTY} is DOWN"));
    assert!(seen[0].json()["priority"].is_i64());

    let (_app, _hb, seen) = run(
        "telegram",
        json!({"bot_token": "123456:ABC-DEF1234ghIkl", "chat_id": -1001234}),
        json!({"ok": true, "result": {"message_id": 1}}),
    )
    .await;
    assert_eq!(
        seen[0].uri.path(),
        "/bot123456:ABC-DEF1234ghIkl/sendMessage"
    );
    let body = seen[0].json();
    assert_eq!(body["chat_id"], "-1001234");
    assert!(body["text"].as_str().unwrap().starts_with(NASTY));
}
