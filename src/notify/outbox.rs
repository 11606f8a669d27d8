//! The delivery worker: the one consumer of the alert outbox, for every channel
//! kind.
//!
//! The deadline loop writes one row per (transition, channel) in the flip's
//! transaction (the reminder pass one per reminder interval, the digest pass one
//! per digest fire time), so an alert
//! exists exactly when its flip does and survives restarts until delivered.
//!
//! A pass claims due rows with `FOR UPDATE SKIP LOCKED` and, in the same short
//! transaction, leases them (`next_attempt_at` moves past the longest the
//! deliveries can take), so two nodes never send the same alert and a node that
//! dies mid-delivery leaves its rows to be retried once the lease ends. Each
//! channel's claimed alerts are delivered by their own task, a few at a time,
//! and a channel still busy is left out of the next claim: a slow or dead
//! channel holds up only itself. When a channel's batch is done the worker
//! claims again at once, so a burst drains at the channels' own pace rather than
//! one batch per interval. Alerts of one heartbeat on one channel go out in
//! order (a `down` before its `up`).
//!
//! A webhook alert is a JSON POST (`event`, `heartbeat`, `at`, ...). With a secret,
//! the body is signed: `Heartbeat-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
//! Success marks an alert delivered; anything else is retried with exponential
//! backoff until `max_delivery_attempts`, then marked failed. Every attempt is
//! kept in `heartbeat.delivery_attempt` with its outcome.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use futures::StreamExt;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::channel::{Kind, NotifyError, Plan};
use super::email::Mailer;
use super::event::{AlertEvent, EventKind};
use super::preset::Step;
use super::template::Vars;
use crate::monitor::MonitorConfig;
use crate::ops::prometheus::Metrics;

/// Channels claimed from per pass, at most: those whose oldest claimable
/// alert is oldest, so no channel waits behind others' backlogs for long.
const CHANNELS_PER_CLAIM: usize = 16;
/// Alerts of one channel claimed per pass: large enough that a burst (ten
/// thousand heartbeats down at once) is sent in a few dozen passes, each a claim
/// and one recording transaction, small enough that the lease (every wave of
/// it, at the request timeout) stays a few minutes.
const PER_CHANNEL_BATCH: i64 = 256;
/// Deliveries in flight at once to one channel.
const PER_CHANNEL_CONCURRENCY: usize = 32;
/// Requests one delivery may make (an issue comment, then the close).
const MAX_STEPS: u32 = 2;
const ERROR_BACKOFF: Duration = Duration::from_secs(5);

/// The signature header's name.
pub const SIGNATURE_HEADER: &str = "heartbeat-signature";

/// How often the redactor's channel secrets are resynced from the table, so a
/// channel deleted on another node stops being held in this node's memory.
const SECRETS_RESYNC_EVERY: Duration = Duration::from_secs(300);

/// What the delivery worker needs.
pub struct LoopDeps {
    pub pool: Pool,
    pub deliverer: Deliverer,
    /// The database's connection string: names its channel secrets in the log
    /// redactor.
    pub redact_scope: Arc<str>,
    /// For the sent and failed alert counters.
    pub metrics: Metrics,
    /// Woken by this process's deadline loop when it wrote alerts, and by the
    /// alert listener ([`super::wake`]) when any node did: they are claimed at
    /// once, not at the next interval, which stays as the fallback.
    pub alerts_written: Arc<tokio::sync::Notify>,
    pub shutdown: CancellationToken,
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

crate::monitor::text_enum!(AlertState {
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

impl std::ops::AddAssign for Delivered {
    fn add_assign(&mut self, o: Self) {
        self.delivered += o.delivered;
        self.retrying += o.retrying;
        self.failed += o.failed;
    }
}

/// What delivering takes: the HTTP client, the retry settings, where people
/// reach the daemon (for links), and the SMTP transport when configured.
#[derive(Clone)]
pub struct Deliverer {
    http: reqwest::Client,
    config: MonitorConfig,
    base_url: String,
    mailer: Option<Arc<Mailer>>,
    /// Names this database's secrets in the log redactor.
    redact_scope: Arc<str>,
}

impl Deliverer {
    pub fn new(config: &MonitorConfig, base_url: String, mailer: Option<Mailer>) -> Self {
        Self {
            http: http_client(config),
            config: config.clone(),
            base_url,
            mailer: mailer.map(Arc::new),
            redact_scope: Arc::from(""),
        }
    }

    /// The database this deliverer serves, for the log redactor's scope (its
    /// connection string).
    pub fn with_redact_scope(mut self, scope: Arc<str>) -> Self {
        self.redact_scope = scope;
        self
    }

    /// How long claimed alerts stay leased: every wave of a channel's batch, each
    /// request up to the timeout, and a margin.
    fn lease(&self) -> chrono::Duration {
        let waves = (PER_CHANNEL_BATCH as u32).div_ceil(PER_CHANNEL_CONCURRENCY as u32);
        let per = self.config.webhook_timeout() * MAX_STEPS;
        chrono::Duration::from_std(per * waves + Duration::from_secs(30))
            .unwrap_or(chrono::Duration::minutes(5))
    }

    /// One pass at `now`: claims a batch from each channel with due alerts (the
    /// 16 whose oldest is oldest), delivers them, every channel at the same
    /// time, and records each outcome.
    pub async fn deliver_once(
        &self,
        pool: &Pool,
        now: DateTime<Utc>,
    ) -> Result<Delivered, NotifyError> {
        let claimed = claim(pool, now, &[], self.lease()).await?;
        let groups = by_channel(claimed);
        let results = futures::future::join_all(
            groups
                .into_values()
                .map(|group| self.deliver_group(pool, group, now)),
        )
        .await;
        let mut done = Delivered::default();
        for r in results {
            done += r?;
        }
        Ok(done)
    }

    /// Delivers one channel's claimed alerts, a few at a time, then records
    /// their outcomes together.
    async fn deliver_group(
        &self,
        pool: &Pool,
        group: Vec<Claimed>,
        now: DateTime<Utc>,
    ) -> Result<Delivered, NotifyError> {
        let attempted: Vec<(Claimed, Attempt)> = futures::stream::iter(group)
            .map(|alert| async move {
                let attempt = self.attempt(&alert, now).await;
                (alert, attempt)
            })
            .buffer_unordered(PER_CHANNEL_CONCURRENCY)
            .collect()
            .await;
        let items: Vec<(&Claimed, &Attempt)> = attempted.iter().map(|(c, a)| (c, a)).collect();
        record_all(pool, &self.config, &items, now).await
    }

    /// Writes a `test` alert for `channel` to the outbox and delivers it now,
    /// once; answers the outcome.
    pub async fn send_test(
        &self,
        pool: &Pool,
        channel: Uuid,
        now: DateTime<Utc>,
    ) -> Result<TestOutcome, NotifyError> {
        let client = pool.get().await?;
        let payload = json!({
            "event": "test",
            "heartbeat": {"id": Uuid::nil(), "name": "test", "project_id": Value::Null},
            "at": now,
            "detected_at": now,
            "previous_status": "up",
            "status": "down",
        });
        // Leased from the start: no worker picks it up while this request sends it.
        let row = client
            .query_one(
                "INSERT INTO heartbeat.alert (channel_id, event, payload, created_at, next_attempt_at)
                 VALUES ($1, 'test', $2, $3, $4) RETURNING alert_id",
                &[&channel, &payload, &now, &(now + self.lease())],
            )
            .await?;
        drop(client);
        let alert_id: i64 = row.get(0);
        let claimed = load(pool, &[alert_id]).await?;
        let alert = claimed
            .into_iter()
            .next()
            .ok_or_else(|| NotifyError::NotFound(format!("no channel {channel}")))?;
        let attempt = self.attempt(&alert, now).await;
        record(pool, &self.config, &alert, &attempt, now).await?;
        Ok(TestOutcome {
            alert_id,
            ok: attempt.result.is_ok(),
            status: match &attempt.result {
                Ok(s) => Some(*s),
                Err((s, _)) => *s,
            },
            error: attempt.result.err().map(|(_, e)| e),
            duration_ms: attempt.duration_ms,
        })
    }

    /// Sends one alert as its channel's plan says.
    async fn attempt(&self, alert: &Claimed, now: DateTime<Utc>) -> Attempt {
        let started = Instant::now();
        let mut attempt = Attempt {
            result: Ok(0),
            steps_done: alert.steps_done,
            captured: None,
            duration_ms: 0,
        };
        let plan = match Kind::parse(&alert.kind) {
            Some(kind) => Plan::build(kind, &alert.config).map_err(|e| e.to_string()),
            None => Err(format!("unknown channel kind '{}'", alert.kind)),
        };
        attempt.result = match plan {
            Err(e) => Err((None, format!("channel config: {e}"))),
            Ok(Plan::Webhook { url, secret }) => {
                if let Some(s) = &secret {
                    // A webhook made on another node since this worker started:
                    // its secret is in this process's memory now.
                    crate::ops::redact::register_webhook_secret(&self.redact_scope, s);
                }
                post_webhook(
                    &self.http,
                    &url,
                    secret.as_deref(),
                    alert.alert_id,
                    &alert.event.payload,
                )
                .await
            }
            Ok(Plan::Requests { steps, vars }) => {
                let mut all = alert.event.vars(&self.base_url, now);
                all.extend(vars);
                if let Some(issue) = &alert.issue {
                    all.insert("ISSUE".into(), issue.clone());
                }
                let steps = steps
                    .get(alert.event.kind.as_str())
                    .cloned()
                    .unwrap_or_default();
                self.run_steps(&steps, &mut all, &mut attempt).await
            }
            Ok(Plan::Email { to }) => match &self.mailer {
                Some(m) => m.send(&to, &alert.event, &self.base_url, now).await,
                None => Err((
                    None,
                    "email channels need [notify.smtp] in the configuration".to_string(),
                )),
            },
        };
        attempt.duration_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
        attempt
    }

    async fn run_steps(
        &self,
        steps: &[Step],
        vars: &mut Vars,
        attempt: &mut Attempt,
    ) -> Result<i32, (Option<i32>, String)> {
        let mut last = Ok(0);
        for (i, step) in steps.iter().enumerate() {
            if (i as i32) < attempt.steps_done {
                continue;
            }
            if step.request.uses("ISSUE") && !vars.contains_key("ISSUE") {
                return Err((None, "no open issue recorded for this heartbeat".into()));
            }
            let r = step.request.render(vars);
            let mut req = self.http.request(r.method, &r.url);
            for (name, value) in r.headers {
                // Non-ASCII passes as UTF-8 bytes; line breaks were removed.
                match reqwest::header::HeaderValue::from_bytes(value.as_bytes()) {
                    Ok(v) => req = req.header(name, v),
                    Err(_) => return Err((None, format!("header {name}: invalid value"))),
                }
            }
            if let Some(body) = r.body {
                req = req.body(body);
            }
            let resp = req.send().await.map_err(|e| (None, without_url(e)))?;
            let status = resp.status();
            if !status.is_success() {
                return Err((
                    Some(status.as_u16().into()),
                    format!("request {} answered {status}", i + 1),
                ));
            }
            if step.capture_issue {
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                let number = match &body["number"] {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => {
                        return Err((
                            Some(status.as_u16().into()),
                            "the answer has no issue number".into(),
                        ))
                    }
                };
                vars.insert("ISSUE".into(), number.clone());
                attempt.captured = Some(number);
            }
            attempt.steps_done = i as i32 + 1;
            last = Ok(status.as_u16().into());
        }
        last
    }
}

/// A reqwest error without its URL, which may hold a token in its path or
/// query (a webhook's, a chat service's): what went wrong and its causes
/// (`error sending request: ... tcp connect error: Connection refused`), for
/// the delivery history and the log, never where it was sent.
fn without_url(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let more = c.to_string();
        // Each layer often repeats the one below it.
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// The outcome of `POST /api/channels/{id}/test`.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TestOutcome {
    /// The outbox row the test went through.
    pub alert_id: i64,
    pub ok: bool,
    /// The HTTP status, or the SMTP reply code.
    pub status: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
}

/// Runs the worker until shutdown.
pub async fn run(deps: LoopDeps) {
    let LoopDeps {
        pool,
        deliverer,
        redact_scope,
        metrics,
        alerts_written,
        shutdown,
    } = deps;
    if let Err(e) = super::channel::register_secrets(&pool, &redact_scope).await {
        tracing::warn!(error = %e, "could not load channel secrets for log redaction");
    }
    let mut resynced = tokio::time::Instant::now();
    let deliverer = Arc::new(deliverer);
    let interval = Duration::from_millis(deliverer.config.delivery_interval_ms.max(10));
    let mut busy: HashSet<Uuid> = HashSet::new();
    let mut tasks: tokio::task::JoinSet<(Uuid, Result<Delivered, NotifyError>)> =
        tokio::task::JoinSet::new();
    let mut scheduled_at: Option<tokio::time::Instant> = None;
    loop {
        if resynced.elapsed() >= SECRETS_RESYNC_EVERY {
            resynced = tokio::time::Instant::now();
            if let Err(e) = super::channel::register_secrets(&pool, &redact_scope).await {
                tracing::warn!(error = %e, "could not resync channel secrets for log redaction");
            }
        }
        let now = Utc::now();
        // Reminders and digests join the outbox first, so this pass can send
        // them; once per interval, however often a burst makes the worker claim.
        if scheduled_at.is_none_or(|at| at.elapsed() >= interval) {
            scheduled_at = Some(tokio::time::Instant::now());
            if let Err(e) = super::reminder::run_once(&pool, now).await {
                tracing::warn!(error = %e, "writing reminders failed; retrying");
            }
            if let Err(e) = super::digest::run_once(&pool, now).await {
                tracing::warn!(error = %e, "writing digests failed; retrying");
            }
        }
        let skip: Vec<Uuid> = busy.iter().copied().collect();
        let wait = match claim(&pool, now, &skip, deliverer.lease()).await {
            Ok(claimed) => {
                for (channel, group) in by_channel(claimed) {
                    busy.insert(channel);
                    let d = deliverer.clone();
                    let pool = pool.clone();
                    tasks.spawn(async move { (channel, d.deliver_group(&pool, group, now).await) });
                }
                interval
            }
            Err(e) => {
                tracing::warn!(error = %e, "alert delivery failed; retrying");
                ERROR_BACKOFF
            }
        };
        // Until the interval passes, or a channel's batch is done: that channel
        // is free again, so claim at once and a burst drains at the channels'
        // pace rather than one batch per interval.
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = alerts_written.notified() => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Ok((channel, result)) = done {
                    busy.remove(&channel);
                    match result {
                        Ok(d) => metrics.alerts_delivered(d.delivered as u64, d.failed as u64),
                        Err(e) => tracing::warn!(error = %e, "recording a delivery failed"),
                    }
                }
            }
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

/// A claimed alert with what its delivery needs.
#[derive(Debug, Clone)]
struct Claimed {
    alert_id: i64,
    channel_id: Uuid,
    kind: String,
    config: Value,
    event: AlertEvent,
    attempts: i32,
    steps_done: i32,
    issue: Option<String>,
}

fn by_channel(claimed: Vec<Claimed>) -> BTreeMap<Uuid, Vec<Claimed>> {
    let mut groups: BTreeMap<Uuid, Vec<Claimed>> = BTreeMap::new();
    for c in claimed {
        groups.entry(c.channel_id).or_default().push(c);
    }
    groups
}

/// The condition an alert `a` is claimable on: due, pending, and first of its
/// heartbeat's pending alerts on its channel, so a `down` goes out before the
/// `up` after it. A test or digest (no heartbeat) is never behind anything.
///
/// The order probe asks for the pair's first pending alert by `ORDER BY
/// alert_id LIMIT 1`, which only `alert_pending_pair_idx` answers without a
/// sort, and [`CLAIM_SETTINGS`] forbids the sort, so no other index can stand
/// in for it whatever the statistics say (docs/decisions.md §30). `<=` rather
/// than `=` keeps the planner's guess of how many rows pass at a third, not
/// 0.5 %, which would make it expect to read every pending row.
macro_rules! claimable {
    () => {
        "a.state = 'pending' AND a.channel_id = c.channel_id AND a.next_attempt_at <= $1
          AND (a.heartbeat_id IS NULL OR a.alert_id <= (
              SELECT b.alert_id FROM heartbeat.alert b
              WHERE b.state = 'pending' AND b.heartbeat_id = a.heartbeat_id
                AND b.channel_id = a.channel_id
              ORDER BY b.alert_id LIMIT 1))"
    };
}

/// Each channel not in `$2` (busy in this process) that has a claimable alert,
/// with its oldest one's due time: one walk of `alert_claim_idx` per channel,
/// stopping at the first claimable row. Public for the test that checks its
/// plan.
pub const DUE_CHANNELS: &str = concat!(
    "
SELECT c.channel_id, d.next_attempt_at
FROM heartbeat.channel c
CROSS JOIN LATERAL (
    SELECT a.next_attempt_at FROM heartbeat.alert a
    WHERE ",
    claimable!(),
    "
    ORDER BY a.next_attempt_at, a.alert_id
    LIMIT 1) d
WHERE NOT (c.channel_id = ANY($2))"
);

/// Claimable alerts of the channels in `$2`, at most `$3` each, in sending
/// order; locked rows are skipped, and the claimed ones leased until `$4`.
/// Per channel an index walk of `alert_claim_idx` that stops at `$3` rows, one
/// order probe per row, then the lease through the primary key: its cost
/// follows the batch, not the backlog. Public for the test that checks its
/// plan.
pub const CLAIM: &str = concat!(
    "
UPDATE heartbeat.alert SET next_attempt_at = $4
WHERE alert_id = ANY(ARRAY(
    SELECT d.alert_id
    FROM unnest($2::uuid[]) AS c(channel_id)
    CROSS JOIN LATERAL (
        SELECT a.alert_id FROM heartbeat.alert a
        WHERE ",
    claimable!(),
    "
        ORDER BY a.next_attempt_at, a.alert_id
        LIMIT $3
        FOR UPDATE SKIP LOCKED) d))
RETURNING alert_id"
);

/// The claim's transaction plans without sorts, so each read follows an index
/// in the order it needs and stops at its `LIMIT` (a sort would read every
/// pending row first), and without JIT, whose compile (0.1–0.6 s) exceeds what
/// a claim of a few hundred rows costs; both for this transaction only.
pub const CLAIM_SETTINGS: &str = "SET LOCAL enable_sort = off;
SET LOCAL enable_incremental_sort = off;
SET LOCAL jit = off";

const LOAD: &str = "
SELECT a.alert_id, a.channel_id, c.kind, c.config, a.event, a.payload, a.attempts,
       a.steps_done, a.heartbeat_id, h.token, h.last_ping_at, p.exit_code, p.body,
       i.reference,
       CASE WHEN NOT h.last_signal_failed THEN h.last_signal_at END,
       CASE WHEN h.schedule IS NOT NULL THEN h.schedule || ' (' || h.tz || ')'
            WHEN h.period_seconds IS NOT NULL
            THEN 'every ' || h.period_seconds || ' s, grace ' || h.grace_seconds || ' s' END,
       h.tags
FROM heartbeat.alert a
JOIN heartbeat.channel c USING (channel_id)
LEFT JOIN heartbeat.heartbeat h ON h.heartbeat_id = a.heartbeat_id
LEFT JOIN LATERAL (
    SELECT exit_code, body FROM heartbeat.ping
    WHERE heartbeat_id = a.heartbeat_id ORDER BY seq DESC LIMIT 1) p ON true
LEFT JOIN heartbeat.channel_issue i
    ON i.channel_id = a.channel_id AND i.heartbeat_id = a.heartbeat_id
WHERE a.alert_id = ANY($1)
ORDER BY a.alert_id";

async fn claim(
    pool: &Pool,
    now: DateTime<Utc>,
    busy: &[Uuid],
    lease: chrono::Duration,
) -> Result<Vec<Claimed>, NotifyError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(CLAIM_SETTINGS).await?;
    let mut due: Vec<(Uuid, DateTime<Utc>)> = tx
        .query(DUE_CHANNELS, &[&now, &busy])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // Oldest first, so a channel with a long backlog does not keep the others
    // out of every claim.
    due.sort_by_key(|&(channel, at)| (at, channel));
    let channels: Vec<Uuid> = due
        .into_iter()
        .take(CHANNELS_PER_CLAIM)
        .map(|(channel, _)| channel)
        .collect();
    let rows = if channels.is_empty() {
        Vec::new()
    } else {
        tx.query(
            CLAIM,
            &[&now, &channels, &PER_CHANNEL_BATCH, &(now + lease)],
        )
        .await?
    };
    tx.commit().await?;
    drop(client);
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    load(pool, &ids).await
}

async fn load(pool: &Pool, ids: &[i64]) -> Result<Vec<Claimed>, NotifyError> {
    let client = pool.get().await?;
    let rows = client.query(LOAD, &[&ids]).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let event: String = r.get(4);
            Claimed {
                alert_id: r.get(0),
                channel_id: r.get(1),
                kind: r.get(2),
                config: r.get(3),
                event: AlertEvent {
                    kind: EventKind::from_name(&event).unwrap_or(EventKind::Down),
                    payload: r.get(5),
                    heartbeat_id: r.get(8),
                    token: r.get(9),
                    last_ping_at: r.get(10),
                    exit_code: r.get(11),
                    body: r.get(12),
                    last_success_at: r.get(14),
                    expected: r.get(15),
                    tags: r.get::<_, Option<Vec<String>>>(16).unwrap_or_default(),
                },
                attempts: r.get(6),
                steps_done: r.get(7),
                issue: r.get(13),
            }
        })
        .collect())
}

/// One attempt's outcome.
struct Attempt {
    /// Ok(status) on success, else the status (if any) and why.
    result: Result<i32, (Option<i32>, String)>,
    /// Requests of the delivery done so far (kept for the retry).
    steps_done: i32,
    /// An issue number an issue tracker answered with.
    captured: Option<String>,
    duration_ms: i32,
}

/// Records a batch of attempts in one statement: each alert's new state, and
/// one `delivery_attempt` row per attempt.
const RECORD: &str = "
WITH r AS (
    SELECT * FROM unnest($1::int8[], $2::int4[], $3::text[], $4::timestamptz[],
                         $5::timestamptz[], $6::int4[], $7::text[], $8::int4[], $9::int4[])
        AS r(alert_id, attempts, state, next_attempt_at, delivered_at, status, error,
             steps_done, duration_ms)
), updated AS (
    UPDATE heartbeat.alert a SET attempts = r.attempts, state = r.state,
        next_attempt_at = r.next_attempt_at, delivered_at = r.delivered_at,
        last_status = r.status, last_error = r.error, steps_done = r.steps_done
    FROM r WHERE a.alert_id = r.alert_id
)
INSERT INTO heartbeat.delivery_attempt (alert_id, attempt, at, duration_ms, status, error)
SELECT alert_id, attempts, $10, duration_ms, status, error FROM r";

const KEEP_ISSUE: &str = "
INSERT INTO heartbeat.channel_issue (channel_id, heartbeat_id, reference, opened_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (channel_id, heartbeat_id) DO UPDATE
SET reference = EXCLUDED.reference, opened_at = EXCLUDED.opened_at";

/// What one attempt makes of its alert.
struct Outcome {
    attempts: i32,
    state: AlertState,
    next: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
    status: Option<i32>,
    error: Option<String>,
}

fn outcome(
    config: &MonitorConfig,
    alert: &Claimed,
    attempt: &Attempt,
    now: DateTime<Utc>,
    done: &mut Delivered,
) -> Outcome {
    let attempts = alert.attempts + 1;
    // A test is tried once: its outcome is the answer to the request that sent it.
    let max = if alert.event.kind == EventKind::Test {
        1
    } else {
        config.max_delivery_attempts
    };
    let alert_id = alert.alert_id;
    let (state, next, delivered_at, status, error) = match &attempt.result {
        Ok(status) => {
            done.delivered += 1;
            (AlertState::Delivered, now, Some(now), Some(*status), None)
        }
        Err((status, error)) if attempts >= max => {
            done.failed += 1;
            tracing::warn!(alert_id, attempts, %error, "alert given up on");
            (AlertState::Failed, now, None, *status, Some(error.clone()))
        }
        Err((status, error)) => {
            done.retrying += 1;
            let next = now + backoff(config, attempts);
            tracing::info!(alert_id, attempts, %error, %next, "alert delivery will be retried");
            (
                AlertState::Pending,
                next,
                None,
                *status,
                Some(error.clone()),
            )
        }
    };
    Outcome {
        attempts,
        state,
        next,
        delivered_at,
        status,
        error,
    }
}

async fn record(
    pool: &Pool,
    config: &MonitorConfig,
    alert: &Claimed,
    attempt: &Attempt,
    now: DateTime<Utc>,
) -> Result<Delivered, NotifyError> {
    record_all(pool, config, &[(alert, attempt)], now).await
}

/// Records every attempt of a batch in one transaction (a burst of a thousand
/// alerts costs a few commits, not a thousand), with the issue numbers an
/// issue tracker answered and the issues closed.
async fn record_all(
    pool: &Pool,
    config: &MonitorConfig,
    items: &[(&Claimed, &Attempt)],
    now: DateTime<Utc>,
) -> Result<Delivered, NotifyError> {
    let mut done = Delivered::default();
    if items.is_empty() {
        return Ok(done);
    }
    let n = items.len();
    let mut ids = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut nexts = Vec::with_capacity(n);
    let mut delivered = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut steps = Vec::with_capacity(n);
    let mut durations = Vec::with_capacity(n);
    for (alert, attempt) in items {
        let o = outcome(config, alert, attempt, now, &mut done);
        ids.push(alert.alert_id);
        attempts.push(o.attempts);
        states.push(o.state.as_str());
        nexts.push(o.next);
        delivered.push(o.delivered_at);
        statuses.push(o.status);
        errors.push(o.error);
        steps.push(attempt.steps_done);
        durations.push(attempt.duration_ms);
    }
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute(
        RECORD,
        &[
            &ids, &attempts, &states, &nexts, &delivered, &statuses, &errors, &steps, &durations,
            &now,
        ],
    )
    .await?;
    for (alert, attempt) in items {
        if let (Some(issue), Some(hb), EventKind::Down) = (
            &attempt.captured,
            alert.event.heartbeat_id,
            alert.event.kind,
        ) {
            tx.execute(KEEP_ISSUE, &[&alert.channel_id, &hb, issue, &now])
                .await?;
        }
        if let (Ok(_), Some(hb), EventKind::Up, Some(_)) = (
            &attempt.result,
            alert.event.heartbeat_id,
            alert.event.kind,
            &alert.issue,
        ) {
            // Closed: the next outage opens a new issue.
            tx.execute(
                "DELETE FROM heartbeat.channel_issue WHERE channel_id = $1 AND heartbeat_id = $2",
                &[&alert.channel_id, &hb],
            )
            .await?;
        }
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

/// Posts one alert to a webhook; Ok(status) on 2xx, otherwise the status (if
/// any) and why.
async fn post_webhook(
    http: &reqwest::Client,
    url: &str,
    secret: Option<&str>,
    alert_id: i64,
    payload: &Value,
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
        Err(e) => Err((None, without_url(e))),
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
