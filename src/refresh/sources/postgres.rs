//! `postgres` source: a query against another database, resumed by a watermark.
//!
//! The query receives the watermark as `$1` (`timestamptz`; the Unix epoch on the
//! first run unless `initial_watermark` is set: 1970-01-01) and returns the columns
//! `event_id text, occurred_at timestamptz, client_id text, name text, value
//! float8`, ordered by `occurred_at`. The new watermark is the last row's
//! `occurred_at`. Write the filter as `occurred_at >= $1`: rows at the boundary are
//! read again and change nothing (events are keyed by id), while rows committed
//! late at the boundary instant are not missed.
//!
//! Rows stream from the other database and are written in pages of `batch_size`,
//! each page with its watermark in one transaction.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{pin_mut, TryStreamExt};
use serde::Deserialize;

use super::{insert_page, load_cursor, Event, SourceError, SourceReport};
use crate::config::error::ConfigError;
use crate::jobs::{JobContext, JobError};

/// `kind = "postgres"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    pub name: String,
    /// Connection string of the other database.
    pub dsn: String,
    /// The query; `$1` is the watermark (see the module docs).
    pub query: String,
    /// Watermark for the very first run (RFC 3339); unset reads everything.
    #[serde(default)]
    pub initial_watermark: Option<DateTime<Utc>>,
    /// Rows per transaction.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Server-side limit for the query, seconds.
    #[serde(default = "default_statement_timeout")]
    pub statement_timeout_secs: u64,
}

fn default_batch_size() -> usize {
    5000
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_statement_timeout() -> u64 {
    300
}

impl PostgresConfig {
    pub(super) fn validate(&self, field: &str) -> Result<(), ConfigError> {
        self.dsn
            .parse::<tokio_postgres::Config>()
            .map_err(|e| ConfigError::new(format!("{field}.dsn"), e.to_string()))?;
        if !self.query.contains("$1") {
            return Err(ConfigError::new(
                format!("{field}.query"),
                "must use $1, the watermark",
            ));
        }
        if self.batch_size == 0 {
            return Err(ConfigError::new(
                format!("{field}.batch_size"),
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

pub(super) async fn ingest(
    ctx: &JobContext,
    config: &PostgresConfig,
    report: &mut SourceReport,
) -> Result<(), SourceError> {
    let stored = {
        let client = ctx.client().await?;
        load_cursor(&**client, &config.name).await?
    };
    report.cursor = stored.clone();
    let watermark: DateTime<Utc> = match stored {
        Some(text) => DateTime::parse_from_rfc3339(&text)
            .map_err(|e| SourceError::Failed(format!("stored watermark '{text}': {e}")))?
            .with_timezone(&Utc),
        None => config
            .initial_watermark
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH),
    };

    let mut pg: tokio_postgres::Config = config
        .dsn
        .parse()
        .map_err(|e| SourceError::Failed(format!("dsn: {e}")))?;
    pg.connect_timeout(Duration::from_secs(config.connect_timeout_secs));
    pg.application_name("heartbeat-ingest");
    let (remote, connection) = pg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| SourceError::Failed(format!("connect: {e}")))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let remote_cancel = remote.cancel_token();
    let work = async {
        remote
            .batch_execute(&format!(
                "SET statement_timeout = {}",
                config.statement_timeout_secs * 1000
            ))
            .await
            .map_err(|e| SourceError::Failed(format!("query: {e}")))?;
        let rows = remote
            .query_raw(config.query.as_str(), [&watermark])
            .await
            .map_err(|e| SourceError::Failed(format!("query: {e}")))?;
        pin_mut!(rows);
        let mut page: Vec<Event> = Vec::with_capacity(config.batch_size);
        loop {
            let row = rows
                .try_next()
                .await
                .map_err(|e| SourceError::Failed(format!("query: {e}")))?;
            let done = row.is_none();
            if let Some(row) = row {
                page.push(to_event(&row)?);
            }
            if page.len() >= config.batch_size || (done && !page.is_empty()) {
                ctx.check()?;
                let cursor = page
                    .last()
                    .map(|e| e.occurred_at.to_rfc3339())
                    .unwrap_or_default();
                report.rows_inserted += insert_page(ctx, &config.name, &page, &cursor).await?;
                report.pages += 1;
                report.cursor = Some(cursor);
                page.clear();
            }
            if done {
                return Ok(());
            }
        }
    };
    tokio::select! {
        r = work => r,
        _ = ctx.cancel_token().cancelled() => {
            let _ = remote_cancel.cancel_query(tokio_postgres::NoTls).await;
            Err(JobError::Cancelled.into())
        }
    }
}

fn to_event(row: &tokio_postgres::Row) -> Result<Event, SourceError> {
    let bad = |e: tokio_postgres::Error| {
        SourceError::Failed(format!(
            "the query must return event_id text, occurred_at timestamptz, client_id text, name text, value float8: {e}"
        ))
    };
    Ok(Event {
        event_id: row.try_get("event_id").map_err(bad)?,
        occurred_at: row.try_get("occurred_at").map_err(bad)?,
        client_id: row.try_get("client_id").map_err(bad)?,
        name: row.try_get("name").map_err(bad)?,
        value: row.try_get("value").map_err(bad)?,
    })
}
