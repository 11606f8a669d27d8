//! The checks healthchecks.io's Management API reads and writes, in the
//! database: a check is a heartbeat row, found by its `ping_uuid` (or, for a
//! read-only key, by the `unique_key` derived from it) and always within the
//! caller's project. The HTTP edge (`super::api_routes`) only maps these
//! answers to healthchecks.io's.

use deadpool_postgres::Pool;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::check::{unique_key, HcFields};
use super::spec::{Channels, CheckSpec, UniqueField};
use crate::monitor::heartbeat::{self, CreateError, Heartbeat, NewHeartbeat, COLUMNS};
use crate::monitor::schedule::HeartbeatSchedule;

/// What every check query selects: the heartbeat's columns, then its ping
/// count, the healthchecks.io fields, the channels it alerts (its own list, or
/// every channel of its project) as healthchecks.io lists them, and the
/// duration of its last timed run, in [`StoredCheck::from_row`]'s order.
fn select() -> String {
    format!(
        "SELECT {COLUMNS}, ping_seq, hc_desc, hc_methods, hc_manual_resume, hc_extra, \
         coalesce((SELECT string_agg(c.channel_id::text, ',' ORDER BY c.channel_id::text) \
                   FROM heartbeat.channel c \
                   WHERE c.project_id = h.project_id \
                     AND (h.channels IS NULL OR c.channel_id = ANY(h.channels))), ''), \
         (SELECT p.duration_ms FROM heartbeat.ping p \
          WHERE p.heartbeat_id = h.heartbeat_id AND p.kind IN ('success', 'fail') \
          ORDER BY p.seq DESC LIMIT 1), \
         badge_uuid \
         FROM heartbeat.heartbeat h"
    )
}

/// A new check's timing when the body gives none: healthchecks.io's defaults.
const DEFAULT_TIMEOUT: i64 = 86_400;
const DEFAULT_GRACE: i64 = 3_600;

/// The database could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// A heartbeat, its ping count (`n_pings`) and the healthchecks.io fields it
/// was given.
#[derive(Debug)]
pub struct StoredCheck {
    pub hb: Heartbeat,
    pub n_pings: i64,
    pub fields: HcFields,
}

impl StoredCheck {
    fn from_row(row: &tokio_postgres::Row) -> Self {
        // The extra columns follow the heartbeat's.
        let n = COLUMNS.split(',').count();
        let extra: Value = row.get(n + 4);
        let last_duration_ms: Option<i64> = row.get(n + 6);
        Self {
            hb: Heartbeat::from_row(row),
            n_pings: row.get(n),
            fields: HcFields {
                desc: row.get(n + 1),
                methods: row.get(n + 2),
                manual_resume: row.get(n + 3),
                extra: match extra {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
                channels: row.get(n + 5),
                last_duration: last_duration_ms.map(|ms| ms / 1000),
                badge_uuid: row.get(n + 7),
            },
        }
    }
}

/// What a check code names, seen from one project.
#[derive(Debug)]
pub enum Lookup {
    Found(Box<StoredCheck>),
    /// No check has this code.
    NotFound,
    /// Another project's check (healthchecks.io answers 403).
    OtherProject,
}

/// The project's checks, oldest first.
pub async fn list(pool: &Pool, project_id: Uuid) -> Result<Vec<StoredCheck>, StoreError> {
    let client = pool.get().await?;
    let sql = format!(
        "{} WHERE project_id = $1 ORDER BY created_at, heartbeat_id",
        select()
    );
    let rows = client.query(&sql, &[&project_id]).await?;
    Ok(rows.iter().map(StoredCheck::from_row).collect())
}

/// The check whose UUID is `code`, or (when `by_unique_key`) whose
/// `unique_key` is `code`, as `project_id` may see it.
pub async fn find(
    pool: &Pool,
    project_id: Uuid,
    code: &str,
    by_unique_key: bool,
) -> Result<Lookup, StoreError> {
    let client = pool.get().await?;
    // Only the canonical form is a UUID here, as in healthchecks.io's routes.
    let found = match crate::hc::ping::canonical_uuid(code) {
        Some(uuid) => {
            let sql = format!("{} WHERE ping_uuid = $1", select());
            client
                .query_opt(&sql, &[&uuid])
                .await?
                .map(|r| StoredCheck::from_row(&r))
        }
        None if by_unique_key => {
            // A unique_key is a digest: it is found among the project's checks.
            let sql = format!("{} WHERE project_id = $1", select());
            client
                .query(&sql, &[&project_id])
                .await?
                .iter()
                .map(StoredCheck::from_row)
                .find(|c| unique_key(c.hb.ping_uuid) == code)
        }
        None => None,
    };
    Ok(match found {
        None => Lookup::NotFound,
        Some(c) if c.hb.project_id != project_id => Lookup::OtherProject,
        Some(c) => Lookup::Found(Box::new(c)),
    })
}

/// The check with heartbeat id `id`.
pub async fn find_by_id(pool: &Pool, id: Uuid) -> Result<Option<StoredCheck>, StoreError> {
    let client = pool.get().await?;
    let sql = format!("{} WHERE heartbeat_id = $1", select());
    Ok(client
        .query_opt(&sql, &[&id])
        .await?
        .map(|r| StoredCheck::from_row(&r)))
}

/// Deletes the heartbeat (its pings and flips go with it).
pub async fn delete(pool: &Pool, heartbeat_id: Uuid) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute(
            "DELETE FROM heartbeat.heartbeat WHERE heartbeat_id = $1",
            &[&heartbeat_id],
        )
        .await?;
    Ok(())
}

/// Pausing and resuming as `PATCH /api/heartbeats` does it (the deadline loop
/// re-evaluates at once).
const SET_PAUSED: &str = "
UPDATE heartbeat.heartbeat SET
    paused = $2,
    resumed_at = CASE WHEN paused AND NOT $2 THEN now() ELSE resumed_at END,
    deadline = now()
WHERE heartbeat_id = $1";

/// Pauses or resumes the heartbeat.
pub async fn set_paused(pool: &Pool, heartbeat_id: Uuid, paused: bool) -> Result<(), StoreError> {
    let client = pool.get().await?;
    client
        .execute(SET_PAUSED, &[&heartbeat_id, &paused])
        .await?;
    Ok(())
}

/// Why a create or update was refused.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// healthchecks.io's 403 for a project at its check limit.
    #[error("the project has reached its check limit")]
    Limit,
    /// Heartbeat's names are unique per project (healthchecks.io's are not).
    #[error("a check named '{0}' already exists in this project")]
    NameTaken(String),
    /// A field that only the stored check can judge (a schedule in its zone, a
    /// channel of the project): healthchecks.io's 400 message.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<tokio_postgres::Error> for WriteError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for WriteError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Store(e.into())
    }
}

/// The oldest check of the project matching every field `unique` names, when
/// the body gives them all.
const FIND_UNIQUE: &str = "
SELECT heartbeat_id FROM heartbeat.heartbeat
WHERE project_id = $1
  AND ($2::text IS NULL OR name = $2)
  AND ($3::text IS NULL OR slug = $3)
  AND ($4::text[] IS NULL OR tags = $4)
  AND ($5::int IS NULL OR period_seconds = $5)
  AND ($6::int IS NULL OR grace_seconds = $6)
ORDER BY created_at, heartbeat_id
LIMIT 1";

/// `POST checks/`: updates the check `unique` matches, or creates one (within
/// `limit` checks per project). Returns its id and whether it is new.
/// `derive_slug` is v1/v2's rule: a name sets the slug.
pub async fn create(
    pool: &Pool,
    project_id: Uuid,
    spec: &CheckSpec,
    derive_slug: bool,
    limit: i64,
) -> Result<(Uuid, bool), WriteError> {
    let mut client = pool.get().await?;
    if spec.unique_fields_given() {
        let named = |f: UniqueField| spec.unique.as_ref().is_some_and(|u| u.contains(&f));
        let secs = |v: Option<i64>, f| v.filter(|_| named(f)).map(|s| s as i32);
        let found = client
            .query_opt(
                FIND_UNIQUE,
                &[
                    &project_id,
                    &spec.name.as_ref().filter(|_| named(UniqueField::Name)),
                    &spec.slug.as_ref().filter(|_| named(UniqueField::Slug)),
                    &spec.tags.as_ref().filter(|_| named(UniqueField::Tags)),
                    &secs(spec.timeout, UniqueField::Timeout),
                    &secs(spec.grace, UniqueField::Grace),
                ],
            )
            .await?;
        if let Some(row) = found {
            let id: Uuid = row.get(0);
            update(pool, project_id, id, spec, derive_slug).await?;
            return Ok((id, false));
        }
    }
    let channels = resolve_channels(&client, project_id, spec).await?;
    let tz = spec.tz.clone().unwrap_or_else(|| "UTC".into());
    if let Some(expr) = &spec.schedule {
        schedule_in(expr, &tz)?;
    }
    let name = match &spec.name {
        Some(n) if !n.trim().is_empty() => n.clone(),
        // healthchecks.io allows a nameless check; Heartbeat's names are
        // unique, so it gets one no other check has.
        _ => format!("check-{}", &Uuid::new_v4().simple().to_string()[..12]),
    };
    let slug = match (&spec.slug, derive_slug) {
        (Some(s), _) => Some(s.clone()),
        // v1/v2: derived from the name (the insert trigger does it).
        (None, true) => None,
        // v3 derives nothing: a slug is only what the body gives.
        (None, false) => Some(String::new()),
    };
    let new = NewHeartbeat {
        name,
        slug,
        period_seconds: match spec.schedule {
            Some(_) => None,
            None => Some(spec.timeout.unwrap_or(DEFAULT_TIMEOUT) as i32),
        },
        schedule: spec.schedule.clone(),
        tz,
        grace_seconds: spec.grace.unwrap_or(DEFAULT_GRACE) as i32,
        paused: false,
        channels: channels.unwrap_or(None),
        thresholds: Default::default(),
        tags: spec.tags.clone().unwrap_or_default(),
        limits: Default::default(),
        parents: Vec::new(),
    };
    let id = heartbeat::create(&mut client, project_id, &new, limit)
        .await
        .map_err(|e| match e {
            CreateError::Limit { .. } => WriteError::Limit,
            CreateError::NameTaken(n) => WriteError::NameTaken(n),
            CreateError::Db(e) => e.into(),
        })?;
    set_fields(&client, id, spec, None).await?;
    Ok((id, true))
}

fn schedule_in(expr: &str, tz: &str) -> Result<(), WriteError> {
    HeartbeatSchedule::parse(expr, tz).map(|_| ()).map_err(|_| {
        WriteError::Invalid(
            "json validation error: schedule is not a valid cron or OnCalendar expression".into(),
        )
    })
}

/// healthchecks.io's channel rules, onto the heartbeat's own routing: `"*"`
/// is every channel of the project (`channels` NULL, which takes in channels
/// added later too), `""` none, and a comma list names the project's channels
/// by id or by name, each exactly once. None when the body gives no `channels`.
#[allow(clippy::option_option)]
async fn resolve_channels(
    client: &deadpool_postgres::Client,
    project_id: Uuid,
    spec: &CheckSpec,
) -> Result<Option<Option<Vec<Uuid>>>, WriteError> {
    let items = match &spec.channels {
        None => return Ok(None),
        Some(Channels::All) => return Ok(Some(None)),
        Some(Channels::None) => return Ok(Some(Some(Vec::new()))),
        Some(Channels::Listed(items)) => items,
    };
    let available: Vec<(Uuid, String)> = client
        .query(
            "SELECT channel_id, name FROM heartbeat.channel WHERE project_id = $1",
            &[&project_id],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut ids = Vec::new();
    for item in items {
        if item.is_empty() {
            return Err(WriteError::Invalid("empty channel identifier".into()));
        }
        let matches: Vec<Uuid> = available
            .iter()
            .filter(|(id, name)| id.to_string() == *item || name == item)
            .map(|(id, _)| *id)
            .collect();
        match matches.as_slice() {
            [] => {
                return Err(WriteError::Invalid(format!(
                    "invalid channel identifier: {item}"
                )))
            }
            [id] => ids.push(*id),
            _ => {
                return Err(WriteError::Invalid(format!(
                    "non-unique channel identifier: {item}"
                )))
            }
        }
    }
    ids.sort();
    ids.dedup();
    Ok(Some(Some(ids)))
}

/// Stores what `spec` gives of the heartbeat's tags and channels (the ones
/// Heartbeat's own API reads and writes too) and of the fields without effect.
/// `$6` says whether `channels` was given, since NULL there means "every channel".
const SET_FIELDS: &str = "
UPDATE heartbeat.heartbeat SET
    tags = coalesce($2, tags),
    hc_desc = coalesce($3, hc_desc),
    hc_methods = coalesce($4, hc_methods),
    hc_manual_resume = coalesce($5, hc_manual_resume),
    channels = CASE WHEN $6 THEN $7 ELSE channels END,
    hc_extra = hc_extra || $8
WHERE heartbeat_id = $1";

#[allow(clippy::option_option)]
async fn set_fields(
    client: &deadpool_postgres::Client,
    id: Uuid,
    spec: &CheckSpec,
    channels: Option<Option<Vec<Uuid>>>,
) -> Result<(), WriteError> {
    client
        .execute(
            SET_FIELDS,
            &[
                &id,
                &spec.tags,
                &spec.desc,
                &spec.methods,
                &spec.manual_resume,
                &channels.is_some(),
                &channels.flatten(),
                &Value::Object(spec.stored.clone()),
            ],
        )
        .await?;
    Ok(())
}

/// Changes what `spec` gives and keeps the rest; a schedule wins over a
/// timeout. The deadline is set to now so the deadline loop re-evaluates
/// under the new timing, as `PATCH /api/heartbeats` does.
const UPDATE_TIMING: &str = "
UPDATE heartbeat.heartbeat SET
    name = $2,
    slug = coalesce($3, heartbeat.slugify($2)),
    period_seconds = $4,
    schedule = $5,
    tz = $6,
    grace_seconds = $7,
    early_before = NULL, fire_times = NULL,
    deadline = now()
WHERE heartbeat_id = $1";

/// `POST checks/<uuid>`: applies `spec` to the project's check `id`.
pub async fn update(
    pool: &Pool,
    project_id: Uuid,
    id: Uuid,
    spec: &CheckSpec,
    derive_slug: bool,
) -> Result<(), WriteError> {
    let mut client = pool.get().await?;
    let channels = resolve_channels(&client, project_id, spec).await?;
    let tx = client.transaction().await?;
    let sql = format!("{COLUMNS} FROM heartbeat.heartbeat WHERE heartbeat_id = $1 FOR UPDATE");
    let Some(row) = tx.query_opt(&format!("SELECT {sql}"), &[&id]).await? else {
        return Ok(());
    };
    let hb = Heartbeat::from_row(&row);
    let mut name = hb.name.clone();
    // None: derived from the new name (v1/v2), by `heartbeat.slugify`.
    let mut slug = Some(hb.slug.clone());
    if let Some(n) = &spec.name {
        if *n != hb.name {
            name = n.clone();
            if derive_slug {
                slug = None;
            }
        }
    }
    if let Some(s) = &spec.slug {
        slug = Some(s.clone());
    }
    let (period, schedule) = match (&spec.schedule, spec.timeout) {
        (Some(expr), _) => (None, Some(expr.clone())),
        (None, Some(t)) => (Some(t as i32), None),
        (None, None) => (hb.period_seconds, hb.schedule.clone()),
    };
    let tz = spec.tz.clone().unwrap_or(hb.tz.clone());
    if let Some(expr) = &schedule {
        schedule_in(expr, &tz)?;
    }
    let grace = spec.grace.map(|g| g as i32).unwrap_or(hb.grace_seconds);
    if name != hb.name {
        let taken = tx
            .query_opt(
                "SELECT 1 FROM heartbeat.heartbeat WHERE project_id = $1 AND name = $2",
                &[&project_id, &name],
            )
            .await?;
        if taken.is_some() {
            return Err(WriteError::NameTaken(name));
        }
    }
    tx.execute(
        UPDATE_TIMING,
        &[&id, &name, &slug, &period, &schedule, &tz, &grace],
    )
    .await?;
    tx.commit().await?;
    set_fields(&client, id, spec, channels).await?;
    Ok(())
}
