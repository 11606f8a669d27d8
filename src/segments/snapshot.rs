//! The segments lane's job: score every client over the window, assign tiers, and
//! replace the day's snapshot.
//!
//! The day's rows are deleted and re-inserted in one transaction. Under MVCC a
//! reader's statement (or its REPEATABLE READ transaction, as the API uses) sees
//! the snapshot from before the commit or after it, never part of each.

use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;
use serde_json::json;
use tokio_postgres::Client;

use super::tiers::{self, Ranked, Tier};
use super::{ScoreKind, SegmentsConfig};
use crate::jobs::{JobBody, JobContext, JobError};

/// The segments lane's body.
#[derive(Debug, Clone)]
pub struct SegmentsBody {
    pub config: SegmentsConfig,
}

impl SegmentsBody {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            config: config.segments.clone(),
        }
    }
}

impl JobBody for SegmentsBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<serde_json::Value, JobError>> {
        let config = self.config.clone();
        Box::pin(async move {
            // Two units: score every client, then replace the day.
            ctx.begin_phase("snapshot", 2);
            let mut client = ctx.client().await?;
            let now = Utc::now();
            let ranked = score_clients(&client, &config, now).await?;
            ctx.advance();
            ctx.check()?;
            let summary = replace_day(&mut client, &config, now, &ranked).await?;
            ctx.advance();
            let result = json!(summary);
            ctx.set_phase_detail(result.clone());
            Ok(result)
        })
    }
}

/// What one snapshot holds, for the job result.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct SnapshotSummary {
    pub date: NaiveDate,
    pub clients: usize,
    pub top: usize,
    pub mid: usize,
    pub micro: usize,
}

/// Per client: events and value sum inside `[$1, $2)`. Clients seen only before
/// the window are listed with zero activity, so they appear as `micro` rather than
/// vanishing from the snapshot.
const CLIENT_SCORES: &str = "
SELECT client_id,
       count(*) FILTER (WHERE occurred_at >= $1)::float8 AS events,
       coalesce(sum(value) FILTER (WHERE occurred_at >= $1), 0)::float8 AS value_sum
FROM heartbeat.event
WHERE client_id IS NOT NULL AND client_id <> '' AND occurred_at < $2
GROUP BY client_id";

const DELETE_DAY: &str = "DELETE FROM heartbeat.client_segment_snapshot WHERE snapshot_date = $1";

const INSERT_DAY: &str = "
INSERT INTO heartbeat.client_segment_snapshot
    (snapshot_date, client_id, tier, score, rank, window_days, computed_at)
SELECT $1, c.client_id, c.tier, c.score, c.rank, $5, now()
FROM unnest($2::text[], $3::text[], $4::float8[], $6::int4[])
     AS c (client_id, tier, score, rank)";

/// Every client's score over the window ending at `now`, ranked and tiered.
pub async fn score_clients(
    client: &Client,
    config: &SegmentsConfig,
    now: DateTime<Utc>,
) -> Result<Vec<Ranked>, tokio_postgres::Error> {
    let start = now - chrono::Duration::days(i64::from(config.window_days));
    let scores: Vec<(String, f64)> = client
        .query(CLIENT_SCORES, &[&start, &now])
        .await?
        .iter()
        .map(|row| {
            let score: f64 = match config.score {
                ScoreKind::Events => row.get(1),
                ScoreKind::ValueSum => row.get(2),
            };
            (row.get(0), score)
        })
        .collect();
    Ok(tiers::assign(scores, config.thresholds))
}

/// Replaces the day of `now` (in `segments.timezone`) with `ranked`, in one
/// transaction.
pub async fn replace_day(
    client: &mut Client,
    config: &SegmentsConfig,
    now: DateTime<Utc>,
    ranked: &[Ranked],
) -> Result<SnapshotSummary, tokio_postgres::Error> {
    // Validated at start-up; UTC is the documented default.
    let tz = config.tz().unwrap_or(chrono_tz::UTC);
    let date = now.with_timezone(&tz).date_naive();
    let summary = summarize(date, ranked);

    let ids: Vec<&str> = ranked.iter().map(|r| r.client_id.as_str()).collect();
    let tier_names: Vec<&str> = ranked.iter().map(|r| r.tier.as_str()).collect();
    let score_values: Vec<f64> = ranked.iter().map(|r| r.score).collect();
    let ranks: Vec<i32> = ranked.iter().map(|r| r.rank).collect();
    let window_days = config.window_days as i32;
    let tx = client.transaction().await?;
    tx.execute(DELETE_DAY, &[&date]).await?;
    tx.execute(
        INSERT_DAY,
        &[
            &date,
            &ids,
            &tier_names,
            &score_values,
            &window_days,
            &ranks,
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(summary)
}

fn summarize(date: NaiveDate, ranked: &[Ranked]) -> SnapshotSummary {
    let count = |tier: Tier| ranked.iter().filter(|r| r.tier == tier).count();
    SnapshotSummary {
        date,
        clients: ranked.len(),
        top: count(Tier::Top),
        mid: count(Tier::Mid),
        micro: count(Tier::Micro),
    }
}
