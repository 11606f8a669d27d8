//! Cheap size readings for `/metrics`: each table's estimated row count (the
//! planner's `pg_class.reltuples`, kept current by autovacuum and ANALYZE, so
//! reading it costs nothing however big the table) and this process's resident
//! memory. They make "the database is growing" and "memory is growing" visible
//! before they hurt (docs/operations/database-growing.md).

use deadpool_postgres::Pool;

/// Every table of the `heartbeat` schema with its estimated rows. A table never
/// analyzed yet (`reltuples` -1 on PostgreSQL 14+) reads 0.
const TABLE_ROWS: &str = "
SELECT c.relname, greatest(c.reltuples, 0)::float8
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'heartbeat' AND c.relkind IN ('r', 'p')
ORDER BY c.relname";

/// Estimated rows per table; empty when the database does not answer (the
/// scrape still succeeds, the gauges keep their last values).
pub async fn estimates(pool: &Pool) -> Vec<(String, f64)> {
    let Ok(client) = pool.get().await else {
        return Vec::new();
    };
    match client.query(TABLE_ROWS, &[]).await {
        Ok(rows) => rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
        Err(_) => Vec::new(),
    }
}

/// This process's resident set size in bytes (Linux: `/proc/self/statm`).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    Some(pages * page)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_a_resident_size() {
        let rss = super::resident_bytes().expect("readable on Linux");
        assert!(rss > 1024 * 1024, "{rss}");
    }
}
