//! A check's tags and channels are its heartbeat's own: what healthchecks.io's
//! Management API sets, Heartbeat's API shows, and the other way round.

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::hc_support::HcWorld;

async fn heartbeat_json(w: &HcWorld, id: &str) -> Value {
    let r = w
        .app
        .client
        .get(w.app.url(&format!("/api/heartbeats/{id}")))
        .bearer_auth(w.rw())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

#[tokio::test]
async fn tags_and_channels_set_through_one_api_show_through_the_other() {
    let w = HcWorld::new().await;
    let pager = w.create_channel("pager").await;
    let mail = w.create_channel("mail").await;

    // Heartbeat's API sets them; the check shows them.
    let r = w
        .app
        .client
        .post(w.app.url("/api/heartbeats"))
        .bearer_auth(w.rw())
        .json(
            &json!({"name": "Sync", "period_seconds": 3600, "grace_seconds": 600,
                      "tags": ["prod", "db"], "channels": [pager]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let hb: Value = r.json().await.unwrap();
    let id = hb["id"].as_str().unwrap().to_string();
    let uuid = hb["uuid"].as_str().unwrap().to_string();
    let one = format!("/api/v3/checks/{uuid}");
    let (_, check) = w.call(Method::GET, &one, Some(w.rw())).await;
    assert_eq!(check["tags"], "db prod");
    assert_eq!(check["channels"], pager.as_str());
    let (_, listed) = w
        .call(Method::GET, "/api/v3/checks/?tag=db", Some(w.rw()))
        .await;
    assert_eq!(listed["checks"].as_array().unwrap().len(), 1);

    // The check's API sets them (channels by name or id); Heartbeat's shows them.
    let (status, check) = w
        .send(
            Method::POST,
            &one,
            Some(w.rw()),
            json!({"tags": "web  prod web", "channels": format!("mail,{pager}")}),
        )
        .await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["tags"], "prod web");
    let mut both = vec![pager.clone(), mail.clone()];
    both.sort();
    assert_eq!(check["channels"], both.join(","));
    let hb = heartbeat_json(&w, &id).await;
    assert_eq!(hb["tags"], json!(["prod", "web"]));
    let mut shown: Vec<String> = serde_json::from_value(hb["channels"].clone()).unwrap();
    shown.sort();
    assert_eq!(shown, both);

    // "": no channel; "*": every channel of the project, as Heartbeat's "all".
    let (_, check) = w
        .send(Method::POST, &one, Some(w.rw()), json!({"channels": ""}))
        .await;
    assert_eq!(check["channels"], "");
    assert_eq!(heartbeat_json(&w, &id).await["channels"], json!([]));
    let (_, check) = w
        .send(Method::POST, &one, Some(w.rw()), json!({"channels": "*"}))
        .await;
    assert_eq!(check["channels"], both.join(","));
    assert_eq!(heartbeat_json(&w, &id).await["channels"], "all");

    // Refused as healthchecks.io refuses them; a word Heartbeat cannot keep as
    // a tag is named.
    for (body, error) in [
        (
            json!({"channels": "nope"}),
            "invalid channel identifier: nope",
        ),
        (json!({"channels": "pager,"}), "empty channel identifier"),
    ] {
        assert_eq!(
            w.send(Method::POST, &one, Some(w.rw()), body).await,
            (400, json!({ "error": error }))
        );
    }
    let (status, body) = w
        .send(Method::POST, &one, Some(w.rw()), json!({"tags": "ok b@d"}))
        .await;
    assert_eq!(status, 400);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("json validation error: tags") && error.contains("b@d"),
        "{error}"
    );
    // A create's tags and channels land on the heartbeat too.
    let made = w
        .create_check(json!({"name": "Made", "tags": "etl", "channels": "mail"}))
        .await;
    assert_eq!(made["tags"], "etl");
    assert_eq!(made["channels"], mail.as_str());
}

#[tokio::test]
async fn unique_tags_match_the_same_words_in_any_order() {
    let w = HcWorld::new().await;
    let first = w
        .create_check(json!({"name": "A", "tags": "b a", "unique": ["tags"]}))
        .await;
    let (status, again) = w
        .send(
            Method::POST,
            "/api/v3/checks/",
            Some(w.rw()),
            json!({"name": "A", "tags": "a b", "unique": ["tags"]}),
        )
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["uuid"], first["uuid"]);
}

#[tokio::test]
async fn migration_0017_folds_the_old_hc_tags_and_channels_into_the_heartbeat_s_own() {
    let url = crate::helpers::fresh_database().await;
    let mut client = heartbeat::db::connect_direct(&url).await.unwrap();
    // The schema as 0014 left it: the API's own copies, no badge columns.
    client
        .batch_execute(
            "ALTER TABLE heartbeat.heartbeat
                 ADD COLUMN hc_tags text NOT NULL DEFAULT '',
                 ADD COLUMN hc_channels text NOT NULL DEFAULT '*',
                 DROP COLUMN badge_uuid;
             ALTER TABLE heartbeat.project DROP COLUMN badge_key, DROP COLUMN badge_secret;
             DELETE FROM heartbeat.schema_migrations WHERE version = 17;
             INSERT INTO heartbeat.heartbeat
                 (heartbeat_id, project_id, name, token, period_seconds, grace_seconds,
                  tags, hc_tags, hc_channels)
             VALUES
                 (gen_random_uuid(), '00000000-0000-0000-0000-000000000002', 'a',
                  'hb_AAAAAAAAAAAAAAAA', 60, 60, '{db}', ' web  db b@d ', '*'),
                 (gen_random_uuid(), '00000000-0000-0000-0000-000000000002', 'b',
                  'hb_BBBBBBBBBBBBBBBB', 60, 60, '{}', '', ''),
                 (gen_random_uuid(), '00000000-0000-0000-0000-000000000002', 'c',
                  'hb_CCCCCCCCCCCCCCCC', 60, 60, '{keep}', '', '*');",
        )
        .await
        .unwrap();
    assert_eq!(
        heartbeat::db::migrate::run(&mut client).await.unwrap(),
        [17]
    );
    let rows = client
        .query(
            "SELECT name, tags, channels FROM heartbeat.heartbeat
             WHERE name IN ('a', 'b', 'c') ORDER BY name",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, Vec<String>, Option<Vec<Uuid>>)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        [
            ("a".into(), vec!["db".into(), "web".into()], None),
            ("b".into(), vec![], Some(vec![])),
            ("c".into(), vec!["keep".into()], None),
        ]
    );
    let keys: i64 = client
        .query_one(
            "SELECT count(DISTINCT badge_key) - count(*) FROM heartbeat.project",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 0, "every project got its own badge key");
}
