//! Reminders: while a heartbeat stays down, a channel with `repeat_every_seconds`
//! gets a `reminder` alert once per interval since the heartbeat went down.
//!
//! A reminder is an outbox row keyed by (the down flip, the channel, the
//! interval number), unique in the table, so a pass that runs twice, on two
//! nodes, or again after a restart writes nothing new. Only the current
//! interval is written: a daemon that was stopped for several intervals sends
//! one reminder when it comes back, not a burst. A heartbeat that recovers is no
//! longer stored `down`, and gets none; nor does a paused one, even before the
//! deadline loop has recorded its pause.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use super::channel::NotifyError;

const INSERT_REMINDERS: &str = r#"
INSERT INTO heartbeat.alert (flip_id, channel_id, heartbeat_id, event, reminder, payload,
                             created_at, next_attempt_at)
SELECT f.flip_id, c.channel_id, h.heartbeat_id, 'reminder', r.n,
       jsonb_build_object(
           'event', 'reminder',
           'heartbeat', jsonb_build_object('id', h.heartbeat_id, 'name', h.name,
                                           'project_id', h.project_id),
           'at', to_char(f.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           'detected_at', $1, 'previous_status', f.from_status,
           'status', 'down', 'reminder', r.n),
       $1, $1
FROM heartbeat.heartbeat h
JOIN LATERAL (
    SELECT flip_id, at, from_status FROM heartbeat.flip
    WHERE heartbeat_id = h.heartbeat_id AND to_status = 'down'
    ORDER BY flip_id DESC LIMIT 1) f ON true
JOIN heartbeat.channel c ON c.project_id = h.project_id AND NOT c.muted
     AND c.repeat_every_seconds IS NOT NULL
     AND (h.channels IS NULL OR c.channel_id = ANY(h.channels))
CROSS JOIN LATERAL (
    SELECT floor(extract(epoch FROM ($1 - f.at)) / c.repeat_every_seconds)::int AS n) r
WHERE h.status = 'down' AND NOT h.paused AND r.n >= 1
ON CONFLICT DO NOTHING"#;

/// Writes the reminders due at `now`; returns how many were new.
pub async fn run_once(pool: &Pool, now: DateTime<Utc>) -> Result<u64, NotifyError> {
    let client = pool.get().await?;
    Ok(client.execute(INSERT_REMINDERS, &[&now]).await?)
}
