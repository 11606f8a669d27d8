//! The escaping case for the `webhook` kind: a heartbeat named with quotes, a
//! newline, `&`, `#`, `%` and non-ASCII reaches a signed webhook intact, in a
//! JSON body the signature covers byte for byte (the other kinds: the
//! `http`, preset and email tests).

use heartbeat::notify::outbox::{sign, SIGNATURE_HEADER};
use serde_json::json;

use crate::helpers::spawn_app_with;
use crate::notify_channels::{add_channel, down_then_up, pinged, quiet_config, Receiver, NASTY};

#[tokio::test]
async fn a_hostile_name_reaches_a_signed_webhook_intact_for_down_and_up() {
    let app = spawn_app_with(quiet_config()).await;
    let (receiver, url) = Receiver::start(json!({})).await;
    let secret = "whsec_5f1d8c2a9b7e";
    add_channel(
        &app,
        json!({"kind": "webhook", "config": {"url": format!("{url}/hook?x=1"), "secret": secret}}),
    )
    .await;
    let (hb, when) = pinged(&app, NASTY, json!({})).await;
    down_then_up(&app, &hb, when).await;
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (request, event) in seen.iter().zip(["down", "up"]) {
        assert_eq!(request.uri.path(), "/hook");
        assert_eq!(request.uri.query(), Some("x=1"));
        assert!(request
            .header("content-type")
            .starts_with("application/json"));
        let body = request.json();
        assert_eq!(body["event"], event);
        assert_eq!(body["heartbeat"]["name"], NASTY);
        assert_eq!(
            request.header(SIGNATURE_HEADER),
            format!("sha256={}", sign(secret, &request.body))
        );
    }
}
