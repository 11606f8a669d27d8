//! The dashboard's Channels page in headless Chromium: create a Slack channel
//! from its preset form, send a test and see the outcome, see the delivery in
//! the channel's history, see a broken channel marked failing, and route a new
//! heartbeat to a chosen channel from the heartbeat form. Screenshots land in
//! `target/e2e/`.

use std::time::Duration;

use serde_json::json;

use crate::dashboard::{find_chromium, screenshot_dir, Page};
use crate::helpers::spawn_app_with;
use crate::notify_channels::{quiet_config, Receiver};

#[tokio::test]
async fn in_chromium_an_operator_creates_a_channel_tests_it_and_routes_a_heartbeat_to_it() {
    let Some(chromium) = find_chromium() else {
        eprintln!("SKIPPED: Chromium is not installed (apt-get install chromium); the channels page test did not run");
        return;
    };
    let app = spawn_app_with(quiet_config()).await;
    let (receiver, url) = Receiver::start(json!({})).await;
    let shots = screenshot_dir();

    let run = async {
        let mut page = Page::launch(&chromium).await;
        page.navigate(&app.url("/#channels")).await;
        page.wait_for(
            "document.getElementById('clock').textContent.startsWith('updated')
             && !document.getElementById('view-channels').hidden
             && !document.getElementById('channels-empty').hidden",
        )
        .await;

        // Create from the Slack preset's form: only its field is shown.
        page.eval(&format!(
            "(() => {{ document.getElementById('new-channel-btn').click();
             const f = document.getElementById('channel-form');
             f.elements.kind.value = 'slack';
             f.elements.kind.dispatchEvent(new Event('change'));
             f.elements.name.value = 'ops chat';
             f.elements.cfg_url.value = '{url}/services/T000/B000/XXXX';
             f.elements.digest_schedule.value = '0 7 * * *';
             f.elements.digest_tz.value = 'Europe/Paris';
             document.getElementById('channel-save').click(); return true; }})()"
        ))
        .await;
        page.wait_for(
            "document.querySelectorAll('#channels-body tr.channel-row[data-state=\"ok\"]').length === 1
             && document.getElementById('channel-form').hidden
             && document.getElementById('channels-body').textContent.includes('0 7 * * * (Europe/Paris)')",
        )
        .await;
        let (_, list) = app.get_json("/api/channels").await;
        let slack = list["channels"][0].clone();
        assert_eq!(slack["kind"], "slack");
        assert_eq!(slack["name"], "ops chat");
        assert_eq!(slack["config"]["url"], "********");
        page.screenshot(&shots.join("10-channel-created.png")).await;

        // Test it: the outcome shows, and the receiver got Slack's format.
        page.eval(
            "document.querySelector('#channels-body tr.channel-row .test-btn').click(); true",
        )
        .await;
        page.wait_for(
            "document.getElementById('channel-test-result').dataset.state === 'ok'
             && document.getElementById('channel-test-result').textContent.includes('delivered (status 200)')",
        )
        .await;
        let seen = receiver.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].uri.path(), "/services/T000/B000/XXXX");
        assert!(seen[0].json()["text"]
            .as_str()
            .unwrap()
            .starts_with("Test notification from heartbeat"));
        page.eval(
            "document.querySelector('#channels-body tr.channel-row .deliveries-btn').click(); true",
        )
        .await;
        page.wait_for(
            "document.querySelector('#deliveries-body tr.delivery-row[data-event=\"test\"][data-state=\"delivered\"]') !== null",
        )
        .await;
        page.screenshot(&shots.join("11-channel-tested.png")).await;

        // A channel nobody answers: its test fails, and it shows as failing.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_url = format!("http://{}/hook", dead.local_addr().unwrap());
        drop(dead);
        let (status, gone) = app
            .post_json(
                "/api/channels",
                &json!({"name": "gone", "kind": "webhook", "config": {"url": dead_url}}),
            )
            .await;
        assert_eq!(status, 201, "{gone}");
        let gone_row = format!(
            "#channels-body tr.channel-row[data-id=\"{}\"]",
            gone["id"].as_str().unwrap()
        );
        page.wait_for(&format!("document.querySelector('{gone_row}') !== null"))
            .await;
        page.eval(&format!(
            "document.querySelector('{gone_row} .test-btn').click(); true"
        ))
        .await;
        page.wait_for(&format!(
            "document.getElementById('channel-test-result').dataset.state === 'failed'
             && document.querySelector('{gone_row}[data-state=\"failing\"]') !== null"
        ))
        .await;
        page.screenshot(&shots.join("12-channel-failing.png")).await;
        page.screenshot(&shots.join("dashboard-channels.png")).await;

        // The heartbeat form picks channels.
        page.navigate(&app.url("/#heartbeats")).await;
        page.wait_for("!document.getElementById('view-heartbeats').hidden")
            .await;
        page.eval("document.getElementById('new-heartbeat-btn').click(); true")
            .await;
        page.wait_for(
            "!document.getElementById('heartbeat-channels').hidden
             && document.querySelectorAll('#heartbeat-channel-list input[type=checkbox]').length === 2",
        )
        .await;
        let slack_id = slack["id"].as_str().unwrap().to_string();
        page.eval(&format!(
            "(() => {{ const f = document.getElementById('heartbeat-form');
             const mode = document.getElementById('heartbeat-channel-mode');
             mode.value = 'chosen';
             mode.dispatchEvent(new Event('change'));
             document.querySelector('#heartbeat-channel-list input[value=\"{slack_id}\"]').checked = true;
             f.elements.name.value = 'routed backup';
             document.getElementById('heartbeat-save').click(); return true; }})()"
        ))
        .await;
        page.wait_for("!document.getElementById('created').hidden")
            .await;
        page.screenshot(&shots.join("13-heartbeat-routed.png"))
            .await;
        let (_, all) = app.get_json("/api/heartbeats").await;
        let hb = all["heartbeats"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == "routed backup")
            .expect("the heartbeat made from the form")
            .clone();
        assert_eq!(hb["channels"], json!([slack_id]));
        page.close();
    };
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the channels page run finishes within 90 s");
}
