//! Cut files that try to write: `DELETE`, `DROP`, a writing CTE and a second
//! statement are each named in the failed job and stopped by the read-only
//! transaction (or the one-statement protocol); the data and the good cut survive.
//! (Broken SQL, endless SQL and `FOR UPDATE` are covered in `audit.rs`; broken
//! headers in `audit.rs` and `refresh_compute.rs`.)

use crate::helpers::{spawn_app_with, test_config};
use crate::segments::{ensure_event_table, insert_events, run_job};

#[tokio::test]
async fn cuts_that_try_to_write_are_named_and_stopped_and_nothing_else_is_affected() {
    let dir = tempfile::tempdir().unwrap();
    let cuts = [
        (
            "a_delete",
            "DELETE FROM heartbeat.event RETURNING client_id",
        ),
        ("b_drop", "DROP TABLE heartbeat.event"),
        (
            "c_cte",
            "WITH d AS (DELETE FROM heartbeat.event RETURNING 1) SELECT count(*) AS n FROM d",
        ),
        ("d_second", "SELECT 1 AS one; DROP TABLE heartbeat.event"),
        ("e_truncate", "TRUNCATE heartbeat.metric_value"),
        ("z_good", "SELECT 1 AS one"),
    ];
    for (id, sql) in cuts {
        std::fs::write(
            dir.path().join(format!("{id}.sql")),
            format!("-- title: {id}\n-- windows: 24h\n{sql}\n"),
        )
        .unwrap();
    }
    let mut config = test_config();
    config.audit.cuts_dir = Some(dir.path().to_path_buf());
    config.audit.statement_timeout_secs = 2.0;
    let app = spawn_app_with(config).await;
    let db = app.db().await;
    ensure_event_table(&db).await;
    insert_events(&db, "c1", 5, 1, 1.0).await;
    let count = "SELECT count(*) FROM heartbeat.event";
    let before: i64 = db.query_one(count, &[]).await.unwrap().get(0);

    let job = run_job(&app, "audit").await;
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    for (id, _) in &cuts[..5] {
        assert!(
            error.contains(&format!("{id}/24h")),
            "{id} is named: {error}"
        );
    }
    assert!(!error.contains("z_good"), "{error}");

    let after: i64 = db.query_one(count, &[]).await.unwrap().get(0);
    assert_eq!(after, before, "no event was deleted or dropped");
    let (status, good) = app.get_json("/api/audit/cuts/z_good").await;
    assert_eq!(status, 200, "{good}");
    assert_eq!(good["row_count"], 1, "{good}");
}
