//! healthchecks.io's Management API (docs: healthchecks.io/docs/api/), as its
//! clients call it: `X-Api-Key`, v1 and v3, read-write, read-only, another
//! project's key and no key.

use reqwest::Method;
use serde_json::{json, Value};

use crate::hc_support::{not_paused, raw, HcWorld};
use crate::helpers::{spawn_app_with, test_config, TestApp};

async fn call(app: &TestApp, method: Method, path: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path));
    if let Some(k) = key {
        req = req.header("X-Api-Key", k);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// A keyed daemon, a project with a heartbeat, and another project.
async fn setup() -> (TestApp, Value, Value, Value) {
    let world = HcWorld::new().await;
    let r = world
        .app
        .client
        .post(world.app.url("/api/heartbeats"))
        .bearer_auth(world.rw())
        .json(&json!({"name": "Nightly Backup", "period_seconds": 3600, "grace_seconds": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let hb = r.json::<Value>().await.unwrap();
    (world.app, world.team, world.other, hb)
}

#[tokio::test]
async fn checks_are_listed_and_read_with_healthchecks_io_fields_and_keys() {
    let (app, team, other, hb) = setup().await;
    let rw = team["read_write_key"].as_str().unwrap();
    let ro = team["read_only_key"].as_str().unwrap();
    let uuid = hb["uuid"].as_str().unwrap();
    for v in ["v1", "v3"] {
        assert_eq!(
            call(&app, Method::GET, &format!("/api/{v}/checks/"), None).await,
            (401, json!({"error": "missing api key"}))
        );
        assert_eq!(
            call(
                &app,
                Method::GET,
                &format!("/api/{v}/checks/"),
                Some("nope")
            )
            .await,
            (401, json!({"error": "wrong api key"}))
        );
        let (status, body) = call(&app, Method::GET, &format!("/api/{v}/checks/"), Some(rw)).await;
        assert_eq!(status, 200, "{body}");
        let checks = body["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 1);
        let c = &checks[0];
        assert_eq!(c["name"], "Nightly Backup");
        assert_eq!(c["slug"], "nightly-backup");
        assert_eq!(c["status"], "new");
        assert_eq!(c["timeout"], 3600);
        assert_eq!(c["grace"], 600);
        assert_eq!(c["n_pings"], 0);
        assert_eq!(c["last_ping"], Value::Null);
        assert_eq!(c["uuid"], uuid);
        assert!(c["ping_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/ping/{uuid}")));
        assert!(c["update_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/api/{v}/checks/{uuid}")));
        assert!(c["pause_url"].as_str().unwrap().ends_with("/pause"));
        assert!(c["resume_url"].as_str().unwrap().ends_with("/resume"));

        let (status, body) = call(&app, Method::GET, &format!("/api/{v}/checks/"), Some(ro)).await;
        assert_eq!(status, 200);
        let c = &body["checks"][0];
        assert!(
            c.get("uuid").is_none() && c.get("ping_url").is_none(),
            "{c}"
        );
        let unique_key = c["unique_key"].as_str().unwrap().to_string();
        assert_eq!(unique_key.len(), 40);
        let (status, by_key) = call(
            &app,
            Method::GET,
            &format!("/api/{v}/checks/{unique_key}"),
            Some(ro),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(by_key["name"], "Nightly Backup");

        let (_, body) = call(
            &app,
            Method::GET,
            &format!("/api/{v}/checks/"),
            Some(other["read_write_key"].as_str().unwrap()),
        )
        .await;
        assert_eq!(body["checks"], json!([]));
        let (status, _) = call(
            &app,
            Method::GET,
            &format!("/api/{v}/checks/{uuid}"),
            Some(other["read_write_key"].as_str().unwrap()),
        )
        .await;
        assert_eq!(status, 403);
        let (status, _) = call(
            &app,
            Method::GET,
            &format!("/api/{v}/checks/{}", uuid::Uuid::new_v4()),
            Some(rw),
        )
        .await;
        assert_eq!(status, 404);
    }

    // A ping shows in the check.
    assert_eq!(
        app.client
            .get(app.url(&format!("/ping/{uuid}")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let (_, c) = call(
        &app,
        Method::GET,
        &format!("/api/v3/checks/{uuid}"),
        Some(rw),
    )
    .await;
    assert_eq!(c["status"], "up");
    assert_eq!(c["n_pings"], 1);
    assert!(
        c["last_ping"].is_string() && c["next_ping"].is_string(),
        "{c}"
    );
}

#[tokio::test]
async fn pause_resume_and_delete_need_a_read_write_key_of_the_project() {
    let (app, team, other, hb) = setup().await;
    let rw = team["read_write_key"].as_str().unwrap();
    let ro = team["read_only_key"].as_str().unwrap();
    let uuid = hb["uuid"].as_str().unwrap();
    let check = format!("/api/v3/checks/{uuid}");

    assert_eq!(
        raw(&app, Method::POST, &format!("{check}/resume"), Some(rw)).await,
        not_paused()
    );
    assert_eq!(
        call(&app, Method::POST, &format!("{check}/pause"), None)
            .await
            .0,
        401
    );
    assert_eq!(
        call(&app, Method::POST, &format!("{check}/pause"), Some(ro))
            .await
            .0,
        401
    );
    let other_rw = other["read_write_key"].as_str().unwrap();
    assert_eq!(
        call(
            &app,
            Method::POST,
            &format!("{check}/pause"),
            Some(other_rw)
        )
        .await
        .0,
        403
    );
    let (status, c) = call(&app, Method::POST, &format!("{check}/pause"), Some(rw)).await;
    assert_eq!((status, c["status"].clone()), (200, json!("paused")));
    let (status, c) = call(
        &app,
        Method::POST,
        &format!("/api/v1/checks/{uuid}/resume"),
        Some(rw),
    )
    .await;
    assert_eq!(status, 200);
    assert_ne!(c["status"], "paused");

    assert_eq!(call(&app, Method::DELETE, &check, Some(ro)).await.0, 401);
    assert_eq!(
        call(&app, Method::DELETE, &check, Some(other_rw)).await.0,
        403
    );
    let (status, c) = call(&app, Method::DELETE, &check, Some(rw)).await;
    assert_eq!((status, c["name"].clone()), (200, json!("Nightly Backup")));
    assert_eq!(call(&app, Method::GET, &check, Some(rw)).await.0, 404);
    assert_eq!(
        app.client
            .get(app.url(&format!("/ping/{uuid}")))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn open_mode_answers_for_the_default_project_without_a_key() {
    let app = spawn_app_with(test_config()).await;
    let (status, hb) = app
        .post_json("/api/heartbeats", &json!({"name": "open"}))
        .await;
    assert_eq!(status, 201);
    let (status, body) = call(&app, Method::GET, "/api/v3/checks/", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["uuid"] == hb["uuid"]));
    assert_eq!(
        call(&app, Method::GET, "/api/v9/checks/", None).await.0,
        404
    );
}

async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut req = app.client.request(method, app.url(path)).json(&body);
    if let Some(k) = key {
        req = req.header("X-Api-Key", k);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_check_goes_round_trip_create_unique_update_pause_resume_delete() {
    let (app, team, other, _) = setup().await;
    let rw = team["read_write_key"].as_str().unwrap();
    let ro = team["read_only_key"].as_str().unwrap();
    let other_rw = other["read_write_key"].as_str().unwrap();
    for v in ["v1", "v3"] {
        let checks = format!("/api/{v}/checks/");
        let name = format!("Disk Report {v}");
        let create = json!({
            "name": name, "slug": format!("disk-{v}"), "tags": "prod reports", "desc": "df -h",
            "timeout": 3600, "grace": 60, "manual_resume": true, "methods": "POST",
            "channels": "*", "unique": ["name"], "subject": "ignored"
        });
        // No key, a read-only key: refused as healthchecks.io refuses them.
        assert_eq!(
            send(&app, Method::POST, &checks, None, create.clone()).await,
            (401, json!({"error": "missing api key"}))
        );
        assert_eq!(
            send(&app, Method::POST, &checks, Some(ro), create.clone()).await,
            (401, json!({"error": "wrong api key"}))
        );
        let (status, made) = send(&app, Method::POST, &checks, Some(rw), create.clone()).await;
        assert_eq!(status, 201, "{made}");
        assert_eq!(made["name"], name.as_str());
        assert_eq!(made["slug"], format!("disk-{v}"));
        assert_eq!(made["tags"], "prod reports");
        assert_eq!(made["desc"], "df -h");
        assert_eq!(made["timeout"], 3600);
        assert_eq!(made["grace"], 60);
        assert_eq!(made["manual_resume"], true);
        assert_eq!(made["methods"], "POST");
        assert_eq!(made["subject"], "ignored");
        assert_eq!(made["status"], "new");
        let uuid = made["uuid"].as_str().unwrap().to_string();
        // `unique` matches it: 200 and the same check, updated.
        let mut again = create.clone();
        again["grace"] = json!(120);
        let (status, same) = send(&app, Method::POST, &checks, Some(rw), again).await;
        assert_eq!(status, 200, "{same}");
        assert_eq!(same["uuid"], uuid.as_str());
        assert_eq!(same["grace"], 120);
        // api_key in the body works as the header does.
        let mut keyed = create.clone();
        keyed["api_key"] = json!(rw);
        assert_eq!(send(&app, Method::POST, &checks, None, keyed).await.0, 200);

        // Update: a new name re-derives the slug in v1 only; a schedule wins.
        let one = format!("/api/{v}/checks/{uuid}");
        let (status, up) = send(
            &app,
            Method::POST,
            &one,
            Some(rw),
            json!({"name": format!("Disk Usage {v}"), "schedule": "0 3 * * *", "tz": "Europe/Riga", "timeout": 600}),
        )
        .await;
        assert_eq!(status, 200, "{up}");
        assert_eq!(up["schedule"], "0 3 * * *");
        assert_eq!(up["tz"], "Europe/Riga");
        assert!(up.get("timeout").is_none(), "{up}");
        assert_eq!(up["tags"], "prod reports", "fields not given are kept");
        let slug = if v == "v1" {
            "disk-usage-v1".to_string()
        } else {
            format!("disk-{v}")
        };
        assert_eq!(up["slug"], slug.as_str());
        assert_eq!(
            send(&app, Method::POST, &one, Some(rw), json!({"grace": 30})).await,
            (
                400,
                json!({"error": "json validation error: grace is too small"})
            )
        );
        assert_eq!(
            send(&app, Method::POST, &one, Some(rw), json!({"name": null})).await,
            (
                400,
                json!({"error": "json validation error: name is not a string"})
            )
        );
        assert_eq!(
            send(
                &app,
                Method::POST,
                &one,
                Some(other_rw),
                json!({"grace": 60})
            )
            .await
            .0,
            403
        );
        assert_eq!(
            send(&app, Method::POST, &one, Some(ro), json!({"grace": 60})).await,
            (401, json!({"error": "wrong api key"}))
        );

        // Filters.
        let (_, listed) = call(
            &app,
            Method::GET,
            &format!("{checks}?tag=prod&tag=reports"),
            Some(rw),
        )
        .await;
        assert!(listed["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["uuid"] == uuid.as_str()));
        let (_, listed) = call(
            &app,
            Method::GET,
            &format!("{checks}?tag=prod&tag=nope"),
            Some(rw),
        )
        .await;
        assert_eq!(listed["checks"], json!([]));
        let (_, listed) = call(
            &app,
            Method::GET,
            &format!("{checks}?slug={slug}"),
            Some(rw),
        )
        .await;
        assert_eq!(listed["checks"].as_array().unwrap().len(), 1);

        // Pause, resume, resume again (409), delete.
        let (status, paused) = call(&app, Method::POST, &format!("{one}/pause"), Some(rw)).await;
        assert_eq!((status, paused["status"].clone()), (200, json!("paused")));
        assert_eq!(
            call(&app, Method::POST, &format!("{one}/resume"), Some(rw))
                .await
                .0,
            200
        );
        assert_eq!(
            raw(&app, Method::POST, &format!("{one}/resume"), Some(rw)).await,
            not_paused()
        );
        assert_eq!(call(&app, Method::DELETE, &one, Some(rw)).await.0, 200);
        assert_eq!(call(&app, Method::GET, &one, Some(rw)).await.0, 404);
    }
}

#[tokio::test]
async fn a_v3_create_derives_no_slug_and_v1_derives_it_from_the_name() {
    let (app, team, _, _) = setup().await;
    let rw = team["read_write_key"].as_str().unwrap();
    let (s, v1) = send(
        &app,
        Method::POST,
        "/api/v1/checks/",
        Some(rw),
        json!({"name": "Weekly Sync"}),
    )
    .await;
    assert_eq!((s, v1["slug"].clone()), (201, json!("weekly-sync")));
    let (s, v3) = send(
        &app,
        Method::POST,
        "/api/v3/checks/",
        Some(rw),
        json!({"name": "Monthly Sync"}),
    )
    .await;
    assert_eq!((s, v3["slug"].clone()), (201, json!("")));
    assert_eq!(v1["timeout"], 86400);
    assert_eq!(v1["grace"], 3600);
    let r = app
        .client
        .post(app.url("/api/v3/checks/"))
        .header("X-Api-Key", rw)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "could not parse request body"})
    );
}
