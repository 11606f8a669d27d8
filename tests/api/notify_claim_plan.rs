//! The outbox claim's plan stays an index walk that stops at the batch, even
//! right after a burst into a table last analyzed when nothing was pending
//! (docs/decisions.md §30): no sort, no sequential scan of the outbox, the
//! claim index for each channel and the pair index for the order probe; the
//! same for the look at which channels have due alerts.

use heartbeat::notify::outbox::{CLAIM, CLAIM_SETTINGS, DUE_CHANNELS};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app_with, TestApp};
use crate::notify_channels::{add_channel, quiet_config};

const BURST: i32 = 3000;

/// `BURST` heartbeats down at once, each routed to one of `channels`, with
/// their flips and pending alerts, as the deadline loop writes them.
const WRITE_BURST: &str = "
WITH h AS (
    INSERT INTO heartbeat.heartbeat (heartbeat_id, project_id, name, token, slug, period_seconds,
        grace_seconds, status, last_ping_at, last_ping_kind, last_signal_at, deadline, channels)
    SELECT gen_random_uuid(), $1, $2::text || i, $2::text || md5(i::text), $2::text || i, 60, 0, 'down',
           now() - interval '61 s', 'success', now() - interval '61 s', now() + interval '60 s',
           ARRAY[($3::uuid[])[1 + i % 3]]
    FROM generate_series(1, $4) i
    RETURNING heartbeat_id, channels
), f AS (
    INSERT INTO heartbeat.flip (heartbeat_id, at, from_status, to_status, detected_at, cause)
    SELECT heartbeat_id, now() - interval '1 s', 'up', 'down', now(), 'missed' FROM h
    RETURNING flip_id, heartbeat_id
)
INSERT INTO heartbeat.alert (flip_id, channel_id, heartbeat_id, event, payload, created_at,
                             next_attempt_at)
SELECT f.flip_id, h.channels[1], f.heartbeat_id, 'down', '{\"event\": \"down\"}', now(), now()
FROM f JOIN h USING (heartbeat_id)";

async fn burst(app: &TestApp, channels: &[Uuid], prefix: &str) {
    let db = app.db().await;
    let project: Uuid = db
        .query_one(
            "SELECT project_id FROM heartbeat.channel WHERE channel_id = $1",
            &[&channels[0]],
        )
        .await
        .unwrap()
        .get(0);
    db.execute(WRITE_BURST, &[&project, &prefix, &channels, &BURST])
        .await
        .unwrap();
}

/// Every node of a JSON plan, depth first.
fn nodes(plan: &Value, out: &mut Vec<Value>) {
    out.push(plan.clone());
    for child in plan["Plans"].as_array().into_iter().flatten() {
        nodes(child, out);
    }
}

#[tokio::test]
async fn the_claim_walks_indexes_without_sorting_after_a_burst_into_stale_statistics() {
    let app = spawn_app_with(quiet_config()).await;
    let mut channels = Vec::new();
    for i in 0..3 {
        let c = add_channel(
            &app,
            json!({"name": format!("receiver {i}"), "kind": "webhook",
                   "config": {"url": "http://127.0.0.1:9/hook"}}),
        )
        .await;
        channels.push(c["id"].as_str().unwrap().parse::<Uuid>().unwrap());
    }
    let db = app.db().await;
    // A first burst, delivered, analyzed with nothing pending, then gone.
    burst(&app, &channels, "first-").await;
    db.batch_execute(
        "UPDATE heartbeat.alert SET state = 'delivered', delivered_at = now();
         ANALYZE heartbeat.alert;
         DELETE FROM heartbeat.heartbeat WHERE name LIKE 'first-%';",
    )
    .await
    .unwrap();
    // The next burst, before any analyze.
    burst(&app, &channels, "second-").await;

    let mut client = app.db().await;
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(CLAIM_SETTINGS).await.unwrap();
    let none: Vec<Uuid> = Vec::new();
    let now = chrono::Utc::now();
    let due = explain(&tx, DUE_CHANNELS, &[&now, &none]).await;
    let claim = explain(
        &tx,
        CLAIM,
        &[
            &now,
            &channels,
            &256i64,
            &(now + chrono::Duration::minutes(5)),
        ],
    )
    .await;
    for plan in [due, claim] {
        let mut all = Vec::new();
        nodes(&plan[0]["Plan"], &mut all);
        let text = plan.to_string();
        for node in &all {
            let kind = node["Node Type"].as_str().unwrap_or("");
            assert!(!kind.contains("Sort"), "a sort: {text}");
            // The lease's lookup by id may be a bitmap scan of the primary
            // key; the walks need the index order, so they cannot be.
            if node["Relation Name"] == "alert" && kind != "ModifyTable" {
                assert!(
                    matches!(kind, "Index Scan" | "Index Only Scan" | "Bitmap Heap Scan"),
                    "the outbox read by {kind}: {text}"
                );
            }
        }
        let indexes: Vec<&str> = all
            .iter()
            .filter_map(|n| n["Index Name"].as_str())
            .collect();
        assert!(indexes.contains(&"alert_claim_idx"), "{text}");
        assert!(indexes.contains(&"alert_pending_pair_idx"), "{text}");
    }
}

async fn explain(
    tx: &tokio_postgres::Transaction<'_>,
    statement: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Value {
    tx.query_one(&format!("EXPLAIN (FORMAT JSON) {statement}"), params)
        .await
        .unwrap()
        .get(0)
}
