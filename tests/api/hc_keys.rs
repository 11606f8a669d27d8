//! Every Management API call with a read-write key, a read-only key, another
//! project's key and no key, for v1 and v3, answered as healthchecks.io's
//! documentation says (healthchecks.io/docs/api/: 401 for a missing or wrong
//! key, a read-only key on a call that needs a read-write one, 403 for another
//! project's check, 404 for a check the key's project cannot name).

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::hc_support::HcWorld;

#[derive(Clone, Copy, Debug)]
enum Key {
    ReadWrite,
    ReadOnly,
    Other,
    None,
}

#[tokio::test]
async fn every_call_answers_each_kind_of_key_as_healthchecks_io_does() {
    let w = HcWorld::new().await;
    let check = w
        .create_check(json!({"name": "Target", "tags": "t", "timeout": 3600, "grace": 60}))
        .await;
    let uuid = check["uuid"].as_str().unwrap().to_string();
    let ping = w.app.url(&format!("/ping/{uuid}"));
    assert_eq!(w.ping(Method::POST, &ping, "output").await, 200);
    let (_, ro_view) = w
        .call(Method::GET, &format!("/api/v3/checks/{uuid}"), Some(w.ro()))
        .await;
    let unique_key = ro_view["unique_key"].as_str().unwrap().to_string();

    for v in ["v1", "v3"] {
        let one = format!("/api/{v}/checks/{uuid}");
        // (method, path, body, expected status for rw, ro, other, none)
        let calls: Vec<(Method, String, Option<Value>, [u16; 4])> = vec![
            (
                Method::GET,
                format!("/api/{v}/checks/"),
                None,
                [200, 200, 200, 401],
            ),
            (Method::GET, one.clone(), None, [200, 200, 403, 401]),
            (
                Method::GET,
                format!("/api/{v}/checks/{unique_key}"),
                None,
                [200, 200, 404, 401],
            ),
            (
                Method::POST,
                format!("/api/{v}/checks/"),
                Some(json!({"timeout": 3600})),
                [201, 401, 201, 401],
            ),
            (
                Method::POST,
                one.clone(),
                Some(json!({"desc": "changed"})),
                [200, 401, 403, 401],
            ),
            (
                Method::POST,
                format!("{one}/pause"),
                None,
                [200, 401, 403, 401],
            ),
            (
                Method::POST,
                format!("{one}/resume"),
                None,
                [200, 401, 403, 401],
            ),
            (
                Method::GET,
                format!("{one}/pings/"),
                None,
                [200, 401, 403, 401],
            ),
            (
                Method::GET,
                format!("{one}/pings/1/body"),
                None,
                [200, 401, 403, 401],
            ),
            (
                Method::GET,
                format!("{one}/flips/"),
                None,
                [200, 200, 403, 401],
            ),
            (
                Method::GET,
                format!("/api/{v}/checks/{unique_key}/flips/"),
                None,
                [200, 200, 404, 401],
            ),
            (
                Method::GET,
                format!("/api/{v}/channels/"),
                None,
                [200, 401, 200, 401],
            ),
            (
                Method::GET,
                format!("/api/{v}/badges/"),
                None,
                [200, 200, 200, 401],
            ),
        ];
        for (method, path, body, expected) in &calls {
            // Refusals first, so the read-write call finds the check as it was.
            for (i, key) in [
                (1, Key::ReadOnly),
                (2, Key::Other),
                (3, Key::None),
                (0, Key::ReadWrite),
            ] {
                let k = match key {
                    Key::ReadWrite => Some(w.rw()),
                    Key::ReadOnly => Some(w.ro()),
                    Key::Other => Some(w.other_rw()),
                    Key::None => None,
                };
                let (status, answer) = match body {
                    Some(b) => w.send(method.clone(), path, k, b.clone()).await,
                    None => w.call(method.clone(), path, k).await,
                };
                assert_eq!(
                    status, expected[i],
                    "{method} {path} with {key:?}: {answer}"
                );
                match (status, key) {
                    (401, Key::None) => assert_eq!(answer, json!({"error": "missing api key"})),
                    (401, _) => assert_eq!(answer, json!({"error": "wrong api key"})),
                    _ => {}
                }
            }
        }
        // An unknown key is a wrong one; an unknown check is 404 to every key.
        assert_eq!(
            w.call(Method::GET, &format!("/api/{v}/checks/"), Some("not-a-key"))
                .await,
            (401, json!({"error": "wrong api key"}))
        );
        let nobody = format!("/api/{v}/checks/{}", Uuid::new_v4());
        assert_eq!(w.call(Method::GET, &nobody, Some(w.rw())).await.0, 404);
        assert_eq!(w.call(Method::GET, &nobody, Some(w.ro())).await.0, 404);
    }
    // `status/` needs no key.
    assert_eq!(
        w.app
            .client
            .get(w.app.url("/api/v3/status/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Delete last: every other key is refused, then the read-write key deletes.
    let one = format!("/api/v3/checks/{uuid}");
    assert_eq!(w.call(Method::DELETE, &one, Some(w.ro())).await.0, 401);
    assert_eq!(
        w.call(Method::DELETE, &one, Some(w.other_rw())).await.0,
        403
    );
    assert_eq!(w.call(Method::DELETE, &one, None).await.0, 401);
    let (status, deleted) = w.call(Method::DELETE, &one, Some(w.rw())).await;
    assert_eq!(
        (status, deleted["uuid"].as_str()),
        (200, Some(uuid.as_str()))
    );
    assert_eq!(w.call(Method::GET, &one, Some(w.rw())).await.0, 404);
}
