//! A heartbeat as healthchecks.io's Management API shows a check (its
//! `Check.to_dict`, documented at healthchecks.io/docs/api/): field names and
//! types as healthchecks.io writes them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::monitor::heartbeat::Heartbeat;
use crate::monitor::status::Status;

/// Which Management API version answers (they differ in a few fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    V2,
    V3,
}

impl ApiVersion {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "v1" => Some(Self::V1),
            "v2" => Some(Self::V2),
            "v3" => Some(Self::V3),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
            Self::V3 => "v3",
        }
    }
}

/// healthchecks.io's status words: `new` for a never-pinged check, `grace` for a
/// late one.
pub fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pending => "new",
        Status::Up => "up",
        Status::Late => "grace",
        Status::Down => "down",
        Status::Paused => "paused",
    }
}

/// What a check shows beyond the heartbeat row: the fields Heartbeat stores
/// without acting on them (see docs/healthchecks-compat.md) and a few read
/// from other tables.
#[derive(Debug, Clone, Default)]
pub struct HcFields {
    pub desc: String,
    pub methods: String,
    pub manual_resume: bool,
    /// E-mail subjects and keyword filters, by field name.
    pub extra: Map<String, Value>,
    /// The ids of the channels the heartbeat alerts, comma-separated and
    /// sorted, as healthchecks.io lists them.
    pub channels: String,
    /// Seconds the last timed run took (a finish ping after its start).
    pub last_duration: Option<i64>,
    /// Names the heartbeat's own badge (`/b/<2|3>/<badge_uuid>.svg`).
    pub badge_uuid: Uuid,
}

/// One check. `uuid` and the URLs are shown to read-write keys; read-only keys
/// get `unique_key` instead (healthchecks.io's rule: the UUID lets its holder ping).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckJson {
    pub name: String,
    pub slug: String,
    /// The heartbeat's tags, space-separated; filters `GET checks/?tag=` and
    /// names badges.
    pub tags: String,
    /// Accepted and returned, no effect.
    pub desc: String,
    /// Seconds.
    pub grace: i64,
    pub n_pings: i64,
    /// `new`, `up`, `grace`, `down` or `paused`; v1 also `started`.
    pub status: &'static str,
    /// A start ping not yet followed by a finish.
    pub started: bool,
    pub last_ping: Option<String>,
    pub next_ping: Option<String>,
    /// Stored and returned; no effect: a ping resumes no paused heartbeat in
    /// Heartbeat, whatever this says.
    pub manual_resume: bool,
    /// Accepted and returned, no effect.
    pub methods: String,
    /// The heartbeat's own badge (2-state SVG); no key needed to fetch it.
    pub badge_url: String,
    /// Seconds the last timed run took.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_duration: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uuid: Option<Uuid>,
    /// Read-write keys only: the ids of the channels it alerts, comma-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resume_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unique_key: Option<String>,
    /// Seconds; only for period-based checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Only for cron-based checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tz: Option<String>,
    /// E-mail subjects and keyword filters as given (no effect).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub extra: Map<String, Value>,
}

/// healthchecks.io's `isostring`: whole seconds, `+00:00`.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Where one Management API version and the ping URLs are reached.
pub struct Urls<'a> {
    /// `http://host:port`.
    pub base: &'a str,
    /// `/ping` (or the configured prefix).
    pub ping_prefix: &'a str,
    pub version: ApiVersion,
}

/// `hb` as a check at `now`, for a read-write key (`readonly` false) or a
/// read-only one; `n_pings` is its ping count.
pub fn to_check(
    hb: &Heartbeat,
    n_pings: i64,
    fields: &HcFields,
    now: DateTime<Utc>,
    readonly: bool,
    urls: &Urls,
) -> CheckJson {
    let e = hb.evaluate(now);
    let api = format!(
        "{}/api/{}/checks/{}",
        urls.base,
        urls.version.as_str(),
        hb.ping_uuid
    );
    let rw = |s: String| (!readonly).then_some(s);
    // v1 reports a running check as `started`; v2 and v3 only in `started`.
    let status = match e.status {
        Status::Up | Status::Late | Status::Pending
            if urls.version == ApiVersion::V1 && hb.started_at.is_some() =>
        {
            "started"
        }
        s => status_word(s),
    };
    CheckJson {
        name: hb.name.clone(),
        slug: hb.slug.clone(),
        tags: hb.tags.join(" "),
        desc: fields.desc.clone(),
        grace: hb.grace_seconds.into(),
        n_pings,
        status,
        started: hb.started_at.is_some(),
        last_ping: hb.last_ping_at.map(iso),
        next_ping: e.due_at.map(iso),
        manual_resume: fields.manual_resume,
        methods: fields.methods.clone(),
        badge_url: format!("{}/b/2/{}.svg", urls.base, fields.badge_uuid),
        last_duration: fields.last_duration,
        uuid: (!readonly).then_some(hb.ping_uuid),
        channels: (!readonly).then(|| fields.channels.clone()),
        ping_url: rw(format!(
            "{}{}/{}",
            urls.base, urls.ping_prefix, hb.ping_uuid
        )),
        update_url: rw(api.clone()),
        pause_url: rw(format!("{api}/pause")),
        resume_url: rw(format!("{api}/resume")),
        unique_key: readonly.then(|| unique_key(hb.ping_uuid)),
        timeout: hb.period_seconds.map(i64::from),
        schedule: hb.schedule.clone(),
        tz: hb.schedule.as_ref().map(|_| hb.tz.clone()),
        extra: fields.extra.clone(),
    }
}

/// A stable identifier that names a check without letting its holder ping it:
/// 40 hex digits of SHA-256 of the UUID (healthchecks.io uses SHA-1 of it; clients
/// rely only on its being stable and opaque).
pub fn unique_key(uuid: Uuid) -> String {
    let digest = Sha256::digest(uuid.to_string().as_bytes());
    digest.iter().take(20).map(|b| format!("{b:02x}")).collect()
}
