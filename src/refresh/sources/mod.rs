//! Ingest sources: where events come from, declared as `[[sources]]` in the config.
//!
//! - [`http_json`]: GET a URL with a `since` cursor, paged, JSON array or NDJSON.
//! - [`postgres`]: a query against another database with a watermark parameter.
//! - [`demo`]: deterministic synthetic events for the embedded default.
//!
//! Every source writes through [`insert_page`]: one transaction inserts a page of
//! rows into `heartbeat.event` (keyed by `(source, event_id)`, so re-ingest changes
//! nothing) and advances the source's cursor, so a crash between pages loses
//! nothing and duplicates nothing.

pub mod demo;
pub mod http_json;
pub mod postgres;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::GenericClient;

use crate::config::error::ConfigError;
use crate::jobs::{JobContext, JobError};

/// One `[[sources]]` entry; `kind` selects the variant.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    HttpJson(http_json::HttpJsonConfig),
    Postgres(postgres::PostgresConfig),
    Demo(demo::DemoConfig),
}

impl SourceConfig {
    pub fn name(&self) -> &str {
        match self {
            SourceConfig::HttpJson(c) => &c.name,
            SourceConfig::Postgres(c) => &c.name,
            SourceConfig::Demo(c) => &c.name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::HttpJson(_) => "http_json",
            SourceConfig::Postgres(_) => "postgres",
            SourceConfig::Demo(_) => "demo",
        }
    }
}

/// Source names are unique and `^[a-z0-9_-]{1,64}$` (they key stored events).
pub fn validate(sources: &[SourceConfig]) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for (i, s) in sources.iter().enumerate() {
        let field = format!("sources[{i}].name");
        let name = s.name();
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(ConfigError::new(
                field,
                format!("'{name}' is not a source name (1 to 64 of a-z, 0-9, _ and -)"),
            ));
        }
        if !seen.insert(name) {
            return Err(ConfigError::new(
                field,
                format!("'{name}' is declared twice"),
            ));
        }
        match s {
            SourceConfig::HttpJson(c) => c.validate(&format!("sources[{i}]"))?,
            SourceConfig::Postgres(c) => c.validate(&format!("sources[{i}]"))?,
            SourceConfig::Demo(_) => {}
        }
    }
    Ok(())
}

/// One event as a source delivers it, before it is stored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub occurred_at: DateTime<Utc>,
    pub client_id: String,
    pub name: String,
    pub value: f64,
}

/// What one source's ingest did, shown in the job's ingest phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceReport {
    pub source: String,
    pub kind: &'static str,
    /// `ok` or `failed`.
    pub status: &'static str,
    pub pages: u64,
    pub rows_inserted: u64,
    pub cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Why a source stopped.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Job(#[from] JobError),
}

impl From<tokio_postgres::Error> for SourceError {
    /// A server-side error is the source's problem (bad data, a constraint): say
    /// what PostgreSQL said. A lost connection stays a job-level database error.
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => SourceError::Failed(format!("database: {}", db.message())),
            None => SourceError::Job(JobError::Db(e)),
        }
    }
}

const CURSOR_SQL: &str = "SELECT cursor FROM heartbeat.source_cursor WHERE source = $1";

/// The source's stored cursor, if it has ingested before.
pub async fn load_cursor(
    client: &impl GenericClient,
    source: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    Ok(client
        .query_opt(CURSOR_SQL, &[&source])
        .await?
        .and_then(|r| r.get::<_, Option<String>>(0)))
}

/// One ingest batch: every row of the page shares one number from
/// `ingest_batch_seq`, which compute uses to find buckets touched since its last run.
const INSERT_PAGE_SQL: &str = "
WITH batch AS (SELECT nextval('heartbeat.ingest_batch_seq') AS id)
INSERT INTO heartbeat.event (source, event_id, occurred_at, client_id, name, value, batch_id)
SELECT $1, e.event_id, e.occurred_at, e.client_id, e.name, e.value, batch.id
FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::float8[])
     AS e(event_id, occurred_at, client_id, name, value)
CROSS JOIN batch
ON CONFLICT (source, event_id) DO NOTHING";

pub(crate) const SAVE_CURSOR_SQL: &str = "
INSERT INTO heartbeat.source_cursor (source, cursor, updated_at, last_success_at, last_error)
VALUES ($1, $2, now(), now(), NULL)
ON CONFLICT (source) DO UPDATE
SET cursor = excluded.cursor, updated_at = now(), last_success_at = now(), last_error = NULL";

const SAVE_ERROR_SQL: &str = "
INSERT INTO heartbeat.source_cursor (source, last_error) VALUES ($1, $2)
ON CONFLICT (source) DO UPDATE SET last_error = excluded.last_error, updated_at = now()";

/// Inserts a page and advances the cursor in one transaction; returns rows new to
/// the table (re-delivered rows count zero).
pub async fn insert_page(
    ctx: &JobContext,
    source: &str,
    events: &[Event],
    cursor: &str,
) -> Result<u64, SourceError> {
    let mut client = ctx.client().await?;
    let tx = client.transaction().await?;
    ctx.enter_fence(&*tx).await?;
    let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
    let times: Vec<DateTime<Utc>> = events.iter().map(|e| e.occurred_at).collect();
    let clients: Vec<&str> = events.iter().map(|e| e.client_id.as_str()).collect();
    let names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    let values: Vec<f64> = events.iter().map(|e| e.value).collect();
    let inserted = if events.is_empty() {
        0
    } else {
        tx.execute(
            INSERT_PAGE_SQL,
            &[&source, &ids, &times, &clients, &names, &values],
        )
        .await?
    };
    tx.execute(SAVE_CURSOR_SQL, &[&source, &cursor]).await?;
    tx.commit().await?;
    Ok(inserted)
}

/// Ingests every source in turn. A failing source is recorded (in its cursor row
/// and the report) and the others still run; only cancellation stops the loop.
pub async fn ingest_all(
    ctx: &JobContext,
    sources: &[SourceConfig],
    now: DateTime<Utc>,
) -> Result<Vec<SourceReport>, JobError> {
    let mut reports: Vec<SourceReport> = Vec::new();
    for source in sources {
        ctx.check()?;
        let mut report = SourceReport {
            source: source.name().to_string(),
            kind: source.kind(),
            status: "ok",
            ..SourceReport::default()
        };
        let outcome = match source {
            SourceConfig::HttpJson(c) => http_json::ingest(ctx, c, &mut report).await,
            SourceConfig::Postgres(c) => postgres::ingest(ctx, c, &mut report).await,
            SourceConfig::Demo(c) => demo::ingest(ctx, c, now, &mut report).await,
        };
        match outcome {
            Ok(()) => {}
            Err(SourceError::Job(JobError::Cancelled)) => return Err(JobError::Cancelled),
            Err(_) if ctx.is_cancelled() => return Err(JobError::Cancelled),
            Err(e) => {
                let message = e.to_string();
                tracing::warn!(source = source.name(), error = %message, "source failed");
                if let Ok(client) = ctx.client().await {
                    let _ = client
                        .execute(SAVE_ERROR_SQL, &[&source.name(), &message])
                        .await;
                }
                report.status = "failed";
                report.error = Some(message);
            }
        }
        reports.push(report);
        ctx.advance();
        ctx.set_phase_detail(serde_json::json!({ "sources": reports }));
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn sources_and_refresh_sections_parse_from_toml() {
        let c = Config::from_toml(
            r#"
            [refresh]
            history_days = 30

            [[sources]]
            name = "shop"
            kind = "http_json"
            url = "http://127.0.0.1:9/events"
            page_size = 50

            [[sources]]
            name = "warehouse"
            kind = "postgres"
            dsn = "host=localhost dbname=w"
            query = "SELECT * FROM e WHERE occurred_at >= $1 ORDER BY occurred_at"
            "#,
        )
        .unwrap();
        assert_eq!(c.refresh.history_days, 30);
        assert_eq!(c.sources.len(), 2);
        assert_eq!(c.sources[0].kind(), "http_json");
        c.validate().unwrap();
    }

    #[test]
    fn a_duplicate_or_misspelt_source_is_named() {
        let twice = "[[sources]]\nname = \"d\"\nkind = \"demo\"\n[[sources]]\nname = \"d\"\nkind = \"demo\"\n";
        let err = Config::from_toml(twice).unwrap().validate().unwrap_err();
        assert_eq!(err.field, "sources[1].name");
        let typo = "[[sources]]\nname = \"d\"\nkind = \"demo\"\ndayz = 3\n";
        assert!(Config::from_toml(typo).is_err());
        let kind = "[[sources]]\nname = \"d\"\nkind = \"kafka\"\n";
        assert!(Config::from_toml(kind).is_err());
    }
}
