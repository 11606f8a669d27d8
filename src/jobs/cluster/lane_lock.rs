//! The lane lock: `pg_try_advisory_lock` on a connection of its own.
//!
//! Why not a pooled connection: a session lock stays with the connection when it
//! goes back to the pool, and advisory locks are re-entrant, so the next borrower
//! would silently "hold" the lane too.
//!
//! The fence: a node that loses its lock connection keeps running its body until
//! its watch notices. So job transactions take a shared advisory lock on the lane's
//! fence key and check that their node still holds the lane lock; a new owner waits
//! on the fence key exclusively before it starts, i.e. until every transaction of
//! the previous owner has committed or rolled back. Work of two owners never
//! interleaves.

use std::time::Duration;

use tokio_postgres::{Client, GenericClient};

use crate::jobs::JobKind;

/// Lane lock keys: "hblane" + lane index; fence keys: "hbfenc" + lane index.
const LANE_KEY_BASE: i64 = 0x6862_6c61_6e65_0000;
const FENCE_KEY_BASE: i64 = 0x6862_6665_6e63_0000;

/// How often a running job checks its lock connection.
pub const WATCH_EVERY: Duration = Duration::from_secs(1);

pub fn lane_key(kind: JobKind) -> i64 {
    LANE_KEY_BASE + kind.index() as i64
}

pub fn fence_key(kind: JobKind) -> i64 {
    FENCE_KEY_BASE + kind.index() as i64
}

/// SQL that is true while the lane's lock (key `$1`) is held by anyone. Advisory
/// locks are per database, and pg_locks shows every database's.
pub const LOCK_HELD: &str = "EXISTS (SELECT 1 FROM pg_locks
    WHERE locktype = 'advisory' AND granted AND objsubid = 1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND classid::bigint = ($1::bigint >> 32) AND objid::bigint = ($1::bigint & 4294967295))";

/// A held lane lock. Dropping it closes the connection, which releases the lock.
pub struct LaneLock {
    client: Client,
    /// Cancelled the moment the connection's driver task ends (server closed it).
    closed: tokio_util::sync::CancellationToken,
    kind: JobKind,
    /// The lock connection's backend pid, for the fence's ownership check.
    backend_pid: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lane lock connection: {0}")]
    Db(#[from] tokio_postgres::Error),
}

impl LaneLock {
    /// Tries to take the lane; None when another node (or this one) holds it.
    pub async fn try_acquire(
        database_url: &str,
        kind: JobKind,
        node: &str,
    ) -> Result<Option<LaneLock>, LockError> {
        let mut cfg: tokio_postgres::Config = database_url.parse()?;
        cfg.application_name(format!("heartbeat-lane-lock:{kind}:{node}"));
        cfg.connect_timeout(Duration::from_secs(5));
        let (client, connection) = cfg.connect(tokio_postgres::NoTls).await?;
        let closed = tokio_util::sync::CancellationToken::new();
        let on_close = closed.clone();
        tokio::spawn(async move {
            let _ = connection.await;
            on_close.cancel();
        });
        let row = client
            .query_one(
                "SELECT pg_try_advisory_lock($1), pg_backend_pid()",
                &[&lane_key(kind)],
            )
            .await?;
        if !row.get::<_, bool>(0) {
            return Ok(None);
        }
        // Wait out the previous owner's in-flight fenced transactions.
        client
            .execute("SELECT pg_advisory_lock($1)", &[&fence_key(kind)])
            .await?;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&fence_key(kind)])
            .await?;
        Ok(Some(LaneLock {
            client,
            closed,
            kind,
            backend_pid: row.get(1),
        }))
    }

    pub fn kind(&self) -> JobKind {
        self.kind
    }

    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// Resolves when the lock connection is gone (terminated, network, server
    /// restart): from then on another node may hold the lane.
    pub async fn lost(&self) {
        let ping = async {
            loop {
                tokio::time::sleep(WATCH_EVERY).await;
                let alive = tokio::time::timeout(WATCH_EVERY, self.client.simple_query("SELECT 1"))
                    .await
                    .is_ok_and(|r| r.is_ok());
                if !alive || self.client.is_closed() {
                    return;
                }
            }
        };
        tokio::select! {
            _ = self.closed.cancelled() => {}
            _ = ping => {}
        }
    }

    /// Releases the lock explicitly (dropping does too, by closing the connection).
    pub async fn release(self) {
        let _ = self
            .client
            .execute("SELECT pg_advisory_unlock($1)", &[&lane_key(self.kind)])
            .await;
    }
}

/// Inside a job's transaction: takes the lane's fence (shared) and checks that the
/// lock connection `backend_pid` still holds the lane. Fails when it does not.
pub async fn enter_fence(
    tx: &impl GenericClient,
    kind: JobKind,
    backend_pid: i32,
) -> Result<bool, tokio_postgres::Error> {
    tx.execute(
        "SELECT pg_advisory_xact_lock_shared($1)",
        &[&fence_key(kind)],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_locks
                WHERE locktype = 'advisory' AND granted AND objsubid = 1 AND pid = $2
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND classid::bigint = ($1::bigint >> 32)
                  AND objid::bigint = ($1::bigint & 4294967295))",
            &[&lane_key(kind), &backend_pid],
        )
        .await?;
    Ok(row.get(0))
}
