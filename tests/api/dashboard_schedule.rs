//! The dashboard's schedule view in headless Chromium: each entry's expression in
//! words, next fire in both zones, last success, counters, and the pause, resume
//! and trigger buttons acting on the daemon. Durations read in words.

use crate::dashboard::{find_chromium, screenshot_dir, Page};
use crate::helpers::{spawn_app_with, test_config};

#[tokio::test]
async fn in_chromium_an_operator_reads_the_cron_table_and_pauses_resumes_and_triggers_an_entry() {
    let Some(chromium) = find_chromium() else {
        eprintln!("SKIPPED: Chromium is not installed (apt-get install chromium); the schedule view test did not run");
        return;
    };
    // The tick loop runs, so the view has next fire times to show.
    let mut config = test_config();
    config.no_scheduler = false;
    config.schedule.timezone = "Europe/Berlin".parse().unwrap();
    let app = spawn_app_with(config).await;
    let shots = screenshot_dir();
    let mut page = Page::launch(&chromium).await;
    page.navigate(&app.url("/#schedule")).await;
    page.wait_for("document.querySelectorAll('#schedule-body tr').length >= 5")
        .await;
    let words = page
        .eval("[...document.querySelectorAll('#schedule-body tr')].map(r => r.dataset.entry + ': ' + r.querySelector('.cron-words').textContent)")
        .await;
    let words: Vec<String> = serde_json::from_value(words).unwrap();
    assert!(
        words.contains(&"recompute: at minute 17 of every hour".to_string()),
        "{words:?}"
    );
    assert!(
        words.contains(&"benchmarks: every day at 04:23".to_string()),
        "{words:?}"
    );
    let zone = page
        .eval("document.getElementById('schedule-zone').textContent")
        .await;
    assert!(zone.as_str().unwrap().contains("Europe/Berlin"), "{zone}");
    let next = page
        .eval("document.querySelector('tr[data-entry=recompute] td:nth-child(3)').textContent")
        .await;
    assert!(
        next.as_str().unwrap().contains("(Europe/Berlin)"),
        "both zones: {next}"
    );

    // Pause: the daemon holds the pause, the view says so.
    page.eval("document.querySelector('button[data-entry=recompute][data-verb=pause]').click()")
        .await;
    page.wait_for(
        "document.querySelector('tr[data-entry=recompute] .state').textContent === 'paused'",
    )
    .await;
    let (_, view) = app.get_json("/api/schedule").await;
    assert_eq!(view["entries"][0]["paused"], true, "{view}");
    page.screenshot(&shots.join("schedule-paused.png")).await;
    page.eval("document.querySelector('button[data-entry=recompute][data-verb=resume]').click()")
        .await;
    page.wait_for(
        "document.querySelector('tr[data-entry=recompute] .state').textContent === 'active'",
    )
    .await;
    // Trigger: a manual job through the gate.
    page.eval("document.querySelector('button[data-entry=segments][data-verb=trigger]').click()")
        .await;
    page.wait_for(
        "document.getElementById('schedule-result').textContent.includes('segments triggered')",
    )
    .await;
    // The start-up catch-up may still run segments, which then absorbs the
    // trigger; either way the job the note names is a segments job.
    let note = page
        .eval("document.getElementById('schedule-result').textContent")
        .await;
    let job_id = note
        .as_str()
        .unwrap()
        .split("job ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    let (status, job) = app.get_json(&format!("/api/jobs/{job_id}")).await;
    assert_eq!(status, 200, "{note}");
    assert_eq!(job["kind"], "segments", "{job}");
    page.screenshot(&shots.join("schedule.png")).await;

    // Durations in words, as the page writes them.
    let said = page
        .eval("[86400, 300, 425 * 1200, 45, 3600 * 25].map(durationInWords)")
        .await;
    assert_eq!(
        said,
        serde_json::json!([
            "1 day",
            "5 minutes",
            "5 days 21 hours",
            "45 seconds",
            "1 day 1 hour"
        ])
    );
    page.close();
}
