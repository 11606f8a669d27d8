//! The delivery worker: posts outbox alerts to their webhooks.
//!
//! Each alert is a JSON POST (`event`, `heartbeat`, `at`, ...). With a secret, the
//! body is signed: `Heartbeat-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
//! A 2xx marks it delivered; anything else is retried with exponential backoff
//! until `max_delivery_attempts`, then marked failed. Rows are claimed with
//! `FOR UPDATE SKIP LOCKED`, and an alert stays pending in the table until an
//! attempt succeeds, so none is lost across a restart.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use super::text_column::text_enum;
use super::MonitorConfig;
use crate::ops::prometheus::Metrics;

/// Alerts claimed per transaction.
const BATCH: i64 = 50;
const ERROR_BACKOFF: Duration = Duration::from_secs(5);
/// How often the redactor's webhook secrets are resynced from the table, so a
/// webhook deleted on another node stops being held in this node's memory.
const SECRETS_RESYNC_EVERY: Duration = Duration::from_secs(300);

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "heartbeat-signature";

/// What the delivery worker needs.
pub struct LoopDeps {
    pub pool: Pool,
    /// Interval, webhook timeout, retry backoff and attempts.
    pub config: MonitorConfig,
    /// For the sent and failed alert counters.
    pub metrics: Metrics,
    /// The database's connection string: names its webhook secrets in the log
    /// redactor.
    pub redact_scope: std::sync::Arc<str>,
    pub shutdown: CancellationToken,
}

/// Runs the worker until shutdown.
pub async fn run(deps: LoopDeps) {
    let LoopDeps {
        pool,
        config,
        metrics,
        redact_scope,
        shutdown,
    } = deps;
    // Webhooks created before this start (or on another node) were never seen by
    // this process's create handler; their secrets are masked from here on.
    if let Err(e) = register_secrets(&pool, &redact_scope).await {
        tracing::warn!(error = %e, "could not load webhook secrets for log redaction");
    }
    let http = http_client(&config);
    let interval = Duration::from_millis(config.delivery_interval_ms.max(10));
    let mut resynced = tokio::time::Instant::now();
    loop {
        if resynced.elapsed() >= SECRETS_RESYNC_EVERY {
            resynced = tokio::time::Instant::now();
            if let Err(e) = register_secrets(&pool, &redact_scope).await {
                tracing::warn!(error = %e, "could not resync webhook secrets for log redaction");
            }
        }
        let wait = match deliver_once(&pool, &redact_scope, &http, &config, Utc::now()).await {
            Ok(done) => {
                metrics.alerts_delivered(done.delivered as u64, done.failed as u64);
                interval
            }
            Err(e) => {
                tracing::warn!(error = %e, "alert delivery failed; retrying");
                ERROR_BACKOFF
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

pub fn http_client(config: &MonitorConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(config.webhook_timeout())
        .user_agent(concat!("heartbeat/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

/// Where an alert is in its delivery (`heartbeat.alert.state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertState {
    /// Not delivered yet; tried again at `next_attempt_at`.
    Pending,
    Delivered,
    /// Given up on after `max_delivery_attempts`.
    Failed,
}

text_enum!(AlertState {
    Pending => "pending",
    Delivered => "delivered",
    Failed => "failed",
});

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub delivered: usize,
    pub retrying: usize,
    pub failed: usize,
}

const CLAIM: &str = "
SELECT a.alert_id, a.payload, a.attempts, w.url, w.secret
FROM heartbeat.alert a JOIN heartbeat.webhook w USING (webhook_id)
WHERE a.state = 'pending' AND a.next_attempt_at <= $1
ORDER BY a.next_attempt_at, a.alert_id
LIMIT $2
FOR UPDATE OF a SKIP LOCKED";

/// Makes the log redactor's webhook secrets exactly those the table holds: new
/// ones (created on another node) are masked, deleted ones forgotten.
/// `scope` names the database (its connection string) for the redactor.
pub async fn register_secrets(
    pool: &Pool,
    scope: &str,
) -> Result<usize, super::deadline::DeadlineError> {
    let client = pool.get().await?;
    let mark = crate::ops::redact::resync_mark();
    let rows = client
        .query(
            "SELECT DISTINCT secret FROM heartbeat.webhook WHERE secret IS NOT NULL",
            &[],
        )
        .await?;
    crate::ops::redact::replace_webhook_secrets(
        scope,
        mark,
        rows.iter().map(|r| r.get::<_, &str>(0)),
    );
    Ok(rows.len())
}

const RECORD: &str = "
UPDATE heartbeat.alert SET attempts = $2, state = $3, next_attempt_at = $4,
    delivered_at = $5, last_status = $6, last_error = $7
WHERE alert_id = $1";

/// One pass at `now`: posts every due alert once and records each outcome.
/// `redact_scope` names the database for the log redactor (its connection string).
pub async fn deliver_once(
    pool: &Pool,
    redact_scope: &str,
    http: &reqwest::Client,
    config: &MonitorConfig,
    now: DateTime<Utc>,
) -> Result<Delivered, super::deadline::DeadlineError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let rows = tx.query(CLAIM, &[&now, &BATCH]).await?;
    let attempts = rows.iter().map(|r| {
        let alert_id: i64 = r.get(0);
        let payload: serde_json::Value = r.get(1);
        let url: String = r.get(3);
        let secret: Option<String> = r.get(4);
        // A webhook created on another node since this worker started: its secret
        // is in this process's memory now, so mask it before any line can carry it.
        if let Some(secret) = &secret {
            crate::ops::redact::register_webhook_secret(redact_scope, secret);
        }
        async move {
            (
                alert_id,
                post(http, &url, secret.as_deref(), alert_id, &payload).await,
            )
        }
    });
    let outcomes = futures::future::join_all(attempts).await;
    let mut done = Delivered::default();
    for (row, (alert_id, outcome)) in rows.iter().zip(outcomes) {
        let attempts: i32 = row.get::<_, i32>(2) + 1;
        let (state, next, delivered_at, status, error) = match outcome {
            Ok(status) => {
                done.delivered += 1;
                (AlertState::Delivered, now, Some(now), Some(status), None)
            }
            Err((status, error)) if attempts >= config.max_delivery_attempts => {
                done.failed += 1;
                tracing::warn!(alert_id, attempts, %error, "alert given up on");
                (AlertState::Failed, now, None, status, Some(error))
            }
            Err((status, error)) => {
                done.retrying += 1;
                let next = now + backoff(config, attempts);
                tracing::info!(alert_id, attempts, %error, %next, "alert delivery will be retried");
                (AlertState::Pending, next, None, status, Some(error))
            }
        };
        tx.execute(
            RECORD,
            &[
                &alert_id,
                &attempts,
                &state,
                &next,
                &delivered_at,
                &status,
                &error,
            ],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(done)
}

/// The wait after the `attempts`-th failure: base × 2^(attempts−1), capped.
pub fn backoff(config: &MonitorConfig, attempts: i32) -> chrono::Duration {
    let exp = (attempts - 1).clamp(0, 30) as u32;
    let secs = config
        .retry_base_secs
        .saturating_mul(1u64 << exp)
        .min(config.retry_max_secs);
    chrono::Duration::seconds(secs as i64)
}

/// HMAC-SHA256 of `body` under `secret`, hex.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Posts one alert; Ok(status) on 2xx, otherwise the status (if any) and why.
async fn post(
    http: &reqwest::Client,
    url: &str,
    secret: Option<&str>,
    alert_id: i64,
    payload: &serde_json::Value,
) -> Result<i32, (Option<i32>, String)> {
    let body = serde_json::to_vec(payload).expect("a JSON value serializes");
    let mut req = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("heartbeat-alert-id", alert_id.to_string());
    if let Some(secret) = secret {
        req = req.header(SIGNATURE_HEADER, format!("sha256={}", sign(secret, &body)));
    }
    match req.body(body).send().await {
        Ok(resp) if resp.status().is_success() => Ok(resp.status().as_u16().into()),
        Ok(resp) => Err((
            Some(resp.status().as_u16().into()),
            format!("webhook answered {}", resp.status()),
        )),
        Err(e) => Err((None, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = MonitorConfig {
            retry_base_secs: 10,
            retry_max_secs: 60,
            ..MonitorConfig::default()
        };
        let secs: Vec<i64> = (1..=5).map(|a| backoff(&c, a).num_seconds()).collect();
        assert_eq!(secs, vec![10, 20, 40, 60, 60]);
    }

    #[test]
    fn the_signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
