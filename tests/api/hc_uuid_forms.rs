//! Only the canonical UUID form names a check or a run, as in healthchecks.io:
//! its routes take `<uuid:code>` (lowercase, hyphenated; its test
//! `test_it_rejects_alternative_uuid_formats` pings an unhyphenated UUID and
//! expects 404) and its rid check is the same pattern
//! (`test_it_handles_invalid_rid`: 400 `invalid uuid format`).

use reqwest::Method;
use serde_json::json;

use crate::hc_support::HcWorld;

#[tokio::test]
async fn other_uuid_forms_name_no_check_and_no_run() {
    let w = HcWorld::new().await;
    let check = w.create_check(json!({"name": "Forms"})).await;
    let uuid = check["uuid"].as_str().unwrap();
    let upper = uuid.to_uppercase();
    let simple = uuid.replace('-', "");
    for other in [&upper, &simple] {
        let r = w
            .app
            .client
            .get(w.app.url(&format!("/ping/{other}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{other}");
        assert_eq!(r.text().await.unwrap(), "not found");
        assert_eq!(
            w.call(
                Method::GET,
                &format!("/api/v3/checks/{other}"),
                Some(w.rw())
            )
            .await
            .0,
            404,
            "{other}"
        );
    }
    let url = w.app.url(&format!("/ping/{uuid}/start"));
    let rid = uuid::Uuid::new_v4().to_string();
    for bad in [rid.to_uppercase(), rid.replace('-', "")] {
        let r = w
            .app
            .client
            .get(format!("{url}?rid={bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        assert_eq!(r.text().await.unwrap(), "invalid uuid format");
    }
    assert_eq!(
        w.ping(Method::GET, &format!("{url}?rid={rid}"), "").await,
        200
    );
    // Nothing was recorded for the refused forms.
    let (_, list) = w
        .call(
            Method::GET,
            &format!("/api/v3/checks/{uuid}/pings/"),
            Some(w.rw()),
        )
        .await;
    assert_eq!(list["pings"].as_array().unwrap().len(), 1);
}
