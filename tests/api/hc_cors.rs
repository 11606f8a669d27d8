//! healthchecks.io's CORS on its Management API (its `cors()` decorator in
//! `hc/api/decorators.py`; its tests check `Access-Control-Allow-Origin: *` on
//! the answers and an `OPTIONS` answered 204 listing the methods): the headers
//! on every answer, refusals included, and the preflight on every path.

use reqwest::Method;
use serde_json::json;

use crate::hc_support::HcWorld;

#[tokio::test]
async fn every_management_call_carries_cors_headers_and_answers_a_preflight() {
    let w = HcWorld::new().await;
    let check = w.create_check(json!({"name": "Cors"})).await;
    let uuid = check["uuid"].as_str().unwrap();
    let one = format!("/api/v3/checks/{uuid}");
    for (path, methods) in [
        ("/api/v1/checks/".to_string(), "GET, POST, OPTIONS"),
        (one.clone(), "GET, POST, DELETE, OPTIONS"),
        (format!("{one}/pause"), "POST, OPTIONS"),
        (format!("{one}/resume"), "POST, OPTIONS"),
        (format!("{one}/pings/"), "GET, OPTIONS"),
        (format!("{one}/pings/1/body"), "GET, OPTIONS"),
        (format!("{one}/flips/"), "GET, OPTIONS"),
        ("/api/v2/channels/".to_string(), "GET, OPTIONS"),
        ("/api/v3/badges/".to_string(), "GET, OPTIONS"),
    ] {
        // A browser's preflight carries no key.
        let r = w
            .app
            .client
            .request(Method::OPTIONS, w.app.url(&path))
            .header("Origin", "https://dashboard.example")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "x-api-key")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204, "{path}");
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], "*", "{path}");
        assert_eq!(h["access-control-allow-headers"], "X-Api-Key", "{path}");
        assert_eq!(h["access-control-allow-methods"], methods, "{path}");
        assert_eq!(h["access-control-max-age"], "600", "{path}");
    }
    // The answers themselves: a success, a 401, a 403 and a 404.
    for (path, key, status) in [
        (one.clone(), Some(w.rw()), 200),
        (one.clone(), None, 401),
        (one.clone(), Some(w.other_rw()), 403),
        (
            format!("/api/v3/checks/{}", uuid::Uuid::new_v4()),
            Some(w.rw()),
            404,
        ),
        ("/api/v3/checks/".to_string(), Some(w.ro()), 200),
    ] {
        let mut req = w.app.client.get(w.app.url(&path));
        if let Some(k) = key {
            req = req.header("X-Api-Key", k);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        assert_eq!(r.headers()["access-control-allow-origin"], "*", "{path}");
    }
    // `status/` has none, as in healthchecks.io; an unknown version is 404.
    let r = w
        .app
        .client
        .get(w.app.url("/api/v3/status/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = w
        .app
        .client
        .request(Method::OPTIONS, w.app.url("/api/v9/checks/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
