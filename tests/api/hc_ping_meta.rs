//! How a ping arrived, as healthchecks.io's Management API shows it in
//! `GET checks/<uuid>/pings/` (healthchecks.io/docs/api/#list-pings): `scheme`,
//! `method` (HEAD, GET or POST, as healthchecks.io's own tests expect
//! `"POST"`), `ua` and `remote_addr`, whichever URL the ping used.

use reqwest::Method;
use serde_json::{json, Value};

use crate::hc_support::HcWorld;

#[tokio::test]
async fn each_ping_method_is_recorded_with_the_scheme_for_every_url_form() {
    let w = HcWorld::new().await;
    let check = w
        .create_check(json!({"name": "Nightly", "slug": "nightly", "timeout": 3600}))
        .await;
    let uuid = check["uuid"].as_str().unwrap();
    // The heartbeat's own token, from Heartbeat's API.
    let r = w
        .app
        .client
        .get(w.app.url("/api/heartbeats"))
        .bearer_auth(w.rw())
        .send()
        .await
        .unwrap();
    let hbs: Value = r.json().await.unwrap();
    let ping_url = hbs["heartbeats"][0]["ping_url"].as_str().unwrap();
    let token = &ping_url[ping_url.find("/hb/").unwrap() + 4..];
    let key = w.team["ping_key"].as_str().unwrap();
    let forms = [
        format!("/ping/{uuid}"),
        format!("/ping/{uuid}/log"),
        format!("/ping/{key}/nightly"),
        format!("/ping/{key}/nightly/0"),
        format!("/hb/{token}"),
        format!("/ping/{token}/start"),
    ];
    let mut sent = Vec::new();
    for form in &forms {
        for method in [Method::HEAD, Method::GET, Method::POST] {
            let status = w.ping(method.clone(), &w.app.url(form), "").await;
            assert_eq!(status, 200, "{method} {form}");
            sent.push(method.as_str().to_string());
        }
    }
    let pings = w.history(uuid, "pings").await;
    assert_eq!(pings.len(), sent.len());
    sent.reverse();
    for (p, method) in pings.iter().zip(&sent) {
        assert_eq!(p["method"], method.as_str(), "{p}");
        assert_eq!(p["scheme"], "http", "{p}");
        assert_eq!(p["ua"], "hc-tests/1.0", "{p}");
        assert_eq!(p["remote_addr"], "127.0.0.1", "{p}");
    }
}

#[tokio::test]
async fn a_forwarded_proto_is_not_believed_without_a_trusted_proxy() {
    let w = HcWorld::new().await;
    let check = w.create_check(json!({"name": "Proxied"})).await;
    let uuid = check["uuid"].as_str().unwrap();
    let r = w
        .app
        .client
        .post(w.app.url(&format!("/ping/{uuid}")))
        .header("X-Forwarded-Proto", "https")
        .header("X-Forwarded-For", "192.0.2.7")
        .body("done")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pings = w.history(uuid, "pings").await;
    assert_eq!(pings[0]["method"], "POST");
    // The daemon serves plain HTTP and names no trusted proxy: any client
    // could send these headers.
    assert_eq!(pings[0]["scheme"], "http");
    assert_eq!(pings[0]["remote_addr"], "127.0.0.1");
}

#[tokio::test]
async fn a_ping_overwriting_an_old_slot_of_the_ring_keeps_its_own_method() {
    let w = HcWorld::new().await;
    let check = w.create_check(json!({"name": "Busy"})).await;
    let uuid = check["uuid"].as_str().unwrap();
    let url = w.app.url(&format!("/ping/{uuid}"));
    let kept = heartbeat::monitor::MonitorConfig::default().pings_kept as usize;
    for _ in 0..kept {
        assert_eq!(w.ping(Method::POST, &url, "").await, 200);
    }
    // The next ping lands in the first one's slot.
    assert_eq!(w.ping(Method::HEAD, &url, "").await, 200);
    let pings = w.history(uuid, "pings").await;
    assert_eq!(pings.len(), kept);
    assert_eq!(pings[0]["n"], kept as i64 + 1);
    assert_eq!(pings[0]["method"], "HEAD");
    assert!(pings[1..].iter().all(|p| p["method"] == "POST"));
}
