//! A heartbeat's pings and flips over a window: `?since=` keeps what happened at
//! or after an instant and `?limit=` bounds the answer (newest first), so a
//! timeline of the last day reads a day, not the whole history. Bad values are
//! 422 `invalid_query`, naming the problem.

use serde_json::{json, Value};

use crate::helpers::error_code;
use crate::monitor::{create, quiet_app};

fn times(list: &Value, field: &str, key: &str) -> Vec<String> {
    list[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p[key].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn pings_and_flips_since_an_instant_newest_first_and_bounded() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "window", "period_seconds": 3600, "grace_seconds": 60}),
    )
    .await;
    let id = hb["id"].as_str().unwrap();
    let url = hb["ping_url"].as_str().unwrap();
    let path = &url[url.find("/hb/").unwrap()..];
    for suffix in ["", "/fail", "/log", ""] {
        let r = app
            .client
            .get(app.url(&format!("{path}{suffix}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // Ping n (0-based, oldest first) happened 3 - n days ago.
    let db = app.db().await;
    db.execute(
        "UPDATE heartbeat.ping p SET at = now() - make_interval(days => 3 - o.n)
         FROM (SELECT seq, (row_number() OVER (ORDER BY seq) - 1)::int AS n
               FROM heartbeat.ping WHERE heartbeat_id = $1::text::uuid) o
         WHERE p.heartbeat_id = $1::text::uuid AND p.seq = o.seq",
        &[&id],
    )
    .await
    .unwrap();
    db.execute(
        "DELETE FROM heartbeat.flip WHERE heartbeat_id = $1::text::uuid",
        &[&id],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO heartbeat.flip (heartbeat_id, at, from_status, to_status, detected_at)
         VALUES ($1::text::uuid, now() - interval '3 days', 'pending', 'up', now()),
                ($1::text::uuid, now() - interval '2 days', 'up', 'down', now()),
                ($1::text::uuid, now() - interval '1 hour', 'down', 'up', now())",
        &[&id],
    )
    .await
    .unwrap();

    let (status, all) = app.get_json(&format!("/api/heartbeats/{id}/pings")).await;
    assert_eq!(status, 200, "{all}");
    let kinds = times(&all, "pings", "kind");
    assert_eq!(kinds, ["success", "log", "fail", "success"]);

    // The last 36 hours: the pings of one day ago and today.
    let since = (chrono::Utc::now() - chrono::Duration::hours(36)).to_rfc3339();
    let since = urlencoding(&since);
    let (status, recent) = app
        .get_json(&format!("/api/heartbeats/{id}/pings?since={since}"))
        .await;
    assert_eq!(status, 200, "{recent}");
    assert_eq!(times(&recent, "pings", "kind"), ["success", "log"]);
    let (_, one) = app
        .get_json(&format!("/api/heartbeats/{id}/pings?since={since}&limit=1"))
        .await;
    assert_eq!(times(&one, "pings", "kind"), ["success"]);
    let (_, newest_two) = app
        .get_json(&format!("/api/heartbeats/{id}/pings?limit=2"))
        .await;
    assert_eq!(times(&newest_two, "pings", "kind"), ["success", "log"]);

    let (status, flips) = app
        .get_json(&format!("/api/heartbeats/{id}/flips?since={since}"))
        .await;
    assert_eq!(status, 200, "{flips}");
    assert_eq!(times(&flips, "flips", "to"), ["up"]);
    let (_, all_flips) = app
        .get_json(&format!("/api/heartbeats/{id}/flips?limit=2"))
        .await;
    assert_eq!(times(&all_flips, "flips", "to"), ["up", "down"]);
    // A window starting after everything is empty, not an error.
    let (status, none) = app
        .get_json(&format!(
            "/api/heartbeats/{id}/flips?since=2999-01-01T00:00:00Z"
        ))
        .await;
    assert_eq!(status, 200);
    assert_eq!(none["flips"], json!([]));
}

#[tokio::test]
async fn a_bad_since_or_an_out_of_bounds_limit_is_named_in_a_422() {
    let app = quiet_app().await;
    let hb = create(
        &app,
        json!({"name": "bounds", "period_seconds": 3600, "grace_seconds": 60}),
    )
    .await;
    let id = hb["id"].as_str().unwrap();
    for (query, names) in [
        ("pings?since=yesterday", "since"),
        ("pings?since=2026-01-01", "since"),
        ("pings?limit=0", "limit"),
        ("pings?limit=100001", "limit"),
        ("pings?limit=-5", "limit"),
        ("pings?limit=ten", "limit"),
        ("pings?until=2026-01-01T00:00:00Z", "until"),
        ("flips?since=2026-13-01T00:00:00Z", "since"),
        ("flips?limit=0", "limit"),
        ("flips?limit=10001", "limit"),
    ] {
        let (status, body) = app.get_json(&format!("/api/heartbeats/{id}/{query}")).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(error_code(&body), "invalid_query", "{query}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "{query}: {message}");
    }
    // The largest limits are accepted.
    for query in ["pings?limit=100000", "flips?limit=10000"] {
        let (status, body) = app.get_json(&format!("/api/heartbeats/{id}/{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
    }
}

/// `+` in an RFC 3339 offset must be escaped in a query string.
fn urlencoding(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
