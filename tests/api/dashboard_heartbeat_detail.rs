//! The heartbeats list and a heartbeat's detail view in headless Chromium, with
//! a month of history in them: the timeline of pings, runs and status changes for
//! the last 24 hours and the last 30 days, run durations in words (`?rid=` runs
//! included), and a ping's body, shown as text, on click. The pings are sent over
//! HTTP and then moved back in time in the database; the flips are written there.

use std::time::Duration;

use serde_json::{json, Value};

use crate::dashboard::{find_chromium, screenshot_dir, Page};
use crate::helpers::TestApp;
use crate::monitor::{create, quiet_app};

/// The path of a heartbeat's ping URL, e.g. `/hb/hb_...`.
fn ping_path(hb: &Value) -> String {
    let url = hb["ping_url"].as_str().unwrap();
    url[url.find("/hb/").unwrap()..].to_string()
}

async fn ping(app: &TestApp, path: &str, body: &str) {
    let r = app
        .client
        .post(app.url(path))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
}

/// `text` says `minutes` minutes ago, or one more (the test's own run time).
fn minutes_ago(text: &str, minutes: u32) -> bool {
    [minutes, minutes + 1]
        .iter()
        .any(|m| text == format!("{m} minutes ago"))
}

fn strings(v: Value) -> Vec<String> {
    serde_json::from_value(v).unwrap()
}

const RUN_1: &str = "0b0e3c1e-0000-4000-8000-000000000001";
const RUN_2: &str = "0b0e3c1e-0000-4000-8000-000000000002";
const HOSTILE_BODY: &str = "<img src=x onerror=alert(1)> disk full on /dev/sda1";

/// A nightly backup's month: a 12½-minute `rid` run ten days ago, a failure with
/// a body three days ago (down), a 95-second `rid` run five hours ago (up again)
/// and a plain success twenty minutes ago.
async fn a_month_of_history(app: &TestApp) -> String {
    let hb = create(
        app,
        json!({"name": "nightly backup", "period_seconds": 86400, "grace_seconds": 3600}),
    )
    .await;
    let id = hb["id"].as_str().unwrap().to_string();
    let path = ping_path(&hb);
    ping(app, &format!("{path}/start?rid={RUN_1}"), "").await;
    ping(app, &format!("{path}?rid={RUN_1}"), "backup done: 42 files").await;
    ping(app, &format!("{path}/1"), HOSTILE_BODY).await;
    ping(app, &format!("{path}/start?rid={RUN_2}"), "").await;
    ping(app, &format!("{path}?rid={RUN_2}"), "backup done: 43 files").await;
    ping(app, &format!("{path}/0"), "verify ok").await;
    // Oldest first: when each ping happened, seconds back from now, and the run
    // time a finish carries.
    let history: [(i64, Option<i64>); 6] = [
        (10 * 86400 + 750, None),
        (10 * 86400, Some(750_000)),
        (3 * 86400, None),
        (5 * 3600 + 95, None),
        (5 * 3600, Some(95_000)),
        (20 * 60, None),
    ];
    let db = app.db().await;
    let seqs: Vec<i64> = db
        .query(
            "SELECT seq FROM heartbeat.ping WHERE heartbeat_id = $1::text::uuid ORDER BY seq",
            &[&id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(seqs.len(), 6);
    for (seq, (back, duration)) in seqs.iter().zip(history) {
        db.execute(
            "UPDATE heartbeat.ping SET at = now() - make_interval(secs => $3), duration_ms = $4
             WHERE heartbeat_id = $1::text::uuid AND seq = $2",
            &[&id, seq, &(back as f64), &duration],
        )
        .await
        .unwrap();
    }
    db.execute(
        "UPDATE heartbeat.heartbeat SET last_ping_at = now() - interval '20 minutes',
                last_signal_at = now() - interval '20 minutes'
         WHERE heartbeat_id = $1::text::uuid",
        &[&id],
    )
    .await
    .unwrap();
    db.execute(
        "DELETE FROM heartbeat.flip WHERE heartbeat_id = $1::text::uuid",
        &[&id],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO heartbeat.flip (heartbeat_id, at, from_status, to_status, detected_at, cause)
         VALUES ($1::text::uuid, now() - interval '10 days', 'pending', 'up', now() - interval '10 days', 'success'),
                ($1::text::uuid, now() - interval '3 days', 'up', 'down', now() - interval '3 days', 'fail'),
                ($1::text::uuid, now() - interval '5 hours', 'down', 'up', now() - interval '5 hours', 'success')",
        &[&id],
    )
    .await
    .unwrap();
    id
}

/// A few more heartbeats, so the list shows each status.
async fn neighbours(app: &TestApp) {
    let up = create(
        app,
        json!({"name": "hourly export", "period_seconds": 3600, "grace_seconds": 300}),
    )
    .await;
    ping(app, &ping_path(&up), "").await;
    let down = create(
        app,
        json!({"name": "report mailer", "period_seconds": 604800, "grace_seconds": 7200}),
    )
    .await;
    ping(app, &format!("{}/fail", ping_path(&down)), "smtp refused").await;
    create(
        app,
        json!({"name": "cache warmer", "period_seconds": 900, "grace_seconds": 60}),
    )
    .await;
}

#[tokio::test]
async fn in_chromium_an_operator_reads_a_heartbeats_day_and_month_its_runs_and_a_ping_body() {
    let Some(chromium) = find_chromium() else {
        eprintln!("SKIPPED: Chromium is not installed (apt-get install chromium); the heartbeat detail test did not run");
        return;
    };
    let app = quiet_app().await;
    let id = a_month_of_history(&app).await;
    neighbours(&app).await;
    let shots = screenshot_dir();
    let run = async {
        let mut page = Page::launch(&chromium).await;
        page.navigate(&app.url("/#heartbeats")).await;
        page.wait_for("document.querySelectorAll('#heartbeats-body tr.hb-row').length === 4")
            .await;
        // Periods and graces in words, the last ping relative with the exact
        // time on hover.
        let row = page
            .eval(&format!("[...document.querySelector('tr.hb-row[data-id=\"{id}\"]').cells].slice(1, 6).map(c => c.textContent)"))
            .await;
        let row = strings(row);
        assert_eq!(row[..4], ["nightly backup", "up", "1 day", "1 hour"]);
        assert!(minutes_ago(&row[4], 20), "{row:?}");
        let hover = page
            .eval(&format!(
                "document.querySelector('tr.hb-row[data-id=\"{id}\"] time').title"
            ))
            .await;
        assert!(!hover.as_str().unwrap().is_empty(), "{hover}");
        let mailer = page
            .eval("[...document.querySelectorAll('tr.hb-row')].find(r => r.textContent.includes('report mailer')).dataset.status")
            .await;
        assert_eq!(mailer, "down");
        page.screenshot(&shots.join("dashboard-heartbeats.png"))
            .await;

        // Open it from the list: the last 24 hours.
        page.eval(&format!(
            "document.querySelector('tr.hb-row[data-id=\"{id}\"] a').click(); true"
        ))
        .await;
        page.wait_for("document.querySelectorAll('#hb-timeline-svg .tl-ping').length === 3")
            .await;
        let summary = page
            .eval("document.getElementById('hb-detail').textContent")
            .await;
        let summary = summary.as_str().unwrap();
        assert!(summary.contains("Every 1 day · grace 1 hour"), "{summary}");
        assert!(summary.contains("last ping 20 minutes"), "{summary}");
        let band = page
            .eval("[...document.querySelectorAll('#hb-timeline-svg .tl-status')].map(r => r.dataset.status)")
            .await;
        assert_eq!(strings(band), ["down", "up"]);
        let runs = page
            .eval("[...document.querySelectorAll('#hb-runs tr.run-row')].map(r => r.cells[2].textContent + ' ' + r.cells[3].textContent + ' ' + r.cells[4].textContent)")
            .await;
        assert_eq!(strings(runs), ["1 minute 35 seconds success 0b0e3c1e"]);
        let note = page
            .eval("document.getElementById('hb-range-note').textContent")
            .await;
        assert_eq!(note, "3 pings, 1 run, 1 status change in this range");

        // The last 30 days.
        page.eval("document.querySelector('#hb-range button[data-range=month]').click(); true")
            .await;
        page.wait_for("document.querySelectorAll('#hb-timeline-svg .tl-ping').length === 6")
            .await;
        let band = page
            .eval("[...document.querySelectorAll('#hb-timeline-svg .tl-status')].map(r => r.dataset.status)")
            .await;
        assert_eq!(strings(band), ["pending", "up", "down", "up"]);
        let runs = page
            .eval("[...document.querySelectorAll('#hb-runs tr.run-row')].map(r => r.cells[2].textContent)")
            .await;
        assert_eq!(
            strings(runs),
            ["1 minute 35 seconds", "12 minutes 30 seconds"]
        );
        let flips = page
            .eval("[...document.querySelectorAll('#hb-flips tr.flip-row')].map(r => [...r.cells].map(c => c.textContent))")
            .await;
        let flips: Vec<Vec<String>> = serde_json::from_value(flips).unwrap();
        let changes: Vec<String> = flips.iter().map(|f| f[1..].join(" ")).collect();
        assert_eq!(
            changes,
            ["down up success", "up down fail", "pending up success"]
        );
        // Relative times: whole hours (the seconds the test takes may add a
        // minute), whole days.
        assert!(flips[0][0].starts_with("5 hours"), "{flips:?}");
        assert_eq!(flips[1][0], "3 days ago");
        assert_eq!(flips[2][0], "10 days ago");
        let kinds = page
            .eval(
                "[...document.querySelectorAll('#hb-pings tr.ping-row')].map(r => r.dataset.kind)",
            )
            .await;
        assert_eq!(
            strings(kinds),
            ["success", "success", "start", "fail", "success", "start"]
        );
        let newest = page
            .eval("document.querySelector('#hb-pings tr.ping-row').cells[0].textContent")
            .await;
        assert!(minutes_ago(newest.as_str().unwrap(), 20), "{newest}");

        // A ping's body on click, as text: the markup in it stays inert.
        page.eval("document.querySelector('#hb-pings tr.ping-row[data-kind=fail]').click(); true")
            .await;
        page.wait_for("!document.getElementById('hb-ping-body').hidden")
            .await;
        let body = page
            .eval("document.getElementById('hb-ping-body-text').textContent")
            .await;
        assert_eq!(body, HOSTILE_BODY);
        assert_eq!(
            page.eval("document.querySelector('#hb-ping-body img, #hb-pings img') === null")
                .await,
            true
        );
        let title = page
            .eval("document.getElementById('hb-ping-body-title').textContent")
            .await;
        assert!(
            title
                .as_str()
                .unwrap()
                .contains("fail (exit 1), 3 days ago"),
            "{title}"
        );
        // The same from the timeline: a click on a ping mark.
        page.eval("[...document.querySelectorAll('#hb-timeline-svg .tl-ping')].at(0).dispatchEvent(new MouseEvent('click', {bubbles: true})); true")
            .await;
        page.wait_for("document.getElementById('hb-ping-body-text').textContent === 'verify ok'")
            .await;
        page.screenshot(&shots.join("dashboard-heartbeat-detail.png"))
            .await;
        page.close();
    };
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the heartbeat detail run finishes within 90 s");
}
