//! The probe body: proves lane exclusivity end to end.
//!
//! It opens a transaction, enters the lane's fence, holds it for a configured time
//! and records `[started_at, finished_at]` in `heartbeat.job_probe` before
//! committing. Two probes of one lane must never overlap, whichever nodes ran them.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;

use super::body::{JobBody, JobContext, JobError};

pub struct ProbeBody {
    hold: Duration,
}

impl ProbeBody {
    pub fn new(hold_ms: u64) -> Self {
        Self {
            hold: Duration::from_millis(hold_ms),
        }
    }
}

impl JobBody for ProbeBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<serde_json::Value, JobError>> {
        let hold = self.hold;
        Box::pin(async move {
            ctx.begin_phase("probe", 1);
            let mut client = ctx.client().await?;
            let tx = client.transaction().await?;
            ctx.enter_fence(&*tx).await?;
            let started: chrono::DateTime<chrono::Utc> =
                tx.query_one("SELECT clock_timestamp()", &[]).await?.get(0);
            tokio::select! {
                _ = tokio::time::sleep(hold) => {}
                _ = ctx.cancel_token().cancelled() => return Err(JobError::Cancelled),
            }
            let kind = {
                let live = ctx.record.lock().unwrap();
                (live.job.kind.as_str(), live.job.node.clone())
            };
            tx.execute(
                "INSERT INTO heartbeat.job_probe (job_id, lane, node, started_at, finished_at)
                 VALUES ($1, $2, $3, $4, clock_timestamp())",
                &[&ctx.job_id(), &kind.0, &kind.1, &started],
            )
            .await?;
            tx.commit().await?;
            ctx.advance();
            Ok(json!({"held_ms": hold.as_millis() as u64}))
        })
    }
}
