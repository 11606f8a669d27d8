//! A check's `methods`, as healthchecks.io applies it (its `hc/api/views.py`
//! `ping`, `Check.ping` in `hc/api/models.py`, and `test_it_requires_post` in
//! `hc/api/tests/test_ping.py`): with `"methods": "POST"`, a ping sent with
//! another method is answered `OK` as usual and kept as an ignored ping
//! (`"type": "ign"`); it counts in `n_pings` but changes no status, starts no
//! run and sets no `last_ping`. A POST counts; a check without `methods` takes
//! every method. The rule holds for each URL form of the one heartbeat:
//! `/ping/<uuid>`, `/ping/<ping_key>/<slug>` and `/hb/<token>`.

use chrono::Utc;
use heartbeat::monitor::deadline;
use reqwest::Method;
use serde_json::{json, Value};

use crate::hc_support::HcWorld;

/// A POST-only check (period an hour, grace a minute) in the team project.
async fn post_only(w: &HcWorld, slug: &str) -> Value {
    w.create_check(json!({
        "name": slug, "slug": slug, "timeout": 3600, "grace": 60, "methods": "POST"
    }))
    .await
}

/// Sends one ping; its status and text.
async fn ping(w: &HcWorld, method: Method, url: &str) -> (u16, String) {
    let r = w
        .app
        .client
        .request(method.clone(), url)
        .header("User-Agent", "hc-tests/1.0")
        .body(if method == Method::POST { "out" } else { "" })
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The check as the v3 Management API shows it, after the deadline loop has
/// seen every ping (so a status change, had there been one, is made).
async fn settled(w: &HcWorld, uuid: &str) -> Value {
    deadline::run_once(&w.app.state.pool, Utc::now())
        .await
        .unwrap();
    let (status, check) = w
        .call(Method::GET, &format!("/api/v3/checks/{uuid}"), Some(w.rw()))
        .await;
    assert_eq!(status, 200, "{check}");
    check
}

/// The heartbeat as Heartbeat's own API shows it.
async fn own(w: &HcWorld, uuid: &str) -> Value {
    let r = w
        .app
        .client
        .get(w.app.url("/api/heartbeats"))
        .bearer_auth(w.rw())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    list["heartbeats"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["uuid"] == uuid)
        .expect("the check is one of the project's heartbeats")
        .clone()
}

async fn own_pings(w: &HcWorld, hb: &Value) -> Vec<Value> {
    let r = w
        .app
        .client
        .get(w.app.url(&format!(
            "/api/heartbeats/{}/pings",
            hb["id"].as_str().unwrap()
        )))
        .bearer_auth(w.rw())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["pings"]
        .as_array()
        .unwrap()
        .clone()
}

fn types(pings: &[Value]) -> Vec<&str> {
    pings.iter().map(|p| p["type"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn get_and_head_to_a_post_only_check_are_ignored_pings() {
    let w = HcWorld::new().await;
    let check = post_only(&w, "nightly").await;
    assert_eq!(check["methods"], "POST");
    let uuid = check["uuid"].as_str().unwrap();
    let url = w.app.url(&format!("/ping/{uuid}"));
    // A failure sent with GET is ignored too: the method rule comes after
    // the exit status in healthchecks.io's view.
    for (method, suffix) in [
        (Method::GET, ""),
        (Method::HEAD, ""),
        (Method::GET, "/fail"),
        (Method::GET, "/1"),
        (Method::GET, "/log"),
    ] {
        let (status, text) = ping(&w, method.clone(), &format!("{url}{suffix}")).await;
        assert_eq!(status, 200, "{method} {suffix}");
        if method == Method::GET {
            assert_eq!(text.trim_end(), "OK");
        }
    }
    let check = settled(&w, uuid).await;
    assert_eq!(check["status"], "new", "{check}");
    assert_eq!(check["last_ping"], Value::Null);
    assert_eq!(check["n_pings"], 5);
    assert_eq!(check["started"], false);
    assert!(w.history(uuid, "flips").await.is_empty());
    let pings = w.history(uuid, "pings").await;
    assert_eq!(types(&pings), ["ign"; 5]);
    let methods: Vec<&str> = pings
        .iter()
        .map(|p| p["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["GET", "GET", "GET", "HEAD", "GET"]);
    let ns: Vec<i64> = pings.iter().map(|p| p["n"].as_i64().unwrap()).collect();
    assert_eq!(ns, [5, 4, 3, 2, 1]);

    // Heartbeat's own API says the same: still pending, the pings `ign`.
    let hb = own(&w, uuid).await;
    assert_eq!(hb["status"], "pending", "{hb}");
    let kinds: Vec<Value> = own_pings(&w, &hb)
        .await
        .iter()
        .map(|p| p["kind"].clone())
        .collect();
    assert_eq!(kinds, vec![json!("ign"); 5]);
}

#[tokio::test]
async fn a_post_to_a_post_only_check_is_counted() {
    let w = HcWorld::new().await;
    let check = post_only(&w, "backup").await;
    let uuid = check["uuid"].as_str().unwrap();
    let url = w.app.url(&format!("/ping/{uuid}"));
    assert_eq!(ping(&w, Method::GET, &url).await.0, 200);
    let (status, text) = ping(&w, Method::POST, &url).await;
    assert_eq!((status, text.trim_end()), (200, "OK"));
    let check = settled(&w, uuid).await;
    assert_eq!(check["status"], "up", "{check}");
    assert_ne!(check["last_ping"], Value::Null);
    assert_eq!(check["n_pings"], 2);
    let flips = w.history(uuid, "flips").await;
    assert_eq!(flips.len(), 1);
    assert_eq!(flips[0]["up"], 1);
    let pings = w.history(uuid, "pings").await;
    assert_eq!(types(&pings), ["success", "ign"]);
    assert_eq!(pings[0]["method"], "POST");

    // A POST failure counts too; a GET success after it does not bring the
    // check back up.
    assert_eq!(ping(&w, Method::POST, &format!("{url}/fail")).await.0, 200);
    assert_eq!(ping(&w, Method::GET, &url).await.0, 200);
    let check = settled(&w, uuid).await;
    assert_eq!(check["status"], "down", "{check}");
    assert_eq!(
        types(&w.history(uuid, "pings").await),
        ["ign", "fail", "success", "ign"]
    );
}

#[tokio::test]
async fn a_start_sent_with_get_is_ignored_and_opens_no_run() {
    let w = HcWorld::new().await;
    let check = post_only(&w, "etl").await;
    let uuid = check["uuid"].as_str().unwrap();
    let url = w.app.url(&format!("/ping/{uuid}"));
    let rid = "4c5a1b0e-7f6d-4a3b-9c2d-1e0f9a8b7c6d";
    assert_eq!(
        ping(&w, Method::GET, &format!("{url}/start?rid={rid}"))
            .await
            .0,
        200
    );
    let check = settled(&w, uuid).await;
    assert_eq!(check["started"], false, "{check}");
    assert_eq!(check["status"], "new");
    // v1 reports a running check as `started`; this one is not running.
    let (_, v1) = w
        .call(Method::GET, &format!("/api/v1/checks/{uuid}"), Some(w.rw()))
        .await;
    assert_eq!(v1["status"], "new", "{v1}");
    assert!(own(&w, uuid).await["open_runs"]
        .as_array()
        .is_none_or(|runs| runs.is_empty()));

    // The same start sent with POST opens the run, which a GET finish does
    // not close; a POST finish does, and is timed from the POST start.
    assert_eq!(
        ping(&w, Method::POST, &format!("{url}/start?rid={rid}"))
            .await
            .0,
        200
    );
    assert_eq!(settled(&w, uuid).await["started"], true);
    assert_eq!(
        ping(&w, Method::GET, &format!("{url}?rid={rid}")).await.0,
        200
    );
    assert_eq!(settled(&w, uuid).await["started"], true);
    assert_eq!(
        ping(&w, Method::POST, &format!("{url}?rid={rid}")).await.0,
        200
    );
    let check = settled(&w, uuid).await;
    assert_eq!(check["started"], false, "{check}");
    assert_eq!(check["status"], "up");
    let pings = w.history(uuid, "pings").await;
    assert_eq!(types(&pings), ["success", "ign", "start", "ign"]);
    assert!(pings[0]["duration"].is_number(), "{}", pings[0]);
    assert_eq!(pings[1]["duration"], Value::Null);
}

#[tokio::test]
async fn the_rule_holds_for_slug_urls_and_hb_urls_alike() {
    let w = HcWorld::new().await;
    let check = post_only(&w, "reports").await;
    let uuid = check["uuid"].as_str().unwrap();
    let key = w.team["ping_key"].as_str().unwrap();
    let hb = own(&w, uuid).await;
    let hb_url = hb["ping_url"].as_str().unwrap().to_string();
    let hb_path = crate::hc_support::path_of(&hb_url);
    for url in [
        w.app.url(&format!("/ping/{key}/reports")),
        w.app.url(&hb_path),
        w.app.url(&format!("{hb_path}/fail")),
    ] {
        assert_eq!(ping(&w, Method::GET, &url).await.0, 200, "{url}");
    }
    let check = settled(&w, uuid).await;
    assert_eq!(check["status"], "new", "{check}");
    assert_eq!(check["n_pings"], 3);
    assert_eq!(types(&w.history(uuid, "pings").await), ["ign"; 3]);
    assert_eq!(ping(&w, Method::POST, &w.app.url(&hb_path)).await.0, 200);
    assert_eq!(settled(&w, uuid).await["status"], "up");
}

#[tokio::test]
async fn pings_sent_together_are_ignored_or_counted_by_their_own_method() {
    // However the writer groups them into batches, each ping is judged by its
    // own method: the outcome is the same.
    let w = HcWorld::new().await;
    let check = post_only(&w, "burst").await;
    let uuid = check["uuid"].as_str().unwrap().to_string();
    let url = w.app.url(&format!("/ping/{uuid}"));
    let sends = (0..20).map(|i| {
        let method = if i % 2 == 0 {
            Method::GET
        } else {
            Method::POST
        };
        ping(&w, method, &url)
    });
    for (status, _) in futures::future::join_all(sends).await {
        assert_eq!(status, 200);
    }
    let check = settled(&w, &uuid).await;
    assert_eq!(check["n_pings"], 20);
    assert_eq!(check["status"], "up", "{check}");
    let pings = w.history(&uuid, "pings").await;
    for p in &pings {
        let expected = if p["method"] == "POST" {
            "success"
        } else {
            "ign"
        };
        assert_eq!(p["type"], expected, "{p}");
    }
    assert_eq!(pings.iter().filter(|p| p["type"] == "ign").count(), 10);
}

#[tokio::test]
async fn a_check_without_methods_takes_every_method() {
    let w = HcWorld::new().await;
    for methods in [None, Some("")] {
        let mut body =
            json!({"name": format!("any-{}", methods.is_some()), "timeout": 3600, "grace": 60});
        if let Some(m) = methods {
            body["methods"] = json!(m);
        }
        let check = w.create_check(body).await;
        assert_eq!(check["methods"], "");
        let uuid = check["uuid"].as_str().unwrap();
        let url = w.app.url(&format!("/ping/{uuid}"));
        for method in [Method::GET, Method::HEAD, Method::POST] {
            assert_eq!(ping(&w, method, &url).await.0, 200);
        }
        let check = settled(&w, uuid).await;
        assert_eq!(check["status"], "up", "{check}");
        assert_eq!(check["n_pings"], 3);
        assert_eq!(types(&w.history(uuid, "pings").await), ["success"; 3]);
    }
}

#[tokio::test]
async fn turning_the_rule_off_lets_get_pings_count_again() {
    let w = HcWorld::new().await;
    let check = post_only(&w, "toggle").await;
    let uuid = check["uuid"].as_str().unwrap();
    let url = w.app.url(&format!("/ping/{uuid}"));
    assert_eq!(ping(&w, Method::GET, &url).await.0, 200);
    let (status, updated) = w
        .send(
            Method::POST,
            &format!("/api/v3/checks/{uuid}"),
            Some(w.rw()),
            json!({"methods": ""}),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["methods"], "");
    assert_eq!(ping(&w, Method::GET, &url).await.0, 200);
    let check = settled(&w, uuid).await;
    assert_eq!(check["status"], "up", "{check}");
    assert_eq!(types(&w.history(uuid, "pings").await), ["success", "ign"]);
}

#[tokio::test]
async fn one_batch_mixing_methods_counts_only_the_posts_of_a_post_only_check() {
    // The writer's statement called with one batch, as concurrent pings may
    // make it: the rule is applied per ping within it.
    use heartbeat::monitor::heartbeat::HeartbeatToken;
    use heartbeat::monitor::ping::{write_batch, PingKind, PingRecord};

    let w = HcWorld::new().await;
    let check = post_only(&w, "mixed").await;
    let uuid = check["uuid"].as_str().unwrap();
    let plain = w
        .create_check(json!({"name": "plain", "timeout": 3600, "grace": 60}))
        .await;
    let token_of = |hb: &Value| {
        let url = hb["ping_url"].as_str().unwrap();
        HeartbeatToken::parse(url.rsplit('/').next().unwrap()).unwrap()
    };
    let (mixed, other) = (
        token_of(&own(&w, uuid).await),
        token_of(&own(&w, plain["uuid"].as_str().unwrap()).await),
    );
    let t0 = Utc::now() - chrono::Duration::seconds(10);
    let sent = |token: &HeartbeatToken, kind, method, ms| PingRecord {
        method: Some(method),
        scheme: Some("http"),
        ..PingRecord::new(token.clone(), kind, t0 + chrono::Duration::milliseconds(ms))
    };
    let pings = [
        sent(&mixed, PingKind::Start, "GET", 0),
        sent(&other, PingKind::Fail, "GET", 1),
        sent(&mixed, PingKind::Success, "POST", 2),
        sent(&mixed, PingKind::Fail, "HEAD", 3),
        sent(&mixed, PingKind::Log, "POST", 4),
    ];
    let refs: Vec<&PingRecord> = pings.iter().collect();
    let client = w.app.state.pool.get().await.unwrap();
    let written = write_batch(&client, &refs, 100).await.unwrap();
    assert_eq!(written.found.len(), 2);

    let check = settled(&w, uuid).await;
    assert_eq!(check["status"], "up", "{check}");
    assert_eq!(check["n_pings"], 4);
    assert_eq!(check["started"], false);
    assert_eq!(
        types(&w.history(uuid, "pings").await),
        ["log", "ign", "success", "ign"]
    );
    // A check without the rule in the same batch takes its GET failure.
    let plain = settled(&w, plain["uuid"].as_str().unwrap()).await;
    assert_eq!(plain["status"], "down", "{plain}");
}
