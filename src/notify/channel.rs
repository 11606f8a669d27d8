//! Channels: where a project's alerts go. A channel's `kind` says how (a signed
//! webhook, `http` templates, a preset, email) and its `config` holds the kind's
//! settings, checked at create so a broken channel is refused then, not found out
//! at the first outage. Secrets in a config are masked in every answer and
//! registered with the log redactor.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::event::EventKind;
use super::preset::{self, Preset, Step};
use super::template::{RequestSpec, RequestTemplate, Vars, PUBLIC_PLACEHOLDERS};

/// Shown instead of a secret; sending it back on update keeps the stored value.
pub const MASK: &str = "********";

/// Shortest webhook secret accepted (the admin key's minimum too): it keys the
/// HMAC signature, and the log redactor masks only secrets it can tell from
/// ordinary words.
pub const MIN_WEBHOOK_SECRET_CHARS: usize = 16;

/// Header names whose values are credentials in an `http` channel.
const SECRET_HEADER_WORDS: &[&str] = &[
    "authorization",
    "token",
    "key",
    "secret",
    "cookie",
    "signature",
];

/// How a channel delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A JSON POST of the alert, signed with HMAC-SHA256 when a secret is set.
    Webhook,
    /// A request template per event.
    Http,
    /// A message over SMTP (`[notify.smtp]`).
    Email,
    Preset(Preset),
}

impl Kind {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "webhook" => Some(Kind::Webhook),
            "http" => Some(Kind::Http),
            "email" => Some(Kind::Email),
            other => Preset::from_name(other).map(Kind::Preset),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Webhook => "webhook",
            Kind::Http => "http",
            Kind::Email => "email",
            Kind::Preset(p) => p.as_str(),
        }
    }

    /// Every kind's name, for error messages and the docs.
    pub fn names() -> Vec<&'static str> {
        let mut names = vec!["webhook", "http", "email"];
        names.extend(Preset::ALL.iter().map(|p| p.as_str()));
        names
    }
}

/// Why a channel was refused or not found.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Bad input, named in the message.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

fn invalid(message: impl Into<String>) -> NotifyError {
    NotifyError::Invalid(message.into())
}

/// The `http` kind's config: one request per event; `up` may be left out (no
/// request on recovery), `reminder`, `test` and `digest` fall back to `down`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub down: RequestSpec,
    pub up: Option<RequestSpec>,
    pub reminder: Option<RequestSpec>,
    pub test: Option<RequestSpec>,
    pub digest: Option<RequestSpec>,
}

/// What a delivery does, from a channel's kind and config.
#[derive(Debug, Clone)]
pub enum Plan {
    Webhook {
        url: String,
        secret: Option<String>,
    },
    Requests {
        /// The requests per event; empty: nothing is sent for that event.
        steps: BTreeMap<&'static str, Vec<Step>>,
        vars: Vars,
    },
    Email {
        to: Vec<String>,
    },
}

impl Plan {
    /// Checks `config` for `kind`; the error names the field.
    pub fn build(kind: Kind, config: &Value) -> Result<Self, NotifyError> {
        match kind {
            Kind::Webhook => {
                // Checked as written, as the OpenAPI document states it; this
                // also keeps a user or password out of a URL listed back unmasked.
                let url = config
                    .get("url")
                    .and_then(Value::as_str)
                    .filter(|u| WEBHOOK_URL.is_match(u))
                    .and_then(|u| reqwest::Url::parse(u).ok())
                    .filter(|u| matches!(u.scheme(), "http" | "https"))
                    .ok_or_else(|| {
                        invalid(
                            "url: must be an http or https URL with a host name or IPv4 address, an optional port, path and query; no user, password or fragment",
                        )
                    })?;
                let secret = match config.get("secret") {
                    None | Some(Value::Null) => None,
                    Some(Value::String(s)) if s.is_empty() => None,
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(_) => return Err(invalid("secret: must be a string")),
                };
                if let Some(s) = &secret {
                    if s.chars().count() < MIN_WEBHOOK_SECRET_CHARS {
                        return Err(invalid(format!(
                            "secret: at least {MIN_WEBHOOK_SECRET_CHARS} characters"
                        )));
                    }
                }
                if let Some(extra) = config
                    .as_object()
                    .and_then(|o| o.keys().find(|k| !matches!(k.as_str(), "url" | "secret")))
                {
                    return Err(invalid(format!("config: unknown field '{extra}'")));
                }
                Ok(Plan::Webhook {
                    url: url.to_string(),
                    secret,
                })
            }
            Kind::Http => {
                let http: HttpConfig = serde_json::from_value(config.clone())
                    .map_err(|e| invalid(format!("config: {e}")))?;
                let parse = |event: &str, spec: &RequestSpec| {
                    RequestTemplate::parse(spec, PUBLIC_PLACEHOLDERS)
                        .map(|request| Step {
                            request,
                            capture_issue: false,
                        })
                        .map_err(|e| invalid(format!("config.{event}: {e}")))
                };
                let down = parse("down", &http.down)?;
                let mut steps = BTreeMap::new();
                steps.insert(
                    "up",
                    http.up
                        .as_ref()
                        .map(|s| parse("up", s))
                        .transpose()?
                        .into_iter()
                        .collect(),
                );
                let reminder = match &http.reminder {
                    Some(s) => parse("reminder", s)?,
                    None => down.clone(),
                };
                let test = match &http.test {
                    Some(s) => parse("test", s)?,
                    None => down.clone(),
                };
                let digest = match &http.digest {
                    Some(s) => parse("digest", s)?,
                    None => down.clone(),
                };
                steps.insert("reminder", vec![reminder]);
                steps.insert("test", vec![test]);
                steps.insert("digest", vec![digest]);
                steps.insert("down", vec![down]);
                Ok(Plan::Requests {
                    steps,
                    vars: Vars::new(),
                })
            }
            Kind::Email => {
                let to = config
                    .get("to")
                    .and_then(Value::as_array)
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| invalid("config.to: a non-empty list of addresses"))?;
                let mut list = Vec::new();
                for address in to {
                    let a = address
                        .as_str()
                        .filter(|a| {
                            a.split_once('@')
                                .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
                                && !a.chars().any(|c| c.is_control() || c.is_whitespace())
                        })
                        .ok_or_else(|| {
                            invalid(format!("config.to: {address} is not an address"))
                        })?;
                    list.push(a.to_string());
                }
                Ok(Plan::Email { to: list })
            }
            Kind::Preset(p) => {
                let vars = preset::vars(p, config).map_err(|e| invalid(e.to_string()))?;
                let steps = EventKind::ALL
                    .iter()
                    .map(|e| (e.as_str(), preset::steps(p, *e, &vars)))
                    .collect();
                Ok(Plan::Requests { steps, vars })
            }
        }
    }
}

/// The secret values in a channel's config.
pub fn secrets(kind: Kind, config: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut take = |v: &Value| {
        if let Some(s) = v.as_str().filter(|s| !s.is_empty() && *s != MASK) {
            out.push(s.to_string());
        }
    };
    match kind {
        Kind::Webhook => take(&config["secret"]),
        Kind::Email => {}
        Kind::Preset(p) => p.secret_fields().iter().for_each(|f| take(&config[*f])),
        Kind::Http => {
            for event in ["down", "up", "reminder", "test"] {
                if let Some(headers) = config[event]["headers"].as_object() {
                    for (name, value) in headers {
                        if is_secret_header(name) {
                            take(value);
                        }
                    }
                }
            }
        }
    }
    out
}

fn is_secret_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_HEADER_WORDS.iter().any(|w| name.contains(w))
}

/// `config` with every secret replaced by [`MASK`].
pub fn masked(kind: Kind, config: &Value) -> Value {
    let mut out = config.clone();
    let mask = |v: &mut Value| {
        if v.as_str().is_some_and(|s| !s.is_empty()) {
            *v = json!(MASK);
        }
    };
    match kind {
        Kind::Webhook => {
            if let Some(v) = out.get_mut("secret") {
                mask(v);
            }
        }
        Kind::Email => {}
        Kind::Preset(p) => {
            for f in p.secret_fields() {
                if let Some(v) = out.get_mut(*f) {
                    mask(v);
                }
            }
        }
        Kind::Http => {
            for event in ["down", "up", "reminder", "test"] {
                if let Some(headers) = out
                    .get_mut(event)
                    .and_then(|e| e.get_mut("headers"))
                    .and_then(Value::as_object_mut)
                {
                    for (name, value) in headers.iter_mut() {
                        if is_secret_header(name) {
                            mask(value);
                        }
                    }
                }
            }
        }
    }
    out
}

/// `new` with every [`MASK`] a client sent back replaced by the stored value at
/// the same place in `old`, so a client can edit a channel it was shown masked.
pub fn unmask(new: &Value, old: &Value) -> Value {
    match (new, old) {
        (Value::String(s), old) if s == MASK && old.is_string() => old.clone(),
        (Value::Object(n), Value::Object(o)) => Value::Object(
            n.iter()
                .map(|(k, v)| (k.clone(), o.get(k).map_or(v.clone(), |ov| unmask(v, ov))))
                .collect(),
        ),
        _ => new.clone(),
    }
}

/// A stored channel.
#[derive(Debug, Clone)]
pub struct Channel {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub kind: Kind,
    pub config: Value,
    pub repeat_every_seconds: Option<i32>,
    pub muted: bool,
    pub created_at: DateTime<Utc>,
    /// When a digest goes out: a crontab expression, read in `digest_tz`.
    pub digest_schedule: Option<String>,
    pub digest_tz: String,
}

/// A channel as the API shows it: secrets masked, and whether its last
/// delivery failed, so a broken alert path is never silent.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelView {
    pub id: Uuid,
    pub name: String,
    /// `webhook`, `http`, `email` or a preset.
    pub kind: String,
    /// The kind's settings, secrets shown as `********`.
    #[schema(value_type = Object)]
    pub config: Value,
    /// While a heartbeat stays down, a reminder goes out at this interval.
    pub repeat_every_seconds: Option<i32>,
    /// A muted channel gets no new alerts.
    pub muted: bool,
    pub created_at: DateTime<Utc>,
    /// When a digest of every heartbeat goes out: a five-field crontab
    /// expression (or `@daily`, ...), read in `digest_tz`; null: no digest.
    pub digest_schedule: Option<String>,
    /// IANA time zone of `digest_schedule`.
    pub digest_tz: String,
    /// True when the channel's most recent finished delivery failed, or its most
    /// recent attempt did.
    pub failing: bool,
    /// The most recent attempt's error, if it failed.
    pub last_error: Option<String>,
}

const COLUMNS: &str = "c.channel_id, c.project_id, c.name, c.kind, c.config, \
    c.repeat_every_seconds, c.muted, c.created_at, c.digest_schedule, c.digest_tz, \
    (SELECT d.error FROM heartbeat.alert a JOIN heartbeat.delivery_attempt d USING (alert_id) \
     WHERE a.channel_id = c.channel_id ORDER BY d.at DESC, d.alert_id DESC LIMIT 1)";

fn from_row(row: &tokio_postgres::Row) -> (Channel, Option<String>) {
    let kind: String = row.get(3);
    (
        Channel {
            id: row.get(0),
            project_id: row.get(1),
            name: row.get(2),
            // An unknown stored kind (a newer daemon's) reads as http, and
            // fails its deliveries with a clear error at build time.
            kind: Kind::parse(&kind).unwrap_or(Kind::Http),
            config: row.get(4),
            repeat_every_seconds: row.get(5),
            muted: row.get(6),
            created_at: row.get(7),
            digest_schedule: row.get(8),
            digest_tz: row.get(9),
        },
        row.get(10),
    )
}

impl Channel {
    pub fn view(&self, last_error: Option<String>) -> ChannelView {
        ChannelView {
            id: self.id,
            name: self.name.clone(),
            kind: self.kind.as_str().to_string(),
            config: masked(self.kind, &self.config),
            repeat_every_seconds: self.repeat_every_seconds,
            muted: self.muted,
            created_at: self.created_at,
            digest_schedule: self.digest_schedule.clone(),
            digest_tz: self.digest_tz.clone(),
            failing: last_error.is_some(),
            last_error,
        }
    }
}

/// The webhook URLs accepted, as the OpenAPI document states them (and then
/// parsed): `reqwest::Url` alone takes far more (`http:foo`, user info, IPv6,
/// `xn--` labels that fail later), which no schema could describe. The last host
/// label starts with a letter so the URL parser never reads the host as a
/// malformed IPv4 address.
pub const WEBHOOK_URL_PATTERN: &str = concat!(
    "^[Hh][Tt][Tt][Pp][Ss]?://",
    "(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?:\\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}",
    "|(?:[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\\.)*[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*)",
    "(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9][0-9]|6[0-4][0-9][0-9][0-9]|[1-5][0-9][0-9][0-9][0-9]|[0-9]{1,4}))?",
    "(?:/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*)?",
    "(?:\\?[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*)?$"
);

static WEBHOOK_URL: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(WEBHOOK_URL_PATTERN).expect("the webhook URL pattern compiles")
});

/// Body of `POST /api/channels` (every field but `kind` and `config` optional)
/// and of `PATCH /api/channels/{id}` (unset fields kept).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelInput {
    /// 1 to 200 characters (default: the kind).
    pub name: Option<String>,
    /// `webhook`, `http`, `email`, or a preset: `slack`, `discord`, `teams`,
    /// `mattermost`, `google_chat`, `ntfy`, `gotify`, `telegram`, `pagerduty`,
    /// `opsgenie`, `github`, `gitea`. Fixed once created.
    pub kind: Option<String>,
    /// The kind's settings (docs/notifications.md); on update, replaced whole.
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// Seconds between reminders while a heartbeat stays down; 0 or null: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i32>)]
    pub repeat_every_seconds: Option<Option<i32>>,
    pub muted: Option<bool>,
    /// When a digest of every heartbeat goes out: a five-field crontab
    /// expression such as `0 7 * * *`; null: none. Not for incident and issue
    /// tracker kinds (`pagerduty`, `opsgenie`, `github`, `gitea`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub digest_schedule: Option<Option<String>>,
    /// IANA time zone of `digest_schedule` (default `UTC`).
    pub digest_tz: Option<String>,
}

/// A field that is present (even as null) is `Some`, so an update can clear it.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A digest schedule and its zone, checked; None: no digest.
fn check_digest(
    kind: Kind,
    schedule: Option<&str>,
    tz: &str,
) -> Result<Option<String>, NotifyError> {
    let Some(expr) = schedule.map(str::trim).filter(|s| !s.is_empty()) else {
        crate::monitor::schedule::parse_tz(tz).map_err(|e| invalid(format!("digest_tz: {e}")))?;
        return Ok(None);
    };
    if let Kind::Preset(p) = kind {
        if !p.takes_digest() {
            return Err(invalid(format!(
                "digest_schedule: a {} channel opens incidents or issues, not messages; send digests to a message channel",
                p.as_str()
            )));
        }
    }
    crate::monitor::schedule::parse_tz(tz).map_err(|e| invalid(format!("digest_tz: {e}")))?;
    crate::monitor::schedule::HeartbeatSchedule::parse(expr, tz)
        .map_err(|e| invalid(format!("digest_schedule: {e}")))?;
    Ok(Some(expr.to_string()))
}

/// Longest reminder interval accepted: a year; shortest: a minute.
const MIN_REPEAT: i32 = 60;
const MAX_REPEAT: i32 = 366 * 86_400;

fn check_repeat(r: Option<i32>, min_repeat: i32) -> Result<Option<i32>, NotifyError> {
    match r {
        None | Some(0) => Ok(None),
        Some(s) if (min_repeat..=MAX_REPEAT).contains(&s) => Ok(Some(s)),
        Some(_) => Err(invalid(format!(
            "repeat_every_seconds: 0 (none) or between {min_repeat} and {MAX_REPEAT}"
        ))),
    }
}

fn check_name(name: &str) -> Result<String, NotifyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(invalid("name: must be 1 to 200 characters"));
    }
    Ok(name.to_string())
}

/// The channels a project owns, oldest first.
pub async fn list(pool: &Pool, project: Uuid) -> Result<Vec<ChannelView>, NotifyError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM heartbeat.channel c WHERE c.project_id = $1
                 ORDER BY c.created_at, c.channel_id"
            ),
            &[&project],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (c, e) = from_row(r);
            c.view(e)
        })
        .collect())
}

/// One channel of `project`.
pub async fn get(
    pool: &Pool,
    project: Uuid,
    id: Uuid,
) -> Result<(Channel, Option<String>), NotifyError> {
    let client = pool.get().await?;
    client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM heartbeat.channel c
                 WHERE c.channel_id = $1 AND c.project_id = $2"
            ),
            &[&id, &project],
        )
        .await?
        .map(|r| from_row(&r))
        .ok_or_else(|| NotifyError::NotFound(format!("no channel {id}")))
}

/// Creates a channel after checking its config; `min_repeat` is the shortest
/// reminder interval accepted.
/// `redact_scope` names the database (its connection string) for the log
/// redactor, which keeps each database's channel secrets apart.
pub async fn create(
    pool: &Pool,
    redact_scope: &str,
    project: Uuid,
    input: ChannelInput,
    min_repeat: Option<i32>,
) -> Result<ChannelView, NotifyError> {
    let kind_name = input
        .kind
        .as_deref()
        .ok_or_else(|| invalid("kind: required"))?;
    let kind = Kind::parse(kind_name).ok_or_else(|| {
        invalid(format!(
            "kind: '{kind_name}' is not one of {}",
            Kind::names().join(", ")
        ))
    })?;
    let config = input.config.unwrap_or_else(|| json!({}));
    Plan::build(kind, &config)?;
    let name = check_name(input.name.as_deref().unwrap_or(kind.as_str()))?;
    let repeat = check_repeat(
        input.repeat_every_seconds.flatten(),
        min_repeat.unwrap_or(MIN_REPEAT),
    )?;
    let digest_tz = input.digest_tz.clone().unwrap_or_else(|| "UTC".into());
    let digest = check_digest(kind, input.digest_schedule.flatten().as_deref(), &digest_tz)?;
    // Before anything can log them: from now on they are masked in every line.
    for s in secrets(kind, &config) {
        crate::ops::redact::register_webhook_secret(redact_scope, &s);
    }
    let client = pool.get().await?;
    let id = Uuid::now_v7();
    // digest_done_at defaults to now: fire times before the channel existed are
    // not owed.
    client
        .execute(
            "INSERT INTO heartbeat.channel
                 (channel_id, project_id, name, kind, config, repeat_every_seconds, muted,
                  digest_schedule, digest_tz)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &id,
                &project,
                &name,
                &kind.as_str(),
                &config,
                &repeat,
                &input.muted.unwrap_or(false),
                &digest,
                &digest_tz,
            ],
        )
        .await?;
    drop(client);
    let (c, e) = get(pool, project, id).await?;
    Ok(c.view(e))
}

/// Changes the given fields; a config is checked whole, masked secrets kept.
pub async fn update(
    pool: &Pool,
    redact_scope: &str,
    project: Uuid,
    id: Uuid,
    input: ChannelInput,
    min_repeat: Option<i32>,
) -> Result<ChannelView, NotifyError> {
    let (current, _) = get(pool, project, id).await?;
    if let Some(k) = &input.kind {
        if k != current.kind.as_str() {
            return Err(invalid("kind: cannot be changed; create a new channel"));
        }
    }
    let config = match &input.config {
        Some(c) => {
            let c = unmask(c, &current.config);
            Plan::build(current.kind, &c)?;
            for s in secrets(current.kind, &c) {
                crate::ops::redact::register_webhook_secret(redact_scope, &s);
            }
            c
        }
        None => current.config.clone(),
    };
    let name = match &input.name {
        Some(n) => check_name(n)?,
        None => current.name.clone(),
    };
    let repeat = match input.repeat_every_seconds {
        Some(r) => check_repeat(r, min_repeat.unwrap_or(MIN_REPEAT))?,
        None => current.repeat_every_seconds,
    };
    let muted = input.muted.unwrap_or(current.muted);
    let digest_tz = input
        .digest_tz
        .clone()
        .unwrap_or_else(|| current.digest_tz.clone());
    let digest_schedule = match &input.digest_schedule {
        Some(s) => s.clone(),
        None => current.digest_schedule.clone(),
    };
    let digest = check_digest(current.kind, digest_schedule.as_deref(), &digest_tz)?;
    // A new schedule or zone owes nothing for fire times before the change.
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE heartbeat.channel SET name = $2, config = $3, repeat_every_seconds = $4,
                 muted = $5, digest_schedule = $6, digest_tz = $7,
                 digest_done_at = CASE
                     WHEN digest_schedule IS DISTINCT FROM $6 OR digest_tz <> $7
                     THEN greatest(digest_done_at, now()) ELSE digest_done_at END
             WHERE channel_id = $1",
            &[&id, &name, &config, &repeat, &muted, &digest, &digest_tz],
        )
        .await?;
    drop(client);
    let (c, e) = get(pool, project, id).await?;
    Ok(c.view(e))
}

/// Deletes a channel with its outbox rows and history; its secrets leave the log
/// redactor (unless another channel still holds them), so the redactor's list
/// stays as small as the channel table.
pub async fn delete(
    pool: &Pool,
    redact_scope: &str,
    project: Uuid,
    id: Uuid,
) -> Result<(), NotifyError> {
    let client = pool.get().await?;
    let n = client
        .execute(
            "DELETE FROM heartbeat.channel WHERE channel_id = $1 AND project_id = $2",
            &[&id, &project],
        )
        .await?;
    if n == 0 {
        return Err(NotifyError::NotFound(format!("no channel {id}")));
    }
    drop(client);
    register_secrets(pool, redact_scope).await?;
    Ok(())
}

/// Channels whose most recent delivery attempt failed (what `failing` says in
/// the API), counted per kind; every kind is listed, 0 when none fails, so a
/// gauge fed from this never keeps a stale value.
pub async fn failing_by_kind(pool: &Pool) -> Result<Vec<(&'static str, u64)>, NotifyError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT c.kind, count(*) FROM heartbeat.channel c
             WHERE (SELECT d.error FROM heartbeat.alert a
                    JOIN heartbeat.delivery_attempt d USING (alert_id)
                    WHERE a.channel_id = c.channel_id
                    ORDER BY d.at DESC, d.alert_id DESC LIMIT 1) IS NOT NULL
             GROUP BY c.kind",
            &[],
        )
        .await?;
    Ok(Kind::names()
        .into_iter()
        .map(|k| {
            let n = rows
                .iter()
                .find(|r| r.get::<_, &str>(0) == k)
                .map(|r| r.get::<_, i64>(1).max(0) as u64)
                .unwrap_or(0);
            (k, n)
        })
        .collect())
}

/// Makes the log redactor's channel secrets for this database exactly those the
/// channel table holds: channels made before this start or on another node are
/// masked from now on, deleted ones forgotten. `redact_scope` names the database.
pub async fn register_secrets(pool: &Pool, redact_scope: &str) -> Result<usize, NotifyError> {
    let client = pool.get().await?;
    // Taken before the read: a secret registered while it runs is kept.
    let mark = crate::ops::redact::resync_mark();
    let rows = client
        .query("SELECT kind, config FROM heartbeat.channel", &[])
        .await?;
    let mut all = Vec::new();
    for row in &rows {
        let kind: String = row.get(0);
        let config: Value = row.get(1);
        if let Some(kind) = Kind::parse(&kind) {
            all.extend(secrets(kind, &config));
        }
    }
    crate::ops::redact::replace_webhook_secrets(redact_scope, mark, all.iter().map(String::as_str));
    Ok(all.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_webhook_url_the_pattern_takes_parses_as_http() {
        for good in [
            "http://127.0.0.1:9/hook",
            "https://hooks.example/created",
            "HTTPS://a-b.c0.Example:65535/x/y;z=1@%20",
            "http://localhost",
            "http://x1.a2",
            "https://hooks.example/in?token=abc&x=1",
        ] {
            assert!(WEBHOOK_URL.is_match(good), "{good}");
            let url = reqwest::Url::parse(good).unwrap();
            assert!(matches!(url.scheme(), "http" | "https"), "{good}");
        }
        for bad in [
            "",
            "ftp://x",
            "not a url",
            "http://",
            "http://1.2.3.999/",
            "http://a.0x/",
            "http://u:p@host/",
            "http://host:65536/",
            "http://host/#frag",
            "http://[::1]/",
            "http://a..b/",
        ] {
            assert!(!WEBHOOK_URL.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn secrets_are_masked_and_a_sent_back_mask_keeps_the_stored_value() {
        let kind = Kind::Preset(Preset::Pagerduty);
        let config = json!({"routing_key": "R0123456789abcdef", "url": "https://x.test"});
        let shown = masked(kind, &config);
        assert_eq!(shown["routing_key"], MASK);
        assert_eq!(shown["url"], "https://x.test");
        assert_eq!(unmask(&shown, &config), config);
        assert_eq!(
            secrets(kind, &config),
            vec!["R0123456789abcdef".to_string()]
        );
        let http = json!({"down": {"url": "https://x", "headers": {"Authorization": "Bearer abc", "Content-Type": "text/plain"}}});
        let shown = masked(Kind::Http, &http);
        assert_eq!(shown["down"]["headers"]["Authorization"], MASK);
        assert_eq!(shown["down"]["headers"]["Content-Type"], "text/plain");
    }

    #[test]
    fn an_http_template_with_an_unknown_placeholder_is_refused() {
        let config = json!({"down": {"url": "https://x.test/$NAME", "body": "$WHO"}});
        let err = Plan::build(Kind::Http, &config).unwrap_err();
        assert!(err.to_string().contains("$WHO"), "{err}");
    }
}
