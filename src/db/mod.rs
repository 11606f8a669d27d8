//! Database access: the connection pool, migrations and the embedded cluster.

pub mod embedded;
pub mod migrate;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// Builds the pool. No connection is made until first use, so the daemon can start
/// (and answer `/readyz` 503) while the database is still unreachable.
pub fn build_pool(database_url: &str, max_size: usize) -> Result<Pool, tokio_postgres::Error> {
    let mut pg: tokio_postgres::Config = database_url.parse()?;
    if pg.get_application_name().is_none() {
        pg.application_name("heartbeat");
    }
    pg.connect_timeout(std::time::Duration::from_secs(5));
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(std::time::Duration::from_secs(10)))
        .create_timeout(Some(std::time::Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .expect("a pool with a runtime and valid sizes always builds"))
}

/// Opens one connection outside the pool (for migrations and session locks) and
/// drives it on a background task.
pub async fn connect_direct(
    database_url: &str,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut pg: tokio_postgres::Config = database_url.parse()?;
    pg.connect_timeout(std::time::Duration::from_secs(5));
    let (client, connection) = pg.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "direct connection ended");
        }
    });
    Ok(client)
}
