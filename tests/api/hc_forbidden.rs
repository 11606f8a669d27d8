//! healthchecks.io's 403: another project's check, and a create at the
//! project's check limit. healthchecks.io answers both with a bare
//! `HttpResponseForbidden()` (its `hc/api/views.py`; its tests,
//! `test_it_obeys_check_limit` and the "charlie's key" cases, check the status
//! only): no body, and Django's default content type.

use heartbeat::monitor::MonitorConfig;
use reqwest::Method;
use serde_json::json;

use crate::hc_support::{raw, HcWorld};

fn forbidden() -> (u16, String, String) {
    (403, "text/html; charset=utf-8".into(), String::new())
}

#[tokio::test]
async fn another_projects_check_is_a_bare_403_on_every_call() {
    let w = HcWorld::new().await;
    let check = w
        .create_check(json!({"name": "Theirs", "timeout": 3600}))
        .await;
    let uuid = check["uuid"].as_str().unwrap();
    let url = w.app.url(&format!("/ping/{uuid}"));
    assert_eq!(w.ping(Method::POST, &url, "output").await, 200);
    for v in ["v1", "v2", "v3"] {
        let one = format!("/api/{v}/checks/{uuid}");
        for (method, path) in [
            (Method::GET, one.clone()),
            (Method::POST, one.clone()),
            (Method::DELETE, one.clone()),
            (Method::POST, format!("{one}/pause")),
            (Method::POST, format!("{one}/resume")),
            (Method::GET, format!("{one}/pings/")),
            (Method::GET, format!("{one}/pings/1/body")),
            (Method::GET, format!("{one}/flips/")),
        ] {
            assert_eq!(
                raw(&w.app, method.clone(), &path, Some(w.other_rw())).await,
                forbidden(),
                "{method} {path}"
            );
        }
    }
    // Nothing was changed by the refused calls.
    let (status, still) = w
        .call(Method::GET, &format!("/api/v3/checks/{uuid}"), Some(w.rw()))
        .await;
    assert_eq!((status, still["status"].as_str()), (200, Some("up")));
}

#[tokio::test]
async fn a_create_at_the_check_limit_is_a_bare_403() {
    let w = HcWorld::with_monitor(MonitorConfig {
        loops: false,
        max_heartbeats_per_project: 2,
        ..MonitorConfig::default()
    })
    .await;
    for name in ["one", "two"] {
        w.create_check(json!({ "name": name })).await;
    }
    for v in ["v1", "v3"] {
        let r = w
            .app
            .client
            .post(w.app.url(&format!("/api/{v}/checks/")))
            .header("X-Api-Key", w.rw())
            .json(&json!({"name": "three"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
        assert_eq!(r.text().await.unwrap(), "");
    }
    // `unique` matching an existing check updates it: no new check, no 403.
    let (status, _) = w
        .send(
            Method::POST,
            "/api/v3/checks/",
            Some(w.rw()),
            json!({"name": "two", "desc": "kept", "unique": ["name"]}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, list) = w.call(Method::GET, "/api/v3/checks/", Some(w.rw())).await;
    assert_eq!(list["checks"].as_array().unwrap().len(), 2);
}
