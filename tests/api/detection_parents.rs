//! A parent that goes away while its children's down alerts are withheld as
//! `suppressed`: deleted (through the API or otherwise), it leaves their
//! `parents` and those still down alert once, at the next pass of the loop;
//! paused, it wakes them in the same pass. Under the deadline loop at chosen
//! instants.

use heartbeat::monitor::ping::PingKind;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::detection_rules::{flips, one, secs, t0, tick};
use crate::detection_withhold::{alerts, patch, with_channel};
use crate::helpers::TestApp;
use crate::monitor::{create, get_hb, quiet_app};

fn body(name: &str, parents: &[&Value]) -> Value {
    let parents: Vec<&str> = parents.iter().map(|p| p["id"].as_str().unwrap()).collect();
    json!({"name": name, "period_seconds": 600, "grace_seconds": 0, "parents": parents})
}

/// Every heartbeat pings at t0 and misses its deadline at t0 + 600: down at
/// t0 + 601, the parents' alerts sent, the children's withheld.
async fn all_down(app: &TestApp, parents: &[&Value], children: &[&Value]) {
    for hb in parents.iter().chain(children) {
        one(app, hb, PingKind::Success, t0()).await;
    }
    tick(app, t0()).await;
    let t = tick(app, t0() + secs(601)).await;
    assert_eq!(
        (t.flips, t.alerts as usize),
        (parents.len() + children.len(), parents.len())
    );
    for hb in children {
        assert_eq!(flips(app, hb).await[0]["withheld"], "suppressed");
        assert!(alerts(app, hb).await.is_empty());
    }
}

fn id(hb: &Value) -> &str {
    hb["id"].as_str().unwrap()
}

#[tokio::test]
async fn deleting_a_parent_drops_it_from_its_children_and_sends_the_alerts_it_held() {
    let app = quiet_app().await;
    with_channel(&app).await;
    let p = create(&app, body("db-host", &[])).await;
    let q = create(&app, body("db-replica", &[])).await;
    let only_p = create(&app, body("dump", &[&p])).await;
    let p_and_q = create(&app, body("report", &[&p, &q])).await;
    all_down(&app, &[&p, &q], &[&only_p, &p_and_q]).await;

    let r = app
        .client
        .delete(app.url(&format!("/api/heartbeats/{}", id(&p))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(get_hb(&app, id(&only_p)).await["parents"], json!([]));
    assert_eq!(get_hb(&app, id(&p_and_q)).await["parents"], json!([id(&q)]));

    // The next pass sends the alert the deleted parent held, once; the child
    // with another parent still down keeps waiting.
    let t = tick(&app, t0() + secs(602)).await;
    assert_eq!(t.alerts, 1);
    assert_eq!(alerts(&app, &only_p).await, ["down"]);
    assert!(alerts(&app, &p_and_q).await.is_empty());
    assert_eq!(
        get_hb(&app, id(&only_p)).await["alert_withheld"],
        Value::Null
    );
    assert_eq!(
        get_hb(&app, id(&p_and_q)).await["alert_withheld"],
        "suppressed"
    );
    assert_eq!(tick(&app, t0() + secs(603)).await.alerts, 0);
    assert_eq!(alerts(&app, &only_p).await, ["down"]);

    // Deleted without the API, the other parent does the same.
    let q_id: Uuid = id(&q).parse().unwrap();
    app.db()
        .await
        .execute(
            "DELETE FROM heartbeat.heartbeat WHERE heartbeat_id = $1",
            &[&q_id],
        )
        .await
        .unwrap();
    assert_eq!(get_hb(&app, id(&p_and_q)).await["parents"], json!([]));
    assert_eq!(tick(&app, t0() + secs(604)).await.alerts, 1);
    assert_eq!(alerts(&app, &p_and_q).await, ["down"]);
    assert_eq!(tick(&app, t0() + secs(605)).await.alerts, 0);
}

#[tokio::test]
async fn a_deleted_parent_sends_nothing_for_a_child_that_recovered_meanwhile() {
    let app = quiet_app().await;
    with_channel(&app).await;
    let p = create(&app, body("db-host", &[])).await;
    let child = create(&app, body("dump", &[&p])).await;
    all_down(&app, &[&p], &[&child]).await;
    one(&app, &child, PingKind::Success, t0() + secs(700)).await;
    tick(&app, t0() + secs(700)).await;
    let r = app
        .client
        .delete(app.url(&format!("/api/heartbeats/{}", id(&p))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(tick(&app, t0() + secs(701)).await.alerts, 0);
    assert!(alerts(&app, &child).await.is_empty());
}

#[tokio::test]
async fn pausing_a_parent_that_is_down_sends_its_childrens_alerts_in_the_same_pass() {
    let app = quiet_app().await;
    with_channel(&app).await;
    let p = create(&app, body("db-host", &[])).await;
    let child = create(&app, body("dump", &[&p])).await;
    all_down(&app, &[&p], &[&child]).await;
    let (status, view) = patch(&app, &p, json!({"paused": true})).await;
    assert_eq!(status, 200, "{view}");
    let t = tick(&app, t0() + secs(602)).await;
    assert_eq!((t.flips, t.woken, t.alerts), (1, 1, 1));
    assert_eq!(alerts(&app, &child).await, ["down"]);
    assert_eq!(get_hb(&app, id(&child)).await["parents"], json!([id(&p)]));
    assert_eq!(tick(&app, t0() + secs(603)).await.alerts, 0);
}
