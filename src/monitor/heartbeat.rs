//! The heartbeat record, its token, and the JSON the API answers with.

use std::fmt;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::schedule::HeartbeatSchedule;
use super::status::{
    evaluate, Cause, Evaluation, Expectation, Rules, Run, Signals, Status, StoredStatus, Streaks,
    Thresholds,
};
use super::withhold::Withheld;

/// `hb_` followed by 16 URL-safe base64 characters (96 random bits).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeartbeatToken(String);

impl HeartbeatToken {
    const PREFIX: &'static str = "hb_";

    /// A fresh token from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(format!(
            "{}{}",
            Self::PREFIX,
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        ))
    }

    /// Accepts only the exact shape; anything else cannot name a heartbeat.
    pub fn parse(s: &str) -> Option<Self> {
        let rest = s.strip_prefix(Self::PREFIX)?;
        let ok = rest.len() == 16
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HeartbeatToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A heartbeat's tags: at most [`Tags::MAX`], each 1 to [`Tags::MAX_CHARS`]
/// characters of ASCII letters, digits and `-_.:/`, so a tag is safe in a URL query,
/// a shell line and a label; sorted, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tags(Vec<String>);

/// Why a list of tags (or one tag) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("at most {} tags", Tags::MAX)]
    TooMany,
    #[error("'{0}' is not a tag: 1 to {max} characters of letters, digits and -_.:/", max = Tags::MAX_CHARS)]
    Malformed(String),
}

impl Tags {
    pub const MAX: usize = 20;
    pub const MAX_CHARS: usize = 50;

    pub fn parse(raw: &[String]) -> Result<Self, TagError> {
        let mut tags = raw
            .iter()
            .map(|t| Self::parse_one(t))
            .collect::<Result<Vec<_>, _>>()?;
        tags.sort();
        tags.dedup();
        if tags.len() > Self::MAX {
            return Err(TagError::TooMany);
        }
        Ok(Self(tags))
    }

    /// One tag, as a filter names it.
    pub fn parse_one(raw: &str) -> Result<String, TagError> {
        let ok = (1..=Self::MAX_CHARS).contains(&raw.chars().count())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c));
        if ok {
            Ok(raw.to_string())
        } else {
            Err(TagError::Malformed(raw.to_string()))
        }
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// The columns every heartbeat query selects, in [`Heartbeat::from_row`]'s order.
pub const COLUMNS: &str = "heartbeat_id, project_id, name, token, period_seconds, schedule, tz, \
     grace_seconds, paused, created_at, resumed_at, last_ping_at, last_ping_kind, \
     last_signal_at, last_signal_failed, started_at, status, deadline, channels, \
     failure_threshold, recovery_threshold, fail_streak, ok_streak, failing, failing_since, \
     missed_at, tags, ping_uuid, slug, start_margin_seconds, max_runtime_seconds, \
     min_interval_seconds, min_runtime_seconds, runs, failing_cause, early_before, parents, \
     held_flip_id, held_by";

/// One heartbeat row.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub id: Uuid,
    pub project_id: Uuid,
    pub name: String,
    pub token: String,
    pub period_seconds: Option<i32>,
    pub schedule: Option<String>,
    pub tz: String,
    pub grace_seconds: i32,
    pub paused: bool,
    pub created_at: DateTime<Utc>,
    pub resumed_at: Option<DateTime<Utc>>,
    pub last_ping_at: Option<DateTime<Utc>>,
    pub last_ping_kind: Option<String>,
    pub last_signal_at: Option<DateTime<Utc>>,
    pub last_signal_failed: bool,
    pub started_at: Option<DateTime<Utc>>,
    /// The status as of the last flip.
    pub stored_status: StoredStatus,
    pub deadline: Option<DateTime<Utc>>,
    /// The channels its alerts go to; None: every channel of its project.
    pub channels: Option<Vec<Uuid>>,
    pub thresholds: Thresholds,
    /// As of the last ping or counted miss; [`Heartbeat::evaluate`] adds the
    /// misses since.
    pub streaks: Streaks,
    pub tags: Vec<String>,
    /// The healthchecks.io-style check UUID: pinging `/ping/<uuid>` needs nothing
    /// else, so it is a secret like the token.
    pub ping_uuid: Uuid,
    /// a-z, 0-9, `-`, `_`; not unique (`/ping/<ping_key>/<slug>`).
    pub slug: String,
    /// The detection rules beyond period and grace.
    pub limits: Limits,
    /// Runs started with a `rid` and not finished (while a run-time rule is on).
    pub runs: Vec<Run>,
    /// Schedule heartbeats with a start margin: a success before this is early.
    pub early_before: Option<DateTime<Utc>>,
    /// Heartbeats of its project whose being down withholds its alerts.
    pub parents: Vec<Uuid>,
    /// A down flip whose alert was withheld and is still owed, and why.
    pub held_flip_id: Option<i64>,
    pub held_by: Option<Withheld>,
}

/// The detection rules a heartbeat may switch on, in seconds (None: off); see
/// docs/monitoring.md.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub start_margin_seconds: Option<i32>,
    pub max_runtime_seconds: Option<i32>,
    pub min_interval_seconds: Option<i32>,
    pub min_runtime_seconds: Option<i32>,
}

impl Limits {
    /// The ones the deadline loop applies.
    pub fn rules(&self) -> Rules {
        let secs = |s: Option<i32>| s.map(|s| Duration::seconds(s.into()));
        Rules {
            start_margin: secs(self.start_margin_seconds),
            max_runtime: secs(self.max_runtime_seconds),
        }
    }
}

impl Heartbeat {
    pub fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            project_id: row.get(1),
            name: row.get(2),
            token: row.get(3),
            period_seconds: row.get(4),
            schedule: row.get(5),
            tz: row.get(6),
            grace_seconds: row.get(7),
            paused: row.get(8),
            created_at: row.get(9),
            resumed_at: row.get(10),
            last_ping_at: row.get(11),
            last_ping_kind: row.get(12),
            last_signal_at: row.get(13),
            last_signal_failed: row.get(14),
            started_at: row.get(15),
            stored_status: row.get(16),
            deadline: row.get(17),
            channels: row.get(18),
            thresholds: Thresholds {
                failure: row.get(19),
                recovery: row.get(20),
            },
            streaks: Streaks {
                fail: row.get(21),
                ok: row.get(22),
                failing: row.get(23),
                failing_since: row.get(24),
                missed_at: row.get(25),
                cause: row.get(34),
            },
            tags: row.get(26),
            ping_uuid: row.get(27),
            slug: row.get(28),
            limits: Limits {
                start_margin_seconds: row.get(29),
                max_runtime_seconds: row.get(30),
                min_interval_seconds: row.get(31),
                min_runtime_seconds: row.get(32),
            },
            runs: runs_from_json(row.get(33)),
            early_before: row.get(35),
            parents: row.get(36),
            held_flip_id: row.get(37),
            held_by: row.get(38),
        }
    }

    /// Whether this is one of the daemon's own job heartbeats (`super::selfcheck`).
    pub fn is_job(&self) -> bool {
        self.project_id == super::SYSTEM_PROJECT && self.name.starts_with("job:")
    }

    /// The expectation; a schedule that no longer parses (it was validated on the
    /// way in) falls back to a day so the heartbeat still watches something.
    pub fn expectation(&self) -> Expectation {
        match (&self.schedule, self.period_seconds) {
            (Some(expr), _) => match HeartbeatSchedule::parse(expr, &self.tz) {
                Ok(s) => Expectation::Schedule(Box::new(s)),
                Err(_) => Expectation::Period(Duration::days(1)),
            },
            (None, Some(p)) => Expectation::Period(Duration::seconds(p.into())),
            (None, None) => Expectation::Period(Duration::days(1)),
        }
    }

    pub fn signals(&self) -> Signals {
        Signals {
            paused: self.paused,
            resumed_at: self.resumed_at,
            last_signal_at: self.last_signal_at,
            last_signal_failed: self.last_signal_failed,
            started_at: self.started_at,
            streaks: self.streaks.clone(),
            thresholds: self.thresholds,
            rules: self.limits.rules(),
            runs: self.runs.clone(),
        }
    }

    pub fn evaluate(&self, now: DateTime<Utc>) -> Evaluation {
        evaluate(
            &self.expectation(),
            Duration::seconds(self.grace_seconds.into()),
            &self.signals(),
            now,
        )
    }

    /// The API view at `now`; `base_url` is where cron clients reach the daemon.
    pub fn view(&self, now: DateTime<Utc>, base_url: &str) -> HeartbeatView {
        let e = self.evaluate(now);
        let ping_url = format!("{}/hb/{}", base_url.trim_end_matches('/'), self.token);
        let cron_fields = self
            .schedule
            .clone()
            .unwrap_or_else(|| crontab_for_period(self.period_seconds.unwrap_or(86_400)));
        HeartbeatView {
            id: self.id,
            uuid: self.ping_uuid,
            slug: self.slug.clone(),
            name: self.name.clone(),
            status: e.status,
            period_seconds: self.period_seconds,
            grace_seconds: self.grace_seconds,
            schedule: self.schedule.clone(),
            tz: self.tz.clone(),
            paused: self.paused,
            last_ping_at: self.last_ping_at,
            last_ping_kind: self.last_ping_kind.clone(),
            next_due_at: e.due_at,
            next_deadline: e.down_at,
            status_since: e.since,
            failure_threshold: self.thresholds.failure,
            recovery_threshold: self.thresholds.recovery,
            failure_streak: e.streaks.fail,
            success_streak: e.streaks.ok,
            down_cause: e.streaks.failing.then_some(e.streaks.cause).flatten(),
            start_margin_seconds: self.limits.start_margin_seconds,
            max_runtime_seconds: self.limits.max_runtime_seconds,
            min_interval_seconds: self.limits.min_interval_seconds,
            min_runtime_seconds: self.limits.min_runtime_seconds,
            open_runs: e.runs.clone(),
            parents: self.parents.clone(),
            silenced_until: None,
            alert_withheld: self.held_by,
            tags: self.tags.clone(),
            curl: format!("curl -fsS -m 10 --retry 5 -o /dev/null {ping_url}"),
            crontab: format!(
                "{cron_fields} heartbeat run --ping-url {ping_url} -- /path/to/your/command"
            ),
            ping_url,
            created_at: self.created_at,
            channels: match &self.channels {
                None => serde_json::json!("all"),
                Some(ids) => serde_json::json!(ids),
            },
            job: self.is_job(),
        }
    }
}

/// A heartbeat to create: validated fields (the API checks them on the way in).
#[derive(Debug, Clone)]
pub struct NewHeartbeat {
    pub name: String,
    /// None: derived from the name (by the `heartbeat_derive_slug` trigger).
    pub slug: Option<String>,
    pub period_seconds: Option<i32>,
    pub schedule: Option<String>,
    pub tz: String,
    pub grace_seconds: i32,
    pub paused: bool,
    /// The channels its alerts go to; None: every channel of its project.
    pub channels: Option<Vec<Uuid>>,
    pub thresholds: Thresholds,
    pub tags: Vec<String>,
    pub limits: Limits,
    /// Checked by `super::dependency::check_parents`.
    pub parents: Vec<Uuid>,
}

/// Why a heartbeat was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("this project already has {count} heartbeats; the limit is {limit} per project")]
    Limit { count: i64, limit: i64 },
    #[error("a heartbeat named '{0}' already exists in this project")]
    NameTaken(String),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

const INSERT_HEARTBEAT: &str = "
INSERT INTO heartbeat.heartbeat (heartbeat_id, project_id, name, token, period_seconds,
                                 schedule, tz, grace_seconds, paused, status, slug, channels,
                                 failure_threshold, recovery_threshold, tags,
                                 start_margin_seconds, max_runtime_seconds, min_interval_seconds,
                                 min_runtime_seconds, parents)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $9 THEN 'paused' ELSE 'pending' END,
        $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
ON CONFLICT (project_id, name) DO NOTHING";

/// Creates `new` in `project_id` unless the project already holds `limit`
/// heartbeats; returns its id. The project row lock serializes creates, so the
/// limit holds under races.
pub async fn create(
    client: &mut deadpool_postgres::Client,
    project_id: Uuid,
    new: &NewHeartbeat,
    limit: i64,
) -> Result<Uuid, CreateError> {
    let tx = client.transaction().await?;
    tx.execute(
        "SELECT 1 FROM heartbeat.project WHERE project_id = $1 FOR UPDATE",
        &[&project_id],
    )
    .await?;
    let count: i64 = tx
        .query_one(
            "SELECT count(*) FROM heartbeat.heartbeat WHERE project_id = $1",
            &[&project_id],
        )
        .await?
        .get(0);
    if count >= limit {
        return Err(CreateError::Limit { count, limit });
    }
    let id = Uuid::now_v7();
    let token = HeartbeatToken::generate();
    let inserted = tx
        .execute(
            INSERT_HEARTBEAT,
            &[
                &id,
                &project_id,
                &new.name,
                &token.as_str(),
                &new.period_seconds,
                &new.schedule,
                &new.tz,
                &new.grace_seconds,
                &new.paused,
                &new.slug,
                &new.channels,
                &new.thresholds.failure,
                &new.thresholds.recovery,
                &new.tags,
                &new.limits.start_margin_seconds,
                &new.limits.max_runtime_seconds,
                &new.limits.min_interval_seconds,
                &new.limits.min_runtime_seconds,
                &new.parents,
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(CreateError::NameTaken(new.name.clone()));
    }
    tx.commit().await?;
    Ok(id)
}

/// The stored `runs` (`[[rid, started_at], ...]`); an entry that does not
/// read is skipped (the column is only written by `heartbeat.fold_pings` and
/// the deadline loop).
fn runs_from_json(value: serde_json::Value) -> Vec<Run> {
    let Some(list) = value.as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|e| {
            let rid = e.get(0)?.as_str()?.parse().ok()?;
            let started_at = e.get(1)?.as_str()?.parse().ok()?;
            Some(Run { rid, started_at })
        })
        .collect()
}

/// Heartbeat `id` if it belongs to `project` (to any project when `any_project`,
/// as an admin sees them): the one lookup behind every route on one heartbeat.
pub async fn find_visible(
    client: &tokio_postgres::Client,
    id: Uuid,
    project: Uuid,
    any_project: bool,
) -> Result<Option<Heartbeat>, tokio_postgres::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM heartbeat.heartbeat WHERE heartbeat_id = $1 AND (project_id = $2 OR $3)"
    );
    Ok(client
        .query_opt(&sql, &[&id, &project, &any_project])
        .await?
        .map(|r| Heartbeat::from_row(&r)))
}

/// Deletes heartbeat `id` with its history. Its children lose it from their
/// `parents`, and those owing a down alert it withheld are handed to the
/// deadline loop at once (a trigger does both, for every way of deleting;
/// migration 0021, docs/monitoring.md "Dependencies").
pub async fn delete(
    client: &tokio_postgres::Client,
    id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "DELETE FROM heartbeat.heartbeat WHERE heartbeat_id = $1",
            &[&id],
        )
        .await?;
    Ok(())
}

/// `runs` as the column stores it.
pub fn runs_to_json(runs: &[Run]) -> String {
    serde_json::Value::Array(
        runs.iter()
            .map(|r| serde_json::json!([r.rid, r.started_at]))
            .collect(),
    )
    .to_string()
}

/// The closest crontab line to a period, for the ready-to-paste example.
fn crontab_for_period(seconds: i32) -> String {
    let minutes = seconds / 60;
    match minutes {
        m if m <= 1 => "* * * * *".into(),
        m if m < 60 && 60 % m == 0 => format!("*/{m} * * * *"),
        60 => "0 * * * *".into(),
        m if m % 60 == 0 && m < 1440 && 24 % (m / 60) == 0 => format!("0 */{} * * *", m / 60),
        1440 => "0 0 * * *".into(),
        10080 => "0 0 * * 0".into(),
        _ => "0 0 * * *".into(),
    }
}

/// A heartbeat as the API shows it (docs/api.md, "Heartbeat JSON").
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HeartbeatView {
    pub id: Uuid,
    /// The check UUID healthchecks.io clients ping at `/ping/{uuid}` (a secret,
    /// like the token).
    pub uuid: Uuid,
    /// What `/ping/{ping_key}/{slug}` names: derived from the name.
    pub slug: String,
    pub name: String,
    /// Computed from time at read.
    pub status: Status,
    /// Seconds between expected pings; null when a cron schedule is used.
    pub period_seconds: Option<i32>,
    /// Seconds past the expected time before the heartbeat is down.
    pub grace_seconds: i32,
    /// Five-field cron expression; null when a period is used.
    pub schedule: Option<String>,
    /// IANA time zone the schedule is read in.
    pub tz: String,
    pub paused: bool,
    pub last_ping_at: Option<DateTime<Utc>>,
    /// `success`, `fail`, `start` or `log`.
    pub last_ping_kind: Option<String>,
    /// When the next ping is expected; after it the heartbeat is late.
    pub next_due_at: Option<DateTime<Utc>>,
    /// The deadline: after it the heartbeat is down.
    pub next_deadline: Option<DateTime<Utc>>,
    /// When the current status began, when known.
    pub status_since: Option<DateTime<Utc>>,
    /// Failures in a row (fail pings, non-zero exit codes, missed deadlines)
    /// that take it down; 1 to 100.
    pub failure_threshold: i32,
    /// Successes in a row that bring it back up; 1 to 100.
    pub recovery_threshold: i32,
    /// The current run of failures, missed deadlines up to now included; 0
    /// after a success.
    pub failure_streak: i32,
    /// The current run of successes; 0 after a failure.
    pub success_streak: i32,
    /// While down: what took it down (`fail`, `missed`, `timeout`, `early`,
    /// `too_fast`).
    pub down_cause: Option<Cause>,
    /// Schedule heartbeats: seconds around a fire time within which a run must
    /// start (else `missed`); a success earlier is `early`. Null: off.
    pub start_margin_seconds: Option<i32>,
    /// Seconds a started run may take before it is a `timeout`, each `rid` on
    /// its own clock. Null: off (an unfinished start is timed by the grace).
    pub max_runtime_seconds: Option<i32>,
    /// A success sooner than this after the previous one is `early`. Null: off.
    pub min_interval_seconds: Option<i32>,
    /// A run that finishes sooner than this after its start is `too_fast`.
    /// Null: off.
    pub min_runtime_seconds: Option<i32>,
    /// Runs started with a `rid` and not finished yet, oldest first (kept while
    /// `max_runtime_seconds` or `min_runtime_seconds` is on).
    pub open_runs: Vec<Run>,
    /// Heartbeats of its project whose being down withholds its alerts
    /// (`suppressed`).
    pub parents: Vec<Uuid>,
    /// While a silence covers it: when that silence ends.
    pub silenced_until: Option<DateTime<Utc>>,
    /// Its down alert is owed, withheld by a silence or a parent that is down:
    /// it goes out once nothing withholds it, if it is still down then.
    pub alert_withheld: Option<Withheld>,
    /// Free-form labels, sorted (`GET /api/heartbeats?tag=` filters on one).
    pub tags: Vec<String>,
    /// Where cron jobs ping (`/hb/{token}`).
    pub ping_url: String,
    /// A ready-to-paste curl command that pings.
    pub curl: String,
    /// A ready-to-paste crontab line wrapping a command with `heartbeat run`.
    pub crontab: String,
    pub created_at: DateTime<Utc>,
    /// Where its alerts go: `"all"` the project's channels, or a list of channel
    /// ids (`[]`: none).
    #[schema(schema_with = routing_schema)]
    pub channels: serde_json::Value,
    /// One of the daemon's own `job:*` heartbeats: it can be paused, not deleted
    /// or re-timed (its timing is the cron table's).
    pub job: bool,
}

/// `channels` as the API shows it: `"all"` or a list of channel ids.
fn routing_schema() -> utoipa::openapi::schema::Schema {
    serde_json::from_value(serde_json::json!({
        "anyOf": [
            {"type": "string", "enum": ["all"]},
            {"type": "array", "items": {"type": "string", "format": "uuid"}}
        ],
        "description": "Where its alerts go: \"all\" the project's channels, or a list of channel ids ([]: none)"
    }))
    .expect("the routing schema is a schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_documented_shape_and_differ() {
        let a = HeartbeatToken::generate();
        let b = HeartbeatToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 19);
        assert_eq!(HeartbeatToken::parse(a.as_str()), Some(a));
    }

    #[test]
    fn malformed_tokens_are_refused() {
        for bad in [
            "",
            "hb_",
            "hb_short",
            "xx_AAAAAAAAAAAAAAAA",
            "hb_AAAAAAAAAAAAAAA/",
            "hb_AAAAAAAAAAAAAAAAA",
        ] {
            assert!(HeartbeatToken::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn tags_are_sorted_deduplicated_and_bounded() {
        let raw = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Tags::parse(&raw(&["prod", "db:main", "prod", "eu-west/1"]))
                .unwrap()
                .as_slice(),
            ["db:main", "eu-west/1", "prod"]
        );
        assert_eq!(Tags::parse(&[]).unwrap().as_slice(), [] as [String; 0]);
        for bad in ["", "has space", "a,b", "x&y", &"t".repeat(51)] {
            assert!(Tags::parse(&raw(&[bad])).is_err(), "{bad}");
        }
        assert!(Tags::parse_one(&"t".repeat(50)).is_ok());
        let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
        assert_eq!(Tags::parse(&many), Err(TagError::TooMany));
        assert!(Tags::parse(&many[..20]).is_ok());
    }

    #[test]
    fn crontab_lines_follow_the_period() {
        assert_eq!(crontab_for_period(300), "*/5 * * * *");
        assert_eq!(crontab_for_period(3600), "0 * * * *");
        assert_eq!(crontab_for_period(86_400), "0 0 * * *");
    }
}
