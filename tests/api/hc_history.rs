//! healthchecks.io's Management API reads beyond the check itself, written
//! from its documentation (healthchecks.io/docs/api/): a check's logged pings
//! and their bodies, its flips with `?seconds=`, `?start=`, `?end=`, the
//! project's channels (integrations) and `status/`.

use chrono::{Duration, Utc};
use heartbeat::monitor::deadline;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::hc_support::{not_paused, path_of, raw, HcWorld};

#[tokio::test]
async fn pings_are_listed_newest_first_with_healthchecks_io_fields_and_bodies() {
    let w = HcWorld::new().await;
    let check = w
        .create_check(json!({"name": "Backup", "timeout": 3600, "grace": 60}))
        .await;
    let uuid = check["uuid"].as_str().unwrap();
    let ping = w.app.url(&format!("/ping/{uuid}"));
    let rid = Uuid::new_v4();
    assert_eq!(
        w.ping(Method::GET, &format!("{ping}/start?rid={rid}"), "")
            .await,
        200
    );
    assert_eq!(
        w.ping(Method::POST, &format!("{ping}?rid={rid}"), "all done")
            .await,
        200
    );
    assert_eq!(w.ping(Method::HEAD, &format!("{ping}/log"), "").await, 200);

    for v in ["v1", "v3"] {
        let (status, list) = w
            .call(
                Method::GET,
                &format!("/api/{v}/checks/{uuid}/pings/"),
                Some(w.rw()),
            )
            .await;
        assert_eq!(status, 200, "{list}");
        let pings = list["pings"].as_array().unwrap();
        assert_eq!(pings.len(), 3);
        let ns: Vec<i64> = pings.iter().map(|p| p["n"].as_i64().unwrap()).collect();
        assert_eq!(ns, [3, 2, 1], "newest first");
        let types: Vec<&str> = pings.iter().map(|p| p["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["log", "success", "start"]);
        for p in pings {
            for field in [
                "type",
                "date",
                "n",
                "scheme",
                "remote_addr",
                "method",
                "ua",
                "rid",
                "body_url",
            ] {
                assert!(p.get(field).is_some(), "{field} missing in {p}");
            }
            assert!(p["date"].as_str().unwrap().ends_with("+00:00"), "{p}");
            assert_eq!(p["ua"], "hc-tests/1.0");
            assert_eq!(p["remote_addr"], "127.0.0.1");
        }
        let finish = &pings[1];
        assert_eq!(finish["rid"], rid.to_string());
        assert!(finish["duration"].as_f64().unwrap() >= 0.0, "{finish}");
        assert_eq!(pings[2]["rid"], rid.to_string());
        assert!(
            pings[2].get("duration").is_none(),
            "a start has no duration"
        );
        assert_eq!(pings[2]["body_url"], Value::Null, "no body, no body_url");
        let body_url = finish["body_url"].as_str().unwrap();
        assert!(
            body_url.ends_with(&format!("/api/{v}/checks/{uuid}/pings/2/body")),
            "{body_url}"
        );
        let r = w
            .app
            .client
            .get(w.app.url(&path_of(body_url)))
            .header("X-Api-Key", w.rw())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        assert_eq!(r.text().await.unwrap(), "all done");
    }

    let body = |n: &str| format!("/api/v3/checks/{uuid}/pings/{n}/body");
    // No body, no such ping, not a number: 404.
    for n in ["1", "99", "x"] {
        assert_eq!(
            w.call(Method::GET, &body(n), Some(w.rw())).await.0,
            404,
            "{n}"
        );
    }
    // Read-write keys only, as healthchecks.io's `@authorize`.
    let list = format!("/api/v3/checks/{uuid}/pings/");
    for path in [list.as_str(), body("2").as_str()] {
        assert_eq!(
            w.call(Method::GET, path, Some(w.ro())).await,
            (401, json!({"error": "wrong api key"}))
        );
        assert_eq!(
            w.call(Method::GET, path, None).await,
            (401, json!({"error": "missing api key"}))
        );
        assert_eq!(w.call(Method::GET, path, Some(w.other_rw())).await.0, 403);
    }
    let unknown = format!("/api/v3/checks/{}/pings/", Uuid::new_v4());
    assert_eq!(w.call(Method::GET, &unknown, Some(w.rw())).await.0, 404);
}

/// Writes a flip of `hb` at `at`, as the deadline loop would have.
async fn flip(w: &HcWorld, hb: Uuid, at: chrono::DateTime<Utc>, from: &str, to: &str) {
    w.app
        .db()
        .await
        .execute(
            "INSERT INTO heartbeat.flip (heartbeat_id, at, from_status, to_status, detected_at)
             VALUES ($1, $2, $3, $4, $2)",
            &[&hb, &at, &from, &to],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn flips_are_the_transitions_to_up_and_down_filtered_as_documented() {
    let w = HcWorld::new().await;
    let check = w
        .create_check(json!({"name": "Flippy", "timeout": 3600, "grace": 60}))
        .await;
    let uuid = check["uuid"].as_str().unwrap();
    let id: Uuid = w
        .app
        .db()
        .await
        .query_one(
            "SELECT heartbeat_id FROM heartbeat.heartbeat WHERE ping_uuid = $1",
            &[&Uuid::parse_str(uuid).unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    let now = Utc::now();
    let t = |hours: i64| {
        let t = now - Duration::hours(hours);
        t - Duration::nanoseconds(t.timestamp_subsec_nanos().into())
    };
    flip(&w, id, t(4), "pending", "up").await;
    flip(&w, id, t(3), "up", "down").await;
    flip(&w, id, t(2), "down", "up").await;
    // Transitions into other states are not flips in healthchecks.io's sense.
    flip(&w, id, t(1), "up", "paused").await;
    let entry = |h: i64, up: u8| json!({"timestamp": t(h).to_rfc3339_opts(chrono::SecondsFormat::Secs, false), "up": up});

    let (_, ro_view) = w
        .call(Method::GET, &format!("/api/v3/checks/{uuid}"), Some(w.ro()))
        .await;
    let unique_key = ro_view["unique_key"].as_str().unwrap().to_string();
    for v in ["v1", "v3"] {
        for (code, key) in [
            (uuid, w.rw()),
            (uuid, w.ro()),
            (unique_key.as_str(), w.ro()),
            (unique_key.as_str(), w.rw()),
        ] {
            let w = &w;
            let get = |q: String| {
                let path = format!("/api/{v}/checks/{code}/flips/{q}");
                async move { w.call(Method::GET, &path, Some(key)).await }
            };
            let start = t(3).timestamp();
            assert_eq!(
                get(format!("?start={start}")).await,
                (200, json!({"flips": [entry(2, 1), entry(3, 0)]}))
            );
            assert_eq!(
                get(format!("?end={start}")).await,
                (200, json!({"flips": [entry(4, 1)]}))
            );
            assert_eq!(
                get("?seconds=9000".into()).await,
                (200, json!({"flips": [entry(2, 1)]}))
            );
            assert_eq!(
                get("?seconds=0".into()).await.1["flips"]
                    .as_array()
                    .unwrap()
                    .len(),
                3
            );
            for bad in [
                "?seconds=-1",
                "?seconds=31536001",
                "?seconds=soon",
                "?start=-5",
                "?end=10000000001",
                "?start=1.5",
            ] {
                let (status, body) = get(bad.into()).await;
                assert_eq!(status, 400, "{bad}: {body}");
                assert!(
                    body["error"]
                        .as_str()
                        .unwrap()
                        .starts_with("invalid query parameter"),
                    "{body}"
                );
            }
        }
    }
    let by_uuid = format!("/api/v3/checks/{uuid}/flips/");
    assert_eq!(
        w.call(Method::GET, &by_uuid, None).await,
        (401, json!({"error": "missing api key"}))
    );
    assert_eq!(
        w.call(Method::GET, &by_uuid, Some(w.other_rw())).await.0,
        403
    );
    let by_key = format!("/api/v3/checks/{unique_key}/flips/");
    assert_eq!(
        w.call(Method::GET, &by_key, Some(w.other_rw())).await.0,
        404
    );
}

#[tokio::test]
async fn a_real_flip_shows_once_the_deadline_loop_has_seen_the_ping() {
    let w = HcWorld::new().await;
    let check = w
        .create_check(json!({"name": "Real", "timeout": 3600, "grace": 60}))
        .await;
    let uuid = check["uuid"].as_str().unwrap();
    let ping = w.app.url(&format!("/ping/{uuid}"));
    assert_eq!(w.ping(Method::GET, &format!("{ping}/fail"), "").await, 200);
    deadline::run_once(&w.app.state.pool, Utc::now())
        .await
        .unwrap();
    let (status, list) = w
        .call(
            Method::GET,
            &format!("/api/v3/checks/{uuid}/flips/"),
            Some(w.rw()),
        )
        .await;
    assert_eq!(status, 200);
    let flips = list["flips"].as_array().unwrap();
    assert_eq!(flips.len(), 1, "{list}");
    assert_eq!(flips[0]["up"], 0);
}

#[tokio::test]
async fn channels_lists_the_project_s_channels_to_read_write_keys() {
    let w = HcWorld::new().await;
    let pager = w.create_channel("pager").await;
    for v in ["v1", "v3"] {
        let path = format!("/api/{v}/channels/");
        assert_eq!(
            w.call(Method::GET, &path, Some(w.rw())).await,
            (
                200,
                json!({"channels": [{"id": pager, "name": "pager", "kind": "pagerduty"}]})
            )
        );
        assert_eq!(
            w.call(Method::GET, &path, Some(w.other_rw())).await,
            (200, json!({"channels": []}))
        );
        assert_eq!(
            w.call(Method::GET, &path, Some(w.ro())).await,
            (401, json!({"error": "wrong api key"}))
        );
        assert_eq!(
            w.call(Method::GET, &path, None).await,
            (401, json!({"error": "missing api key"}))
        );
    }
}

#[tokio::test]
async fn status_answers_ok_without_a_key() {
    let w = HcWorld::new().await;
    for v in ["v1", "v2", "v3"] {
        let r = w
            .app
            .client
            .get(w.app.url(&format!("/api/{v}/status/")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "OK");
    }
    assert_eq!(w.call(Method::GET, "/api/v9/status/", None).await.0, 404);
}

#[tokio::test]
async fn a_check_goes_round_trip_from_create_to_pings_flips_and_delete() {
    let w = HcWorld::new().await;
    for v in ["v1", "v3"] {
        let checks = format!("/api/{v}/checks/");
        let create = json!({"name": format!("Round {v}"), "timeout": 3600, "grace": 60,
                            "unique": ["name"]});
        let (status, made) = w
            .send(Method::POST, &checks, Some(w.rw()), create.clone())
            .await;
        assert_eq!(status, 201, "{made}");
        let (status, same) = w.send(Method::POST, &checks, Some(w.rw()), create).await;
        assert_eq!((status, &same["uuid"]), (200, &made["uuid"]));
        let uuid = made["uuid"].as_str().unwrap();
        let one = format!("/api/{v}/checks/{uuid}");
        let (status, up) = w
            .send(Method::POST, &one, Some(w.rw()), json!({"grace": 120}))
            .await;
        assert_eq!((status, &up["grace"]), (200, &json!(120)));

        // A failed run, then a good one, each seen by the deadline loop.
        let ping = w.app.url(&path_of(made["ping_url"].as_str().unwrap()));
        assert_eq!(
            w.ping(Method::POST, &format!("{ping}/1"), "boom").await,
            200
        );
        deadline::run_once(&w.app.state.pool, Utc::now())
            .await
            .unwrap();
        assert_eq!(
            w.ping(Method::POST, &format!("{ping}/0"), "fine").await,
            200
        );
        deadline::run_once(&w.app.state.pool, Utc::now())
            .await
            .unwrap();
        let (_, pings) = w
            .call(Method::GET, &format!("{one}/pings/"), Some(w.rw()))
            .await;
        let types: Vec<&str> = pings["pings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["success", "fail"]);
        let (_, flips) = w
            .call(Method::GET, &format!("{one}/flips/"), Some(w.rw()))
            .await;
        let ups: Vec<i64> = flips["flips"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["up"].as_i64().unwrap())
            .collect();
        assert_eq!(ups, [1, 0], "{flips}");
        let (_, check) = w.call(Method::GET, &one, Some(w.rw())).await;
        assert_eq!(
            (check["status"].as_str(), check["n_pings"].as_i64()),
            (Some("up"), Some(2))
        );

        let (status, paused) = w
            .call(Method::POST, &format!("{one}/pause"), Some(w.rw()))
            .await;
        assert_eq!((status, paused["status"].as_str()), (200, Some("paused")));
        assert_eq!(
            w.call(Method::POST, &format!("{one}/resume"), Some(w.rw()))
                .await
                .0,
            200
        );
        assert_eq!(
            raw(&w.app, Method::POST, &format!("{one}/resume"), Some(w.rw())).await,
            not_paused()
        );
        assert_eq!(w.call(Method::DELETE, &one, Some(w.rw())).await.0, 200);
        assert_eq!(w.call(Method::GET, &one, Some(w.rw())).await.0, 404);
        assert_eq!(
            w.call(Method::GET, &format!("{one}/flips/"), Some(w.rw()))
                .await
                .0,
            404
        );
    }
}
