//! The dashboard's segments view in headless Chromium: the empty state before any
//! snapshot, then two days of snapshots: the newest day's counts per tier, a page
//! of a tier's clients by rank, the day before through the previous-day button,
//! and a client's tier history opened by clicking the client or typing its id.

use std::time::Duration;

use serde_json::Value;

use crate::dashboard::{find_chromium, screenshot_dir, Page};
use crate::helpers::spawn_app;

/// Two snapshot days: on 2026-03-02 acme rose from mid to top and bolt fell from
/// top to mid; 40 micro clients fill more than one page.
const SNAPSHOTS: &str = "
INSERT INTO heartbeat.client_segment_snapshot
    (snapshot_date, client_id, tier, score, rank, window_days, computed_at)
VALUES ('2026-03-01', 'bolt', 'top', 90, 1, 30, now() - interval '1 day'),
       ('2026-03-01', 'acme', 'mid', 40, 2, 30, now() - interval '1 day'),
       ('2026-03-01', 'core', 'mid', 30, 3, 30, now() - interval '1 day'),
       ('2026-03-02', 'acme', 'top', 120, 1, 30, now() - interval '3 hours'),
       ('2026-03-02', 'bolt', 'mid', 50, 2, 30, now() - interval '3 hours'),
       ('2026-03-02', 'core', 'mid', 35, 3, 30, now() - interval '3 hours');
INSERT INTO heartbeat.client_segment_snapshot
    (snapshot_date, client_id, tier, score, rank, window_days, computed_at)
SELECT '2026-03-02', 'small-' || lpad(i::text, 2, '0'), 'micro', 10 - i / 10.0, 3 + i, 30,
       now() - interval '3 hours'
FROM generate_series(1, 40) AS i";

fn strings(v: Value) -> Vec<String> {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn in_chromium_an_operator_reads_the_tiers_of_a_day_pages_through_a_tier_and_opens_a_clients_history(
) {
    let Some(chromium) = find_chromium() else {
        eprintln!("SKIPPED: Chromium is not installed (apt-get install chromium); the segments view test did not run");
        return;
    };
    let app = spawn_app().await;
    let shots = screenshot_dir();
    let run = async {
        let mut page = Page::launch(&chromium).await;
        page.navigate(&app.url("/#segments")).await;
        // No snapshot yet: the view says how one is made.
        page.wait_for(
            "!document.getElementById('segments-empty').hidden
             && document.getElementById('segments-empty').textContent.includes('No segment snapshot yet')",
        )
        .await;
        assert_eq!(
            page.eval("document.getElementById('segments-day').hidden")
                .await,
            true
        );

        app.db().await.batch_execute(SNAPSHOTS).await.unwrap();
        page.eval("document.getElementById('segments-latest').click(); true")
            .await;
        page.wait_for(
            "document.getElementById('segments-shown-date')?.textContent === '2026-03-02'",
        )
        .await;
        let counts = page
            .eval("[...document.querySelectorAll('#segments-tiers .tier-card')].map(b => b.dataset.tier + ' ' + b.querySelector('.tier-count').textContent)")
            .await;
        assert_eq!(strings(counts), ["top 1", "mid 2", "micro 40"]);
        let meta = page
            .eval("document.getElementById('segments-meta').textContent")
            .await;
        let meta = meta.as_str().unwrap();
        assert!(
            meta.contains("computed 3 hours") && meta.contains("43 clients"),
            "{meta}"
        );
        assert!(meta.contains("activity over 30 days"), "{meta}");
        // The exact time is on hover.
        let hover = page
            .eval("(() => { const t = document.querySelector('#segments-meta time'); return [t.title, t.textContent, String(Math.abs(Date.parse(t.dateTime) - (Date.now() - 3 * 3600e3)) < 120e3)]; })()")
            .await;
        let hover = strings(hover);
        assert!(
            !hover[0].is_empty() && hover[0] != hover[1] && hover[2] == "true",
            "{hover:?}"
        );
        let top = page
            .eval("[...document.querySelectorAll('#segments-body tr')].map(r => r.textContent)")
            .await;
        assert_eq!(strings(top), ["1acmetop120"]);

        // The micro tier, a page at a time.
        page.eval("document.querySelector('.tier-card[data-tier=micro]').click(); true")
            .await;
        page.wait_for("document.querySelectorAll('#segments-body tr').length === 25")
            .await;
        let title = page
            .eval("document.getElementById('segments-page-title').textContent")
            .await;
        assert_eq!(title, "Tier micro: 1–25 of 40");
        page.eval("document.getElementById('segments-next-page').click(); true")
            .await;
        page.wait_for("document.querySelectorAll('#segments-body tr').length === 15")
            .await;
        let first = page
            .eval("document.querySelector('#segments-body tr').dataset.client")
            .await;
        assert_eq!(first, "small-26");
        assert_eq!(
            page.eval("document.getElementById('segments-next-page').disabled")
                .await,
            true
        );

        // The day before, through the previous-day button.
        page.eval("document.querySelector('.tier-card[data-tier=mid]').click(); true")
            .await;
        page.wait_for(
            "document.getElementById('segments-page-title').textContent === 'Tier mid: 1–2 of 2'",
        )
        .await;
        page.screenshot(&shots.join("segments-mid-tier.png")).await;
        page.eval("document.getElementById('segments-prev-day').click(); true")
            .await;
        page.wait_for(
            "document.getElementById('segments-shown-date')?.textContent === '2026-03-01'",
        )
        .await;
        let counts = page
            .eval("[...document.querySelectorAll('#segments-tiers .tier-card')].map(b => b.dataset.tier + ' ' + b.querySelector('.tier-count').textContent)")
            .await;
        assert_eq!(strings(counts), ["top 1", "mid 2", "micro 0"]);
        let mid = page
            .eval("[...document.querySelectorAll('#segments-body tr')].map(r => r.dataset.client)")
            .await;
        assert_eq!(strings(mid), ["acme", "core"]);

        // A day with no snapshot says so, and the next-day button goes back.
        page.eval("document.getElementById('segments-prev-day').click(); true")
            .await;
        page.wait_for("document.getElementById('segments-empty').textContent.includes('No snapshot for 2026-02-28')")
            .await;
        page.eval("document.getElementById('segments-next-day').click(); true")
            .await;
        page.wait_for(
            "document.getElementById('segments-shown-date')?.textContent === '2026-03-01'
             && document.getElementById('segments-empty').hidden",
        )
        .await;

        // Click a client: its tier per day, newest first, with the move.
        page.eval(
            "document.querySelector('#segments-body tr[data-client=acme] button').click(); true",
        )
        .await;
        page.wait_for("document.querySelectorAll('#segment-history-body tr').length === 2")
            .await;
        let history = page
            .eval("[...document.querySelectorAll('#segment-history-body tr')].map(r => [...r.cells].map(c => c.textContent).join(' | '))")
            .await;
        assert_eq!(
            strings(history),
            [
                "2026-03-02 | top (mid → top) | 1 | 120 | 30 days",
                "2026-03-01 | mid | 2 | 40 | 30 days"
            ]
        );
        let title = page
            .eval("document.getElementById('segment-history-title').textContent")
            .await;
        assert_eq!(title, "Client acme: top on 2026-03-02 (2 days of history)");

        // Type an id: another client's history; an unknown one is named.
        page.eval(
            "document.getElementById('segment-client').value = 'bolt';
             document.querySelector('#segment-client-form button[type=submit]').click(); true",
        )
        .await;
        page.wait_for("document.querySelector('#segment-history-body tr')?.dataset.tier === 'mid'")
            .await;
        let bolt = page
            .eval("[...document.querySelectorAll('#segment-history-body tr')].map(r => r.dataset.date + ' ' + r.dataset.tier)")
            .await;
        assert_eq!(strings(bolt), ["2026-03-02 mid", "2026-03-01 top"]);
        page.eval("document.getElementById('segments-latest').click(); true")
            .await;
        page.wait_for(
            "document.getElementById('segments-shown-date')?.textContent === '2026-03-02'",
        )
        .await;
        page.screenshot(&shots.join("dashboard-segments.png")).await;
        page.eval(
            "document.getElementById('segment-client').value = 'nobody';
             document.querySelector('#segment-client-form button[type=submit]').click(); true",
        )
        .await;
        page.wait_for("document.getElementById('segment-history-body').textContent.includes(\"client 'nobody' is in no segment snapshot\")")
            .await;
        page.close();
    };
    tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the segments view run finishes within 90 s");
}
