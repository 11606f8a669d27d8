//! Versioned schema migrations from `sql/migrations/`, compiled into the binary.
//!
//! Each file is applied once, in version order, inside its own transaction, and
//! recorded in `heartbeat.schema_migrations`. A transaction-scoped advisory lock
//! serializes runners, so two daemons starting together do not race: the second
//! waits, then finds nothing left to do.

use tokio_postgres::Client;

/// One migration file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($version:expr, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../sql/migrations/", $name, ".sql")),
        }
    };
}

/// Every migration, in order. Add new files here.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_foundation"),
    migration!(2, "0002_schedule"),
    migration!(3, "0003_monitor"),
    migration!(4, "0004_metrics"),
    migration!(5, "0005_segments_audit"),
    migration!(6, "0006_cluster"),
    migration!(7, "0007_ping_path"),
    migration!(8, "0008_ping_ring"),
    migration!(9, "0009_schedule_pause"),
    migration!(10, "0010_notify"),
    migration!(11, "0011_thresholds"),
    migration!(12, "0012_tags"),
    migration!(13, "0013_hc_compat"),
    migration!(14, "0014_hc_check_fields"),
    migration!(16, "0016_detection_rules"),
    migration!(17, "0017_hc_unify_badges"),
    migration!(18, "0018_job_events"),
    migration!(19, "0019_digest"),
    migration!(20, "0020_ping_scheme_method"),
    migration!(21, "0021_detection_followups"),
    migration!(22, "0022_outbox_claim"),
    migration!(23, "0023_hc_methods"),
];

/// The advisory lock key that serializes migration runners ("hbmigrat").
const MIGRATION_LOCK: i64 = 0x6862_6d69_6772_6174;

/// The version the schema must be at for this binary.
pub fn latest_version() -> i32 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Applies every pending migration; returns the versions applied.
pub async fn run(client: &mut Client) -> Result<Vec<i32>, tokio_postgres::Error> {
    let mut applied_now = Vec::new();
    let mut tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // `IF NOT EXISTS` on an existing schema or table raises a NOTICE, which the
    // driver logs: a repeated migrate would print one line per object for nothing
    // being wrong. Transaction-local, so the session keeps its setting.
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning;
         CREATE SCHEMA IF NOT EXISTS heartbeat;
         CREATE TABLE IF NOT EXISTS heartbeat.schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await?;
    let done: Vec<i32> = tx
        .query("SELECT version FROM heartbeat.schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut pending: Vec<&Migration> = MIGRATIONS
        .iter()
        .filter(|m| !done.contains(&m.version))
        .collect();
    pending.sort_by_key(|m| m.version);
    for m in pending {
        // A savepoint per file keeps each migration atomic while the whole run
        // stays under the one advisory lock.
        let sp = tx.savepoint(format!("m{}", m.version)).await?;
        sp.batch_execute(m.sql).await?;
        sp.execute(
            "INSERT INTO heartbeat.schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await?;
        sp.commit().await?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        applied_now.push(m.version);
    }
    tx.commit().await?;
    Ok(applied_now)
}

/// The versions this binary knows that are not applied yet, or None when the
/// schema is not there at all. Versions are checked one by one, not as a maximum:
/// they need not be applied in one sequence.
pub async fn pending_versions(client: &Client) -> Result<Option<Vec<i32>>, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('heartbeat.schema_migrations') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let applied: Vec<i32> = client
        .query("SELECT version FROM heartbeat.schema_migrations", &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Some(
        MIGRATIONS
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_unique_and_match_file_names() {
        let mut seen = std::collections::HashSet::new();
        for m in MIGRATIONS {
            assert!(seen.insert(m.version), "duplicate version {}", m.version);
            let prefix: i32 = m.name[..4].parse().unwrap();
            assert_eq!(prefix, m.version, "{}", m.name);
        }
    }
}
