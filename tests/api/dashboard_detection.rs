//! The dashboard's heartbeat page in headless Chromium shows the detection
//! rules at work: a missed deadline below the failure threshold, which changes
//! no status, is listed with its reason, and the streak against the threshold.

use heartbeat::monitor::ping::PingKind;
use serde_json::json;

use crate::dashboard::{find_chromium, screenshot_dir, Page};
use crate::detection_rules::{one, secs, t0, tick};
use crate::monitor::{create, quiet_app};

#[tokio::test]
async fn in_chromium_a_missed_deadline_below_the_threshold_is_listed_on_the_heartbeat_page() {
    let Some(chromium) = find_chromium() else {
        eprintln!("SKIPPED: Chromium is not installed (apt-get install chromium); the detection view test did not run");
        return;
    };
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "nightly", "period_seconds": 600, "grace_seconds": 60,
               "failure_threshold": 3}),
    )
    .await;
    one(&app, &hb, PingKind::Success, t0()).await;
    tick(&app, t0()).await;
    tick(&app, t0() + secs(661)).await;
    let mut page = Page::launch(&chromium).await;
    let id = hb["id"].as_str().unwrap();
    page.navigate(&app.url(&format!("/#heartbeat/{id}"))).await;
    page.wait_for("document.querySelectorAll('#hb-events tr.hb-event').length === 1")
        .await;
    let row = page
        .eval("document.querySelector('#hb-events tr.hb-event').textContent")
        .await;
    let row = row.as_str().unwrap();
    assert!(row.contains("missed"), "{row}");
    assert!(
        row.contains(
            "nothing heard by 2030-03-04T10:11:00Z: due 2030-03-04T10:10:00Z, grace_seconds 60"
        ),
        "{row}"
    );
    let streak = page
        .eval("document.getElementById('hb-streak').textContent")
        .await;
    assert!(
        streak
            .as_str()
            .unwrap()
            .contains("Failures in a row: 1 of 3"),
        "{streak}"
    );
    page.screenshot(&screenshot_dir().join("heartbeat-detection.png"))
        .await;
    page.close();
}

#[tokio::test]
async fn in_chromium_the_heartbeats_list_shows_tags_and_filters_by_one() {
    let Some(chromium) = find_chromium() else {
        eprintln!("SKIPPED: Chromium is not installed (apt-get install chromium); the tag filter test did not run");
        return;
    };
    let app = quiet_app().await;
    create(&app, json!({"name": "db-dump", "tags": ["db", "nightly"]})).await;
    create(&app, json!({"name": "web-check", "tags": ["web"]})).await;
    let mut page = Page::launch(&chromium).await;
    page.navigate(&app.url("/#heartbeats")).await;
    page.wait_for("document.querySelectorAll('#heartbeats-body tr.hb-row .tag').length === 3")
        .await;
    let visible = "[...document.querySelectorAll('#heartbeats-body tr.hb-row')].filter(r => !r.hidden).map(r => r.children[1].querySelector('a').textContent)";
    let all: Vec<String> = serde_json::from_value(page.eval(visible).await).unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    page.eval("(() => { const s = document.getElementById('tag-filter-select'); s.value = 'db'; s.dispatchEvent(new Event('change')); })()")
        .await;
    page.wait_for("document.querySelectorAll('#heartbeats-body tr.hb-row[hidden]').length === 1")
        .await;
    let shown: Vec<String> = serde_json::from_value(page.eval(visible).await).unwrap();
    assert_eq!(shown, ["db-dump"]);
    page.screenshot(&screenshot_dir().join("heartbeats-tag-filter.png"))
        .await;
    page.close();
}
