//! The once-only tick claim: every node fires every tick, and the row
//! `(lane, scheduled_at)` in `heartbeat.tick_claim` lets exactly one of them hand
//! it to the jobs engine, across clock skew and restarts (docs/operations/cluster.md).

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;

use crate::jobs::JobKind;

/// Claims the tick `(lane, scheduled_at)`; true for exactly one node.
pub async fn claim_tick(
    db: &impl GenericClient,
    kind: JobKind,
    scheduled_at: DateTime<Utc>,
    node: &str,
) -> Result<bool, tokio_postgres::Error> {
    let n = db
        .execute(
            "INSERT INTO heartbeat.tick_claim (lane, scheduled_at, node) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&kind.as_str(), &scheduled_at, &node],
        )
        .await?;
    Ok(n == 1)
}
