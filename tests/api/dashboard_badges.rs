//! The dashboard's Badges view in headless Chromium, on a keyed daemon: one card
//! for the whole project and one per tag, each with its badge drawn (loaded from
//! the page's own origin, as its CSP requires) and the URLs and Markdown line the
//! API gives, ready to copy.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::dashboard::{find_chromium, screenshot_dir, Page};
use crate::hc_support::HcWorld;

#[tokio::test]
async fn in_chromium_an_operator_sees_each_badge_drawn_with_its_markdown_line() {
    let Some(chromium) = find_chromium() else {
        eprintln!("SKIPPED: Chromium is not installed (apt-get install chromium); the badges view test did not run");
        return;
    };
    let w = HcWorld::new().await;
    let up = w
        .create_check(
            json!({"name": "db backup", "tags": "db nightly", "timeout": 86400, "grace": 3600}),
        )
        .await;
    let down = w
        .create_check(json!({"name": "etl load", "tags": "etl", "timeout": 3600, "grace": 600}))
        .await;
    for (check, suffix) in [(&up, ""), (&down, "/fail")] {
        let url = w.app.url(&format!(
            "/ping/{}{suffix}",
            check["uuid"].as_str().unwrap()
        ));
        assert_eq!(w.ping(Method::GET, &url, "").await, 200);
    }
    let r = w
        .app
        .client
        .get(w.app.url("/api/badges"))
        .bearer_auth(w.ro())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    let badges: Vec<Value> = list["badges"].as_array().unwrap().clone();
    let shots = screenshot_dir();

    let run = async {
        let mut page = Page::launch(&chromium).await;
        // The page keeps the key it is given in this browser (set from an
        // asset of the same origin, so no page has asked for it yet).
        page.navigate(&w.app.url("/assets/style.css")).await;
        page.eval(&format!(
            "localStorage.setItem('heartbeat.apiKey', '{}'); true",
            w.ro()
        ))
        .await;
        page.navigate(&w.app.url("/#badges")).await;
        page.wait_for("document.querySelectorAll('#badges-body .card').length === 4")
            .await;
        assert_eq!(
            page.eval("document.getElementById('key-dialog').open")
                .await,
            false
        );
        let titles = page
            .eval("[...document.querySelectorAll('#badges-body .card h3')].map(h => h.textContent)")
            .await;
        let titles: Vec<String> = serde_json::from_value(titles).unwrap();
        assert_eq!(
            titles,
            ["All heartbeats", "Tag db", "Tag etl", "Tag nightly"]
        );
        // Each card's Markdown line and SVG URLs are the API's.
        for (i, b) in badges.iter().enumerate() {
            for (id, field) in [("md", "markdown"), ("svg", "svg"), ("svg3", "svg3")] {
                let shown = page
                    .eval(&format!(
                        "document.getElementById('badge-{id}-{i}').textContent"
                    ))
                    .await;
                assert_eq!(shown, b[field], "card {i}, {field}");
            }
        }
        // The badges are drawn: each image loaded, from this origin.
        page.wait_for(
            "[...document.querySelectorAll('#badges-body img.badge-preview')].every(i => i.complete && i.naturalWidth > 0)",
        )
        .await;
        let srcs = page
            .eval("[...document.querySelectorAll('#badges-body img.badge-preview')].map(i => new URL(i.src).origin === location.origin)")
            .await;
        assert_eq!(srcs, json!([true, true, true, true]));
        // The project badge is down (etl failed); db's is up.
        let alts = page
            .eval(
                "[...document.querySelectorAll('#badges-body img.badge-preview')].map(i => i.alt)",
            )
            .await;
        assert_eq!(
            alts,
            json!(["* badge", "db badge", "etl badge", "nightly badge"])
        );
        for (tag, state) in [("*", "down"), ("db", "up"), ("etl", "down")] {
            let b = badges.iter().find(|b| b["tag"] == tag).unwrap();
            let json_url = b["json3"].as_str().unwrap();
            let path = &json_url[json_url.find("/badge/").unwrap()..];
            let (status, body) = w.app.get_json(path).await;
            assert_eq!(status, 200);
            assert_eq!(body["status"], state, "{tag}: {body}");
        }
        page.screenshot(&shots.join("dashboard-badges.png")).await;
        page.close();
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the badges view run finishes within 60 s");
}
