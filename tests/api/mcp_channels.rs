//! MCP's channel tools: `list_channels` shows where alerts go with secrets
//! masked and failing channels marked; `test_channel` sends a test and answers
//! its outcome; a read-only key may list but not test.

use serde_json::json;

use crate::mcp::{new_project, McpClient, ADMIN};
use crate::notify_channels::Receiver;

#[tokio::test]
async fn list_channels_masks_secrets_and_test_channel_answers_the_outcome() {
    let mut config = crate::helpers::test_config();
    config.admin_key = Some(ADMIN.into());
    config.monitor.loops = false;
    let app = crate::helpers::spawn_app_with(config).await;
    let (rw, ro) = new_project(&app, "ops").await;
    let (receiver, url) = Receiver::start(json!({})).await;
    let secret_url = format!("{url}/services/T000/B000/XXXX");
    let r = app
        .client
        .post(app.url("/api/channels"))
        .bearer_auth(&rw)
        .json(&json!({"name": "ops chat", "kind": "slack", "config": {"url": secret_url}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
    drop(dead);
    let r = app
        .client
        .post(app.url("/api/channels"))
        .bearer_auth(&rw)
        .json(&json!({"name": "gone", "kind": "webhook", "config": {"url": dead_url}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let (mut writer, _) = McpClient::connect(&app, Some(&rw)).await;
    let list = writer.call_ok("list_channels", json!({})).await;
    let channels = list["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 2, "{list}");
    let chat = &channels[0];
    assert_eq!(chat["name"], "ops chat");
    assert_eq!(chat["kind"], "slack");
    assert_eq!(
        chat["config"]["url"], "********",
        "the webhook URL is a secret"
    );
    assert!(!list.to_string().contains("XXXX"));

    let ok = writer
        .call_ok("test_channel", json!({"id": chat["id"]}))
        .await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["status"], 200);
    assert_eq!(receiver.seen().len(), 1);
    let gone_id = channels[1]["id"].clone();
    let failed = writer.call_ok("test_channel", json!({"id": gone_id})).await;
    assert_eq!(failed["ok"], false, "{failed}");
    assert!(failed["error"].as_str().is_some_and(|e| !e.is_empty()));
    let list = writer.call_ok("list_channels", json!({})).await;
    assert_eq!(list["channels"][1]["failing"], true, "{list}");
    assert_eq!(list["channels"][0]["failing"], false, "{list}");

    // Not a channel id: a tool error naming it, and the session carries on.
    let e = writer.call_err("test_channel", json!({"id": "../x"})).await;
    assert!(e.contains("not a channel id"), "{e}");
    let e = writer
        .call_err("test_channel", json!({"id": uuid::Uuid::nil()}))
        .await;
    assert!(e.contains("no channel"), "{e}");

    // A read-only key lists, and may not send.
    let (mut reader, _) = McpClient::connect(&app, Some(&ro)).await;
    let list = reader.call_ok("list_channels", json!({})).await;
    assert_eq!(list["channels"].as_array().unwrap().len(), 2);
    let e = reader
        .call_err("test_channel", json!({"id": chat["id"]}))
        .await;
    assert!(!e.is_empty());
    assert_eq!(
        receiver.seen().len(),
        1,
        "nothing sent for the read-only key"
    );
}
