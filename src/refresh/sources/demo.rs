//! `demo` source: deterministic synthetic events, so the embedded default shows a
//! live cockpit with no data of its own.
//!
//! Events are a pure function of the hour they fall in (pseudo-random numbers come
//! from `md5` of the event id), so ingesting an hour twice yields the same ids and
//! changes nothing. Each hour has `page_view`, `signup`, `order` (value: amount)
//! and `payment_failed` events from `clients` clients (a few big, many small), with
//! a daily cycle (peak mid-afternoon UTC), quieter weekends, and a few anomalous
//! hours (traffic spikes, a checkout outage with a burst of failed payments) so the
//! z-score bands have something real to show.
//!
//! The generator runs inside PostgreSQL (one `INSERT ... SELECT` per run); the
//! cursor is the end of the last generated hour. Only whole hours are generated,
//! up to the last complete one; the first run reaches back `days` days.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::{load_cursor, SourceError, SourceReport, SAVE_CURSOR_SQL};
use crate::jobs::JobContext;
use crate::refresh::definitions::Grain;

/// `kind = "demo"`. Added implicitly (named `demo`) when demo mode is on.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DemoConfig {
    pub name: String,
    /// History generated on the first run, days.
    #[serde(default = "default_days")]
    pub days: u32,
    /// Number of distinct clients.
    #[serde(default = "default_clients")]
    pub clients: u32,
}

fn default_days() -> u32 {
    14
}
fn default_clients() -> u32 {
    40
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            name: "demo".into(),
            days: default_days(),
            clients: default_clients(),
        }
    }
}

/// `$1` source, `$2`/`$3` the hour range `[from, to)`, `$4` clients.
const GENERATE_SQL: &str = "
WITH batch AS (SELECT nextval('heartbeat.ingest_batch_seq') AS id),
spec(name, base, value_min, value_max) AS (
    VALUES ('page_view', 300, 1, 1), ('signup', 12, 1, 1),
           ('order', 30, 15, 240), ('payment_failed', 2, 1, 1)
),
hours AS (
    SELECT h,
           -- daily cycle peaking at 15:00 UTC, quieter weekends
           (0.25 + 0.75 * (1 + sin(2 * pi() * (extract(hour FROM h AT TIME ZONE 'UTC') - 9) / 24)) / 2)
           * CASE WHEN extract(isodow FROM h AT TIME ZONE 'UTC') >= 6 THEN 0.6 ELSE 1.0 END AS season,
           ('x' || substr(md5('anomaly' || extract(epoch FROM h)::bigint), 1, 7))::bit(28)::int / 268435455.0 AS a
    FROM generate_series($2::timestamptz, $3::timestamptz - interval '1 hour', interval '1 hour') AS h
),
counts AS (
    SELECT h, s.name, s.value_min, s.value_max,
           greatest(0, round(s.base * season
               * (0.85 + 0.3 * (('x' || substr(md5(s.name || extract(epoch FROM h)::bigint), 1, 7))::bit(28)::int / 268435455.0))
               * CASE
                   WHEN a < 0.012 AND s.name IN ('page_view', 'order') THEN 2.5
                   WHEN a > 0.988 AND s.name = 'order' THEN 0.15
                   WHEN a > 0.988 AND s.name = 'payment_failed' THEN 12
                   ELSE 1
                 END))::int AS n
    FROM hours CROSS JOIN spec s
),
generated AS (
    SELECT c.name || ':' || extract(epoch FROM c.h)::bigint || ':' || i AS event_id,
           c.h, c.name, c.value_min, c.value_max
    FROM counts c CROSS JOIN LATERAL generate_series(1, c.n) AS i
),
hashed AS (
    SELECT g.*, md5(g.event_id) AS m FROM generated g
)
INSERT INTO heartbeat.event (source, event_id, occurred_at, client_id, name, value, batch_id)
SELECT $1, event_id,
       h + make_interval(secs => floor(3599 * (('x' || substr(m, 1, 7))::bit(28)::int / 268435455.0))),
       'client_' || lpad((1 + floor($4::float8 * power(('x' || substr(m, 8, 7))::bit(28)::int / 268435455.0, 2)))::int::text, 3, '0'),
       name,
       value_min + floor((value_max - value_min) * (('x' || substr(m, 15, 7))::bit(28)::int / 268435455.0)),
       batch.id
FROM hashed CROSS JOIN batch
ON CONFLICT (source, event_id) DO NOTHING";

pub(super) async fn ingest(
    ctx: &JobContext,
    config: &DemoConfig,
    now: DateTime<Utc>,
    report: &mut SourceReport,
) -> Result<(), SourceError> {
    let mut client = ctx.client().await?;
    let stored = load_cursor(&**client, &config.name).await?;
    report.cursor = stored.clone();
    let end = Grain::Hour.truncate(now);
    let earliest = end - Duration::days(i64::from(config.days));
    let start = stored
        .and_then(|c| DateTime::parse_from_rfc3339(&c).ok())
        .map(|c| c.with_timezone(&Utc))
        .unwrap_or(earliest)
        .max(earliest);
    if start >= end {
        return Ok(());
    }
    let cursor = end.to_rfc3339();
    let tx = client.transaction().await?;
    ctx.enter_fence(&*tx).await?;
    let clients = f64::from(config.clients.max(1));
    report.rows_inserted = tx
        .execute(GENERATE_SQL, &[&config.name, &start, &end, &clients])
        .await?;
    tx.execute(SAVE_CURSOR_SQL, &[&config.name, &cursor])
        .await?;
    tx.commit().await?;
    report.pages = 1;
    report.cursor = Some(cursor);
    Ok(())
}
