//! The ping history's ring: each heartbeat keeps its last `pings_kept` pings in
//! slots `seq % pings_kept`, and a ping overwrites its slot (docs/decisions.md
//! §21). This module keeps the stored ring the size the daemon is configured for.
//!
//! The slot of a ping depends on the ring size, so a daemon started with a
//! different `monitor.pings_kept` than the one that wrote the history first refits
//! it: pings that fall outside the new window are dropped, the rest move to their
//! new slots. Every node of a cluster must use the same `pings_kept`; a node with
//! another size refits the ring again when it starts.

use tokio_postgres::Client;

/// Makes the stored ring `size` slots per heartbeat. Runs at startup, before the
/// daemon reports ready, in one transaction holding an exclusive lock on the ping
/// table, so no ping lands while slots move. (A ping written between the
/// migration and the fit uses the new slot and may overwrite one old ping still
/// inside the new window.) Returns whether anything had to change.
pub async fn fit(client: &mut Client, size: i64) -> Result<bool, tokio_postgres::Error> {
    const STORED: &str = "SELECT size FROM heartbeat.ping_ring";
    // The usual start: the ring already has this size; no lock, so a rolling
    // restart does not pause the other nodes' pings.
    let stored: Option<i32> = client.query_opt(STORED, &[]).await?.map(|r| r.get(0));
    if stored.map(i64::from) == Some(size) {
        return Ok(false);
    }
    let tx = client.transaction().await?;
    tx.batch_execute("LOCK TABLE heartbeat.ping IN EXCLUSIVE MODE")
        .await?;
    let stored: Option<i32> = tx.query_opt(STORED, &[]).await?.map(|r| r.get(0));
    if stored.map(i64::from) == Some(size) {
        tx.commit().await?;
        return Ok(false);
    }
    // Out of the window of the newest `size` pings.
    tx.execute(
        "DELETE FROM heartbeat.ping p USING heartbeat.heartbeat h
         WHERE p.heartbeat_id = h.heartbeat_id AND p.seq <= h.ping_seq - $1",
        &[&size],
    )
    .await?;
    // Two steps, because each row's unique key is checked as it is written: first
    // every misplaced ping to a negative slot (-(seq + 1): distinct, and clear of
    // every real slot), then to its place. The pings left are consecutive in `seq`,
    // so their places `seq % size` are distinct.
    tx.execute(
        "UPDATE heartbeat.ping SET slot = -(seq + 1) WHERE slot >= 0 AND slot <> seq % $1",
        &[&size],
    )
    .await?;
    tx.execute(
        "UPDATE heartbeat.ping SET slot = seq % $1 WHERE slot < 0",
        &[&size],
    )
    .await?;
    let size32 = i32::try_from(size).unwrap_or(i32::MAX);
    tx.execute(
        "INSERT INTO heartbeat.ping_ring (size) VALUES ($1)
         ON CONFLICT (one) DO UPDATE SET size = excluded.size",
        &[&size32],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
