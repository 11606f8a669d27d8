//! Badges as healthchecks.io documents them (healthchecks.io/docs/badges/ and
//! `GET badges/` at healthchecks.io/docs/api/): per tag and for the whole
//! project, SVG, JSON and shields.io endpoint formats, 2-state and 3-state,
//! at URLs that need no key; and the dashboard's Badges view.

use reqwest::Method;
use serde_json::{json, Value};

use crate::hc_support::{path_of, HcWorld};

/// A badge fetched without a key: status, content type, cache header, body.
async fn fetch(w: &HcWorld, url: &str) -> (u16, String, String, String) {
    let r = w
        .app
        .client
        .get(w.app.url(&path_of(url)))
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (ct, cache) = (header("content-type"), header("cache-control"));
    if r.status() == 200 {
        assert_eq!(header("access-control-allow-origin"), "*");
    }
    (r.status().as_u16(), ct, cache, r.text().await.unwrap())
}

#[tokio::test]
async fn badges_per_tag_and_project_in_every_format_and_style_need_no_key() {
    let w = HcWorld::new().await;
    let up = w
        .create_check(json!({"name": "Up", "tags": "db web", "timeout": 3600, "grace": 600}))
        .await;
    let late = w
        .create_check(json!({"name": "Late", "tags": "db", "timeout": 60, "grace": 3600}))
        .await;
    let down = w
        .create_check(json!({"name": "Down", "tags": "etl", "timeout": 3600, "grace": 600}))
        .await;
    for c in [&up, &late] {
        let url = w.app.url(&format!("/ping/{}", c["uuid"].as_str().unwrap()));
        assert_eq!(w.ping(Method::GET, &url, "").await, 200);
    }
    let url = w
        .app
        .url(&format!("/ping/{}/fail", down["uuid"].as_str().unwrap()));
    assert_eq!(w.ping(Method::GET, &url, "").await, 200);
    // "Late" was last pinged two minutes ago: past its minute, within its grace.
    w.app
        .db()
        .await
        .execute(
            "UPDATE heartbeat.heartbeat SET last_ping_at = now() - interval '2 minutes',
                    last_signal_at = now() - interval '2 minutes' WHERE name = 'Late'",
            &[],
        )
        .await
        .unwrap();

    for (v, key) in [("v1", w.ro()), ("v3", w.rw())] {
        let (status, list) = w
            .call(Method::GET, &format!("/api/{v}/badges/"), Some(key))
            .await;
        assert_eq!(status, 200, "{list}");
        let badges = list["badges"].as_object().unwrap();
        let mut tags: Vec<&String> = badges.keys().collect();
        tags.sort();
        assert_eq!(tags, ["*", "db", "etl", "web"]);
        for urls in badges.values() {
            for f in ["svg", "svg3", "json", "json3", "shields", "shields3"] {
                assert!(urls[f].as_str().unwrap().contains("/badge/"), "{urls}");
            }
        }
    }
    assert_eq!(
        w.call(Method::GET, "/api/v3/badges/", None).await,
        (401, json!({"error": "missing api key"}))
    );
    let (_, list) = w.call(Method::GET, "/api/v3/badges/", Some(w.ro())).await;
    let b = &list["badges"];

    // db: one up, one late. 2-state says up, 3-state late.
    let (status, ct, cache, body) = fetch(&w, b["db"]["json"].as_str().unwrap()).await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    assert_eq!(cache, "public, max-age=30");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": "up", "total": 2, "grace": 1, "down": 0})
    );
    let (_, _, _, body) = fetch(&w, b["db"]["json3"].as_str().unwrap()).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "late"
    );
    let (_, ct, _, body) = fetch(&w, b["db"]["svg3"].as_str().unwrap()).await;
    assert_eq!(ct, "image/svg+xml");
    assert!(body.starts_with("<svg") && body.contains(">db<") && body.contains(">late<"));
    let (_, _, _, body) = fetch(&w, b["db"]["shields3"].as_str().unwrap()).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"schemaVersion": 1, "label": "db", "message": "late", "color": "important"})
    );
    // The whole project: one check is down.
    let (_, _, _, body) = fetch(&w, b["*"]["shields"].as_str().unwrap()).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"schemaVersion": 1, "label": "all", "message": "down", "color": "critical"})
    );
    let (_, _, _, body) = fetch(&w, b["web"]["json"].as_str().unwrap()).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": "up", "total": 1, "grace": 0, "down": 0})
    );

    // Unguessable: another tag's signature, a changed key, an unknown format.
    let db_svg = b["db"]["svg"].as_str().unwrap().to_string();
    let web_svg = b["web"]["svg"].as_str().unwrap().to_string();
    let web_sig = web_svg.rsplit('/').nth(1).unwrap();
    let db_sig = db_svg.rsplit('/').nth(1).unwrap();
    let forged = db_svg.replace(db_sig, web_sig);
    let key = db_svg.rsplit('/').nth(2).unwrap();
    for url in [
        forged,
        db_svg.replace(key, "notthekey"),
        db_svg.replace(".svg", ".png"),
    ] {
        assert_eq!(fetch(&w, &url).await.0, 404, "{url}");
    }
    // The other project's badges are its own.
    let (_, theirs) = w
        .call(Method::GET, "/api/v3/badges/", Some(w.other_rw()))
        .await;
    assert_ne!(theirs["badges"]["*"]["svg"], b["*"]["svg"]);

    // A check's own badge, from its JSON.
    let (_, check) = w
        .call(
            Method::GET,
            &format!("/api/v3/checks/{}", down["uuid"].as_str().unwrap()),
            Some(w.rw()),
        )
        .await;
    let (status, ct, _, body) = fetch(&w, check["badge_url"].as_str().unwrap()).await;
    assert_eq!((status, ct.as_str()), (200, "image/svg+xml"));
    assert!(body.contains(">Down<") && body.contains(">down<"), "{body}");
    let three = check["badge_url"]
        .as_str()
        .unwrap()
        .replace("/b/2/", "/b/3/")
        .replace(".svg", ".json");
    let (_, _, _, body) = fetch(&w, &three).await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": "down", "total": 1, "grace": 0, "down": 1})
    );
    let bad = check["badge_url"]
        .as_str()
        .unwrap()
        .replace("/b/2/", "/b/4/");
    assert_eq!(fetch(&w, &bad).await.0, 404);
}

#[tokio::test]
async fn the_dashboard_lists_each_badge_with_a_markdown_snippet() {
    let w = HcWorld::new().await;
    w.create_check(json!({"name": "Tagged", "tags": "nightly"}))
        .await;
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
    let badges = list["badges"].as_array().unwrap();
    assert_eq!(badges.len(), 2);
    assert_eq!(badges[0]["tag"], "*");
    assert_eq!(badges[1]["tag"], "nightly");
    let svg = badges[1]["svg"].as_str().unwrap();
    assert_eq!(badges[1]["markdown"], format!("![nightly]({svg})"));
    assert_eq!(fetch(&w, svg).await.0, 200);
    // Keyed like the rest of /api.
    let r = w
        .app
        .client
        .get(w.app.url("/api/badges"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let (status, html) = {
        let r = w.app.client.get(w.app.url("/")).send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(status, 200);
    assert!(html.contains(r#"<script src="/assets/badges.js" defer></script>"#));
    assert!(html.contains(r#"id="view-badges""#));
    let r = w
        .app
        .client
        .get(w.app.url("/assets/badges.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let js = r.text().await.unwrap();
    assert!(js.contains("/api/badges") && js.contains("markdown"));
}
