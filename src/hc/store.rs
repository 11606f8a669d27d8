//! The checks healthchecks.io's Management API reads and writes, in the
//! database: a check is a heartbeat row, found by its `ping_uuid` (or, for a
//! read-only key, by the `unique_key` derived from it) and always within the
//! caller's project. The HTTP edge (`super::api_routes`) only maps these
//! answers to healthchecks.io's.

use deadpool_postgres::Pool;
use uuid::Uuid;

use super::check::unique_key;
use crate::monitor::heartbeat::{Heartbeat, COLUMNS};

/// The database could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// A heartbeat and its ping count (`n_pings`).
#[derive(Debug)]
pub struct StoredCheck {
    pub hb: Heartbeat,
    pub n_pings: i64,
}

impl StoredCheck {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        // `ping_seq` follows the heartbeat's columns.
        let n = COLUMNS.split(',').count();
        Self {
            hb: Heartbeat::from_row(row),
            n_pings: row.get(n),
        }
    }
}

/// What a check code names, seen from one project.
#[derive(Debug)]
pub enum Lookup {
    Found(Box<StoredCheck>),
    /// No check has this code.
    NotFound,
    /// Another project's check (healthchecks.io answers 403).
    OtherProject,
}

/// The project's checks, oldest first.
pub async fn list(pool: &Pool, project_id: Uuid) -> Result<Vec<StoredCheck>, StoreError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT {COLUMNS}, ping_seq FROM heartbeat.heartbeat WHERE project_id = $1 \
         ORDER BY created_at, heartbeat_id"
    );
    let rows = client.query(&sql, &[&project_id]).await?;
    Ok(rows.iter().map(StoredCheck::from_row).collect())
}

/// The check whose UUID is `code`, or (when `by_unique_key`) whose
/// `unique_key` is `code`, as `project_id` may see it.
pub async fn find(
    pool: &Pool,
    project_id: Uuid,
    code: &str,
    by_unique_key: bool,
) -> Result<Lookup, StoreError> {
    let client = pool.get().await?;
    let found = match Uuid::try_parse(code) {
        Ok(uuid) => {
            let sql =
                format!("SELECT {COLUMNS}, ping_seq FROM heartbeat.heartbeat WHERE ping_uuid = $1");
            client
                .query_opt(&sql, &[&uuid])
                .await?
                .map(|r| StoredCheck::from_row(&r))
        }
        Err(_) if by_unique_key => {
            // A unique_key is a digest: it is found among the project's checks.
            let sql = format!(
                "SELECT {COLUMNS}, ping_seq FROM heartbeat.heartbeat WHERE project_id = $1"
            );
            client
                .query(&sql, &[&project_id])
                .await?
                .iter()
                .map(StoredCheck::from_row)
                .find(|c| unique_key(c.hb.ping_uuid) == code)
        }
        Err(_) => None,
    };
    Ok(match found {
        None => Lookup::NotFound,
        Some(c) if c.hb.project_id != project_id => Lookup::OtherProject,
        Some(c) => Lookup::Found(Box::new(c)),
    })
}

/// Deletes the heartbeat (its pings and flips go with it).
pub async fn delete(pool: &Pool, heartbeat_id: Uuid) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute(
            "DELETE FROM heartbeat.heartbeat WHERE heartbeat_id = $1",
            &[&heartbeat_id],
        )
        .await?;
    Ok(())
}

/// Pausing and resuming as `PATCH /api/heartbeats` does it (the deadline loop
/// re-evaluates at once).
const SET_PAUSED: &str = "
UPDATE heartbeat.heartbeat SET
    paused = $2,
    resumed_at = CASE WHEN paused AND NOT $2 THEN now() ELSE resumed_at END,
    deadline = now()
WHERE heartbeat_id = $1";

/// Pauses or resumes the heartbeat.
pub async fn set_paused(pool: &Pool, heartbeat_id: Uuid, paused: bool) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute(SET_PAUSED, &[&heartbeat_id, &paused])
        .await?;
    Ok(())
}
