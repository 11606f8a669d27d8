//! The `maintenance` lane's work: one phase per retained table, each deleting
//! in batches what the [`Policy`] says is past retention.
//!
//! Deletes run outside a transaction (each batch commits on its own), so this
//! body takes no fence: running it twice is harmless, the lane lock keeps it
//! single-flight, and a cancel between batches keeps what was already deleted.

use futures::future::BoxFuture;
use serde_json::json;

use super::{purge, Policy};
use crate::clock::SharedClock;
use crate::jobs::{JobBody, JobContext, JobError};

/// Retention, as a job body.
pub struct MaintenanceBody {
    policy: Policy,
    clock: SharedClock,
}

impl MaintenanceBody {
    pub fn new(policy: Policy) -> Self {
        Self {
            policy,
            clock: crate::clock::system(),
        }
    }

    /// The same body reading time from `clock` (tests move time with it).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }
}

impl JobBody for MaintenanceBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<serde_json::Value, JobError>> {
        let policy = self.policy.clone();
        let now = self.clock.now();
        Box::pin(async move {
            let client = ctx.client().await?;
            let mut deleted = serde_json::Map::new();
            let cutoffs = policy.cutoffs(now);
            for (table, cutoff) in cutoffs {
                ctx.begin_phase(table.name, 0);
                let n = purge(&client, table, cutoff, &policy, |done| {
                    ctx.set_progress(done, 0);
                    ctx.is_cancelled()
                })
                .await?;
                ctx.check()?;
                ctx.set_phase_detail(json!({"deleted": n, "cutoff": cutoff}));
                if n > 0 {
                    tracing::info!(table = table.name, deleted = n, %cutoff, "retention");
                }
                deleted.insert(table.name.to_string(), n.into());
            }
            Ok(json!({ "deleted": deleted, "at": now }))
        })
    }
}
