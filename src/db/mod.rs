//! Database access: the connection pool, migrations, the embedded cluster and
//! its supervisor.

pub mod embedded;
pub mod migrate;
pub mod supervise;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

/// Builds the pool. No connection is made until first use, so the daemon can start
/// (and answer `/readyz` 503) while the database is still unreachable.
pub fn build_pool(database_url: &str, max_size: usize) -> Result<Pool, tokio_postgres::Error> {
    build_pool_with(database_url, max_size, None)
}

/// The pool the ping writers use: their one statement always gets the generic plan.
/// Planning it anew for every batch (PostgreSQL's choice for a statement with array
/// parameters) cost more than executing it. Every access in that statement is by
/// key, so sequential scans are off: a generic plan made while the ping table was
/// small (a fresh install) would otherwise keep scanning it as it grows. A separate
/// pool because both settings are per session and the other statements are better
/// off with custom plans.
pub fn build_ping_pool(database_url: &str, max_size: usize) -> Result<Pool, tokio_postgres::Error> {
    build_pool_with(
        database_url,
        max_size,
        Some("-c plan_cache_mode=force_generic_plan -c enable_seqscan=off"),
    )
}

fn build_pool_with(
    database_url: &str,
    max_size: usize,
    options: Option<&str>,
) -> Result<Pool, tokio_postgres::Error> {
    let mut pg: tokio_postgres::Config = database_url.parse()?;
    if let Some(extra) = options {
        let joined = match pg.get_options() {
            Some(given) => format!("{given} {extra}"),
            None => extra.to_string(),
        };
        pg.options(joined);
    }
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

/// What went wrong reaching or asking PostgreSQL, in words a user can act on:
/// the server's own message and SQLSTATE code when it answered (`database "x"
/// does not exist`, `password authentication failed for user "y"`), else the
/// failure with the server it tried (`Connection refused ... (server
/// 127.0.0.1:5432)`). The driver's own text is only "db error" for the first.
pub fn explain(e: &tokio_postgres::Error, database_url: &str) -> String {
    if let Some(db) = e.as_db_error() {
        let mut out = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(hint) = db.hint() {
            out += &format!("; hint: {hint}");
        }
        return out;
    }
    format!("{} (server {})", with_causes(e), server_of(database_url))
}

/// An error's text followed by each cause's, since the driver's own text often
/// leaves out the useful part ("error connecting to server").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out += &format!(": {text}");
        }
        source = cause.source();
    }
    out
}

/// [`explain`] for a pool checkout: the connection's own error, or the pool's.
pub fn explain_pool(e: &deadpool_postgres::PoolError, database_url: &str) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => explain(e, database_url),
        other => format!(
            "{} (server {})",
            with_causes(other),
            server_of(database_url)
        ),
    }
}

/// `host:port` (or the socket directory) a connection string names.
fn server_of(database_url: &str) -> String {
    let Ok(config) = database_url.parse::<tokio_postgres::Config>() else {
        return "unknown".into();
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(h) => format!("{h}:{port}"),
            tokio_postgres::config::Host::Unix(p) => format!("{}:{port}", p.display()),
        })
        .collect();
    if hosts.is_empty() {
        format!("localhost:{port}")
    } else {
        hosts.join(", ")
    }
}
