//! `http_json` source: pages of events from an HTTP endpoint, resumed by cursor.
//!
//! Each page is `GET <url>?since=<cursor>&limit=<page_size>` (`since` omitted on
//! the first run unless `initial_cursor` is set). The body is a JSON array of
//! events or NDJSON (one event per line; chosen by `Content-Type` containing
//! `ndjson`, or by the body not starting with `[`). An event is
//!
//! ```json
//! {"id": "e1", "occurred_at": "2026-01-01T10:00:00Z", "client_id": "c1",
//!  "name": "order", "value": 12.5, "cursor": "optional"}
//! ```
//!
//! (`id` may be a number; `value` defaults to 1). The next `since` is the
//! `X-Next-Cursor` response header if present, else the last event's `cursor`,
//! else its `id`. Paging stops at a short or empty page or an unchanged cursor.
//! A page that fails with a connection error, a timeout, a 5xx or a 429 is retried
//! with exponential backoff; other statuses fail the source at once.

use std::time::Duration;

use serde::Deserialize;

use super::{insert_page, load_cursor, Event, SourceError, SourceReport};
use crate::config::error::ConfigError;
use crate::jobs::{JobContext, JobError};

/// `kind = "http_json"`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpJsonConfig {
    pub name: String,
    /// Endpoint; `since` and `limit` are added as query parameters.
    pub url: String,
    /// Events asked for per page (the `limit` parameter).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// `since` for the very first page; unset starts from the beginning.
    #[serde(default)]
    pub initial_cursor: Option<String>,
    /// TCP connect timeout, seconds.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// Longest wait between bytes of a response, seconds.
    #[serde(default = "default_read_timeout")]
    pub read_timeout_secs: u64,
    /// Retries per page after the first attempt.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First backoff between retries, doubled each time (capped at 30 s).
    #[serde(default = "default_backoff_ms")]
    pub retry_backoff_ms: u64,
    /// Pages per run at most, so one run always ends; the rest waits for the next.
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
}

fn default_page_size() -> u32 {
    1000
}
fn default_connect_timeout() -> u64 {
    5
}
fn default_read_timeout() -> u64 {
    30
}
fn default_retries() -> u32 {
    3
}
fn default_backoff_ms() -> u64 {
    500
}
fn default_max_pages() -> u32 {
    1000
}

const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl HttpJsonConfig {
    pub(super) fn validate(&self, field: &str) -> Result<(), ConfigError> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| ConfigError::new(format!("{field}.url"), e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ConfigError::new(
                format!("{field}.url"),
                "must be an http or https URL",
            ));
        }
        if self.page_size == 0 || self.max_pages == 0 {
            return Err(ConfigError::new(
                format!("{field}.page_size"),
                "page_size and max_pages must be at least 1",
            ));
        }
        Ok(())
    }
}

/// An event as the endpoint sends it.
#[derive(Debug, Deserialize)]
struct WireEvent {
    id: WireId,
    occurred_at: chrono::DateTime<chrono::Utc>,
    client_id: String,
    name: String,
    #[serde(default = "one")]
    value: f64,
    #[serde(default)]
    cursor: Option<WireId>,
}

fn one() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WireId {
    Text(String),
    Number(serde_json::Number),
}

impl WireId {
    fn into_string(self) -> String {
        match self {
            WireId::Text(s) => s,
            WireId::Number(n) => n.to_string(),
        }
    }
}

/// Parses a page body: a JSON array, or NDJSON. Errors name the line.
fn parse_page(body: &str, ndjson: bool) -> Result<Vec<WireEvent>, String> {
    let trimmed = body.trim_start();
    if !ndjson && trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).map_err(|e| format!("bad JSON page: {e}"));
    }
    body.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| format!("bad NDJSON line {}: {e}", i + 1))
        })
        .collect()
}

pub(super) async fn ingest(
    ctx: &JobContext,
    config: &HttpJsonConfig,
    report: &mut SourceReport,
) -> Result<(), SourceError> {
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
        .read_timeout(Duration::from_secs(config.read_timeout_secs))
        .build()
        .map_err(|e| SourceError::Failed(format!("http client: {e}")))?;
    let mut cursor = {
        let client = ctx.client().await?;
        load_cursor(&**client, &config.name).await?
    }
    .or_else(|| config.initial_cursor.clone());
    report.cursor = cursor.clone();

    for _ in 0..config.max_pages {
        ctx.check()?;
        let (body, ndjson, header_cursor) =
            fetch_page(ctx, &http, config, cursor.as_deref()).await?;
        let wire = parse_page(&body, ndjson).map_err(SourceError::Failed)?;
        let count = wire.len();
        let mut next = header_cursor;
        let mut events = Vec::with_capacity(count);
        for (i, w) in wire.into_iter().enumerate() {
            if i + 1 == count && next.is_none() {
                next = Some(match w.cursor {
                    Some(c) => c.into_string(),
                    None => match &w.id {
                        WireId::Text(s) => s.clone(),
                        WireId::Number(n) => n.to_string(),
                    },
                });
            }
            events.push(Event {
                event_id: w.id.into_string(),
                occurred_at: w.occurred_at,
                client_id: w.client_id,
                name: w.name,
                value: w.value,
            });
        }
        let Some(next) = next.filter(|n| Some(n) != cursor.as_ref()) else {
            break; // empty page or no progress: caught up
        };
        report.rows_inserted += insert_page(ctx, &config.name, &events, &next).await?;
        report.pages += 1;
        report.cursor = Some(next.clone());
        cursor = Some(next);
        if count < config.page_size as usize {
            break;
        }
    }
    Ok(())
}

/// GETs one page, retrying transient failures with backoff.
async fn fetch_page(
    ctx: &JobContext,
    http: &reqwest::Client,
    config: &HttpJsonConfig,
    since: Option<&str>,
) -> Result<(String, bool, Option<String>), SourceError> {
    let mut backoff = Duration::from_millis(config.retry_backoff_ms);
    let mut attempt = 0;
    loop {
        let mut request = http
            .get(&config.url)
            .query(&[("limit", config.page_size.to_string())]);
        if let Some(since) = since {
            request = request.query(&[("since", since)]);
        }
        let outcome = tokio::select! {
            r = send(request) => r,
            _ = ctx.cancel_token().cancelled() => return Err(JobError::Cancelled.into()),
        };
        let err = match outcome {
            Ok(page) => return Ok(page),
            Err(Attempt::Fatal(msg)) => return Err(SourceError::Failed(msg)),
            Err(Attempt::Transient(msg)) => msg,
        };
        if attempt >= config.retries {
            return Err(SourceError::Failed(format!(
                "{err} (gave up after {} attempts)",
                attempt + 1
            )));
        }
        attempt += 1;
        tracing::debug!(source = %config.name, attempt, error = %err, "page failed; retrying");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = ctx.cancel_token().cancelled() => return Err(JobError::Cancelled.into()),
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum Attempt {
    Transient(String),
    Fatal(String),
}

async fn send(request: reqwest::RequestBuilder) -> Result<(String, bool, Option<String>), Attempt> {
    let response = request
        .send()
        .await
        .map_err(|e| Attempt::Transient(format!("GET failed: {e}")))?;
    let status = response.status();
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        return Err(Attempt::Transient(format!("GET answered {status}")));
    }
    if !status.is_success() {
        return Err(Attempt::Fatal(format!("GET answered {status}")));
    }
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let ndjson = header("content-type").is_some_and(|v| v.contains("ndjson"));
    let next = header("x-next-cursor").filter(|c| !c.is_empty());
    let body = response
        .text()
        .await
        .map_err(|e| Attempt::Transient(format!("reading the body failed: {e}")))?;
    Ok((body, ndjson, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_and_ndjson_both_parse() {
        let one =
            r#"{"id": 7, "occurred_at": "2026-01-01T00:00:00Z", "client_id": "c", "name": "n"}"#;
        let arr = parse_page(&format!("[{one}]"), false).unwrap();
        assert_eq!(arr[0].value, 1.0);
        let nd = parse_page(&format!("{one}\n\n{one}\n"), true).unwrap();
        assert_eq!(nd.len(), 2);
        assert_eq!(nd.into_iter().next().unwrap().id.into_string(), "7");
    }

    #[test]
    fn a_bad_ndjson_line_is_named() {
        let err = parse_page("{}\n", true).unwrap_err();
        assert!(err.contains("line 1"), "{err}");
    }
}
