//! A heartbeat's detection events, so every failure the rules count is seen,
//! also one below the failure threshold that changes no status: the missed
//! deadlines and starts and the timed-out runs the deadline loop counts
//! (recorded here), and the `early` and `too_fast` successes the ping statement
//! flags (kept on their pings in the ping history). docs/monitoring.md,
//! "Detection events".
//!
//! The loop's events are a ring of [`EVENTS_KEPT`] slots per heartbeat, written
//! in place like the ping history (docs/decisions.md §21, §29), so a heartbeat
//! that misses every period for a year takes no more room than one that missed
//! a hundred times.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::status::{Cause, Counted};

/// Loop events kept per heartbeat; an older one's slot is overwritten.
pub const EVENTS_KEPT: i64 = 100;

/// Most events one listing returns.
const LISTED: i64 = 1000;

/// Writes `events` (per heartbeat, oldest first) into their heartbeats' rings
/// in one statement: each heartbeat's `event_seq` moves on by its count, and
/// event `seq` lands in slot `seq % EVENTS_KEPT`. Only a heartbeat's newest
/// `EVENTS_KEPT` are written, since one statement cannot write a slot twice.
pub async fn record(
    tx: &tokio_postgres::Transaction<'_>,
    events: &[(Uuid, &Counted)],
) -> Result<u64, tokio_postgres::Error> {
    if events.is_empty() {
        return Ok(0);
    }
    let mut count: HashMap<Uuid, i64> = HashMap::new();
    for (id, _) in events {
        *count.entry(*id).or_default() += 1;
    }
    let mut rank: HashMap<Uuid, i64> = HashMap::new();
    let (mut ids, mut ns, mut ats, mut kinds, mut reasons, mut streaks) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (id, c) in events {
        let n = rank.entry(*id).or_default();
        *n += 1;
        if *n <= count[id] - EVENTS_KEPT {
            continue;
        }
        ids.push(*id);
        ns.push(*n);
        ats.push(c.at);
        kinds.push(c.cause);
        reasons.push(c.reason());
        streaks.push(c.failure_streak);
    }
    tx.execute(
        RECORD,
        &[&ids, &ns, &ats, &kinds, &reasons, &streaks, &EVENTS_KEPT],
    )
    .await
}

/// `$2` is each event's rank among its heartbeat's events in the call (1, 2,
/// ...); the count moved by is the call's whole count, the skipped ones
/// included, so `seq` numbers every event counted.
const RECORD: &str = "
WITH e AS (
    SELECT * FROM unnest($1::uuid[], $2::int8[], $3::timestamptz[], $4::text[], $5::text[],
                         $6::int4[])
         AS e(id, n, at, event, reason, streak)
), counts AS (
    SELECT id, max(n) AS cnt FROM e GROUP BY id
), moved AS (
    UPDATE heartbeat.heartbeat h SET event_seq = h.event_seq + c.cnt
    FROM counts c WHERE h.heartbeat_id = c.id
    RETURNING h.heartbeat_id, h.event_seq - c.cnt AS base
)
INSERT INTO heartbeat.detection_event AS d (heartbeat_id, slot, seq, at, event, reason,
                                            failure_streak, detected_at)
SELECT e.id, ((m.base + e.n) % $7)::int4, m.base + e.n, e.at, e.event, e.reason, e.streak,
       clock_timestamp()
FROM e JOIN moved m ON m.heartbeat_id = e.id
ON CONFLICT (heartbeat_id, slot) DO UPDATE SET
    seq = excluded.seq, at = excluded.at, event = excluded.event, reason = excluded.reason,
    failure_streak = excluded.failure_streak, detected_at = excluded.detected_at";

/// One detection event, as the API lists it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DetectionEvent {
    /// When it happened: the deadline or run limit that passed, or the ping's
    /// time.
    pub at: DateTime<Utc>,
    /// `missed` or `timeout` (counted by the deadline loop), `early` or
    /// `too_fast` (a success ping the rules count as a failure).
    pub event: Cause,
    /// Why, in words, with the rule's limit.
    pub reason: Option<String>,
    /// Loop events: the failure streak with this one counted (the heartbeat
    /// goes down when it reaches `failure_threshold`). Null for a ping's event.
    pub failure_streak: Option<i32>,
    /// A ping's event: the ping's `seq` in the ping history. Null for a loop
    /// event.
    pub ping_seq: Option<i64>,
    /// Loop events: when the deadline loop counted it. Null for a ping's event.
    pub detected_at: Option<DateTime<Utc>>,
}

/// Heartbeat `id`'s detection events, newest first: the loop's ring, and the
/// pings in its history that carry an event.
pub async fn list(
    client: &tokio_postgres::Client,
    id: Uuid,
) -> Result<Vec<DetectionEvent>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT at, event, reason, failure_streak, NULL::int8, detected_at
             FROM heartbeat.detection_event WHERE heartbeat_id = $1
             UNION ALL
             SELECT at, event, reason, NULL::int4, seq, NULL::timestamptz
             FROM heartbeat.ping WHERE heartbeat_id = $1 AND event IS NOT NULL
             ORDER BY 1 DESC, 5 DESC NULLS LAST LIMIT $2",
            &[&id, &LISTED],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| DetectionEvent {
            at: r.get(0),
            event: r.get(1),
            reason: r.get(2),
            failure_streak: r.get(3),
            ping_seq: r.get(4),
            detected_at: r.get(5),
        })
        .collect())
}
