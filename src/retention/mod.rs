//! Retention: deletes the rows that grow with time once nothing reads them any
//! more, so the database stays the same size after a year as after a month.
//!
//! - [`config`]: the `[retention]` section.
//! - [`Policy`]: each table's cutoff at a given time, from the config.
//! - [`purge`]: one table's deletes, in bounded batches.
//! - [`body`]: the `maintenance` lane's body, one phase per table.
//!
//! Every delete is its own statement of at most `retention.batch_rows` rows, in
//! autocommit: a backlog of millions takes many short transactions, never one long
//! lock, and a cancelled job keeps what it already deleted.

pub mod body;
pub mod config;

use chrono::{DateTime, Duration, Utc};
use tokio_postgres::types::ToSql;

pub use body::MaintenanceBody;
pub use config::RetentionConfig;

/// One retained table: its phase name and the delete of one batch. Each statement
/// takes `$1` (the cutoff) and `$2` (the batch size); ctid picks the batch's rows
/// without needing a key per table.
pub struct Table {
    pub name: &'static str,
    sql: &'static str,
    /// The statement also takes `$3`: the newest rows kept per heartbeat.
    keeps_newest: bool,
}

/// Delivered or given-up alerts whose last attempt is past the cutoff.
const ALERTS: Table = Table {
    name: "alerts",
    sql: "DELETE FROM heartbeat.alert WHERE ctid IN (
              SELECT ctid FROM heartbeat.alert
              WHERE state <> 'pending'
                AND greatest(created_at, coalesce(delivered_at, next_attempt_at)) < $1
              LIMIT $2)",
    keeps_newest: false,
};

/// Flips past the cutoff, except each heartbeat's newest `$3` and any whose alert
/// is still pending (deleting a flip cascades to its alerts).
const FLIPS: Table = Table {
    name: "flips",
    sql: "DELETE FROM heartbeat.flip WHERE flip_id IN (
              SELECT f.flip_id FROM (
                  SELECT flip_id, at,
                         row_number() OVER (PARTITION BY heartbeat_id ORDER BY flip_id DESC) AS newer
                  FROM heartbeat.flip) f
              WHERE f.at < $1 AND f.newer > $3
                AND NOT EXISTS (SELECT 1 FROM heartbeat.alert a
                                WHERE a.flip_id = f.flip_id AND a.state = 'pending')
              LIMIT $2)",
    keeps_newest: true,
};

/// Tick claims older than any catch-up can look back.
const TICK_CLAIMS: Table = Table {
    name: "tick_claims",
    sql: "DELETE FROM heartbeat.tick_claim WHERE ctid IN (
              SELECT ctid FROM heartbeat.tick_claim WHERE scheduled_at < $1 LIMIT $2)",
    keeps_newest: false,
};

/// Ingested events older than any compute or benchmark reads.
const EVENTS: Table = Table {
    name: "events",
    sql: "DELETE FROM heartbeat.event WHERE ctid IN (
              SELECT ctid FROM heartbeat.event WHERE occurred_at < $1 LIMIT $2)",
    keeps_newest: false,
};

/// Client tier snapshots of days before the cutoff's (UTC) day.
const SEGMENT_SNAPSHOTS: Table = Table {
    name: "segment_snapshots",
    sql: "DELETE FROM heartbeat.client_segment_snapshot WHERE ctid IN (
              SELECT ctid FROM heartbeat.client_segment_snapshot
              WHERE snapshot_date < ($1::timestamptz AT TIME ZONE 'UTC')::date LIMIT $2)",
    keeps_newest: false,
};

/// Audit snapshots not recomputed since the cutoff.
const AUDIT_SNAPSHOTS: Table = Table {
    name: "audit_snapshots",
    sql: "DELETE FROM heartbeat.audit_cut_snapshot WHERE ctid IN (
              SELECT ctid FROM heartbeat.audit_cut_snapshot WHERE computed_at < $1 LIMIT $2)",
    keeps_newest: false,
};

/// One-off silences that ended before the cutoff (recurring ones stay until
/// removed: they never end).
const SILENCES: Table = Table {
    name: "silences",
    sql: "DELETE FROM heartbeat.silence WHERE ctid IN (
              SELECT ctid FROM heartbeat.silence WHERE until < $1 LIMIT $2)",
    keeps_newest: false,
};

/// The cutoffs the config implies. Built once per daemon; [`Policy::cutoffs`]
/// places them at a given time.
#[derive(Debug, Clone)]
pub struct Policy {
    pub config: RetentionConfig,
    /// How long a tick claim may still be looked at: the cron table's longest
    /// catch-up window (at least a day, so claims of a short-lived entry with
    /// catch-up off are still kept while anyone could ask about them).
    pub tick_claims_kept: Duration,
    /// How far back events are read: `refresh.history_days` plus the benchmark window.
    pub events_kept: Duration,
}

/// Least time tick claims are kept.
const MIN_TICK_CLAIMS_KEPT: Duration = Duration::days(1);

impl Policy {
    pub fn from_config(config: &crate::config::Config) -> Self {
        let longest_catch_up = config
            .schedule
            .table()
            .ok()
            .and_then(|t| t.entries.iter().map(|e| e.catch_up_window).max())
            .unwrap_or(crate::schedule::table::DAILY_CATCH_UP);
        Self {
            config: config.retention.clone(),
            tick_claims_kept: longest_catch_up.max(MIN_TICK_CLAIMS_KEPT),
            events_kept: Duration::days(
                i64::from(config.refresh.history_days)
                    + i64::from(config.refresh.benchmark_window_days),
            ),
        }
    }

    /// Every retained table with the cutoff it has at `now`, in the order the
    /// maintenance job runs them (alerts before flips: a flip's delete would
    /// cascade to its alerts and hide them from the alerts count).
    pub fn cutoffs(&self, now: DateTime<Utc>) -> Vec<(&'static Table, DateTime<Utc>)> {
        let days = |n: u32| now - Duration::days(i64::from(n));
        let c = &self.config;
        vec![
            (&ALERTS, days(c.alerts_days)),
            (&FLIPS, days(c.flips_days)),
            (&TICK_CLAIMS, now - self.tick_claims_kept),
            (&EVENTS, now - self.events_kept),
            (&SEGMENT_SNAPSHOTS, days(c.segment_snapshots_days)),
            (&AUDIT_SNAPSHOTS, days(c.audit_snapshots_days)),
            (&SILENCES, days(c.silences_days)),
        ]
    }
}

/// Deletes `table`'s rows past `cutoff`, `batch` rows per statement, until a
/// statement deletes fewer than a batch or `stop` says so between batches.
/// Returns how many rows went.
pub async fn purge(
    client: &deadpool_postgres::Client,
    table: &Table,
    cutoff: DateTime<Utc>,
    policy: &Policy,
    mut stop: impl FnMut(u64) -> bool,
) -> Result<u64, tokio_postgres::Error> {
    let batch = i64::from(policy.config.batch_rows.max(1));
    let keep = i64::from(policy.config.flips_keep_per_heartbeat);
    let statement = client.prepare_cached(table.sql).await?;
    let params: Vec<&(dyn ToSql + Sync)> = if table.keeps_newest {
        vec![&cutoff, &batch, &keep]
    } else {
        vec![&cutoff, &batch]
    };
    let mut deleted = 0;
    loop {
        let n = client.execute(&statement, &params).await?;
        deleted += n;
        if n < batch as u64 || stop(deleted) {
            return Ok(deleted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoffs_follow_the_config_the_cron_table_and_the_refresh_horizon() {
        let config = crate::config::Config::from_toml(
            "[retention]\nflips_days = 10\nalerts_days = 3\n\
             [refresh]\nhistory_days = 100\nbenchmark_window_days = 7\n\
             [schedule.entries.recompute]\ncatch_up_window = \"3d\"",
        )
        .unwrap();
        let policy = Policy::from_config(&config);
        let now: DateTime<Utc> = "2026-06-01T00:00:00Z".parse().unwrap();
        let cut: std::collections::BTreeMap<_, _> = policy
            .cutoffs(now)
            .into_iter()
            .map(|(t, at)| (t.name, now - at))
            .collect();
        assert_eq!(cut["alerts"], Duration::days(3));
        assert_eq!(cut["flips"], Duration::days(10));
        assert_eq!(cut["tick_claims"], Duration::days(3), "the longest window");
        assert_eq!(cut["events"], Duration::days(107));
        assert_eq!(cut["segment_snapshots"], Duration::days(400));
        assert_eq!(cut["audit_snapshots"], Duration::days(30));
        assert_eq!(cut["silences"], Duration::days(30));
    }

    #[test]
    fn a_zero_retention_is_refused_by_name() {
        let c = crate::config::Config::from_toml("[retention]\nbatch_rows = 0").unwrap();
        assert_eq!(c.validate().unwrap_err().field, "retention.batch_rows");
    }
}
