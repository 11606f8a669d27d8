//! The `[retention]` configuration section, in a file of its own so the
//! whole-daemon [`Config`](crate::config::Config) can hold it without importing
//! the retention module (whose job body imports the jobs engine).

use serde::Deserialize;

use crate::config::error::ConfigError;

/// `[retention]`: how long rows that grow with time are kept. The `maintenance`
/// job deletes what is past these (docs/configuration.md, "Retention").
///
/// Two tables are bounded without a key here: `tick_claim` rows go once older
/// than the longest catch-up window in the cron table (no catch-up can ask for
/// them again), and ingested events once older than `refresh.history_days` plus
/// `refresh.benchmark_window_days` (no compute or benchmark reads them again).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Status changes older than this many days are deleted, except each
    /// heartbeat's newest `flips_keep_per_heartbeat` and any with an alert still
    /// pending.
    pub flips_days: u32,
    /// Newest flips kept per heartbeat whatever their age, so a heartbeat quiet
    /// for a year still shows its last changes.
    pub flips_keep_per_heartbeat: u32,
    /// Delivered or given-up alerts (the delivery attempts' record) are deleted
    /// this many days after their last attempt. Pending alerts are never deleted.
    pub alerts_days: u32,
    /// Client tier snapshots older than this many days are deleted.
    pub segment_snapshots_days: u32,
    /// Audit snapshots not recomputed for this many days (a window removed from
    /// its cut file, a cut whose job keeps failing) are deleted.
    pub audit_snapshots_days: u32,
    /// One-off silences are deleted this many days after they ended; recurring
    /// ones are kept until removed.
    pub silences_days: u32,
    /// Rows deleted per statement: each batch is its own short transaction, so a
    /// big backlog never holds a long lock or a long-running transaction.
    pub batch_rows: u32,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            flips_days: 90,
            flips_keep_per_heartbeat: 100,
            alerts_days: 30,
            segment_snapshots_days: 400,
            audit_snapshots_days: 30,
            silences_days: 30,
            batch_rows: 5000,
        }
    }
}

impl RetentionConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("retention.flips_days", self.flips_days),
            ("retention.alerts_days", self.alerts_days),
            (
                "retention.segment_snapshots_days",
                self.segment_snapshots_days,
            ),
            ("retention.audit_snapshots_days", self.audit_snapshots_days),
            ("retention.silences_days", self.silences_days),
            ("retention.batch_rows", self.batch_rows),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ConfigError::new(field, "must be at least 1"));
            }
        }
        Ok(())
    }
}
