//! `/api/heartbeats`, `/api/webhooks` and `/api/projects`.
//!
//! Every query is scoped by the caller's project, so another project's heartbeat
//! is simply not found (404, never 403: nothing leaks). The admin key sees every
//! project's heartbeats, so `heartbeat status` covers the daemon's own jobs too.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::heartbeat::{Heartbeat, HeartbeatToken, HeartbeatView, Tags, COLUMNS};
use super::schedule::{parse_tz, HeartbeatSchedule};
use super::selfcheck::{self, JobHeartbeatError};
use super::status::{StoredStatus, Thresholds};
use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiJson, ApiResult};
use crate::error::{ApiQuery, NoQuery};
use crate::state::AppState;

/// The monitor's API routes with their OpenAPI operations (one `routes!` per
/// path: the handlers of a path share it).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(pings))
        .routes(routes!(flips))
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(remove_webhook))
        .routes(routes!(list_projects, create_project))
}

/// Shortest webhook secret accepted (the admin key's minimum too).
const MIN_WEBHOOK_SECRET_CHARS: usize = 16;

/// Longest period or grace accepted: a year.
const MAX_SECONDS: i32 = 366 * 86_400;
const DEFAULT_PERIOD: i32 = 86_400;
const DEFAULT_GRACE: i32 = 3_600;

/// Where cron clients reach the daemon.
fn base_url(state: &AppState) -> String {
    state
        .config
        .monitor
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", state.config.bind))
}

/// The heartbeat `id`, if the caller may see it.
async fn fetch(client: &tokio_postgres::Client, caller: &Caller, id: Uuid) -> ApiResult<Heartbeat> {
    let sql = format!(
        "SELECT {COLUMNS} FROM heartbeat.heartbeat WHERE heartbeat_id = $1 AND (project_id = $2 OR $3)"
    );
    let admin = caller.role == Role::Admin;
    client
        .query_opt(&sql, &[&id, &caller.project_id, &admin])
        .await?
        .map(|r| Heartbeat::from_row(&r))
        .ok_or_else(|| ApiError::not_found(format!("no heartbeat {id}")))
}

fn parse_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no heartbeat {raw}")))
}

/// `GET /api/heartbeats` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only heartbeats carrying this tag.
    #[param(min_length = 1, max_length = 50, pattern = r"^[\p{L}\p{N}\-_.:/]+$")]
    tag: Option<String>,
}

#[utoipa::path(get, path = "/api/heartbeats", operation_id = "listHeartbeats", tag = "heartbeats", params(ListQuery), responses((status = 200, description = "Heartbeats of the caller's project with their status", body = HeartbeatList), (status = 422, description = "A malformed tag", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let tag = q
        .tag
        .as_deref()
        .map(Tags::parse_one)
        .transpose()
        .map_err(|e| invalid(format!("tag: {e}")))?;
    let client = state.pool.get().await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM heartbeat.heartbeat WHERE (project_id = $1 OR $2)
         AND ($3::text IS NULL OR tags @> ARRAY[$3::text]) ORDER BY name, heartbeat_id"
    );
    let admin = caller.role == Role::Admin;
    let rows = client
        .query(&sql, &[&caller.project_id, &admin, &tag])
        .await?;
    let now = Utc::now();
    let base = base_url(&state);
    let heartbeats = rows
        .iter()
        .map(|r| Heartbeat::from_row(r).view(now, &base))
        .collect();
    Ok(ApiJson(HeartbeatList { heartbeats }).into_response())
}

/// `GET /api/heartbeats`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HeartbeatList {
    /// Ordered by name.
    pub heartbeats: Vec<HeartbeatView>,
}

#[utoipa::path(get, path = "/api/heartbeats/{id}", operation_id = "getHeartbeat", tag = "heartbeats", params(("id" = Uuid, Path)), responses((status = 200, description = "The heartbeat", body = HeartbeatView), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let client = state.pool.get().await?;
    let hb = fetch(&client, &caller, parse_id(&id)?).await?;
    Ok(ApiJson(hb.view(Utc::now(), &base_url(&state))).into_response())
}

/// Fields a client may set. On create, unset fields take defaults; on update,
/// unset fields are kept.
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatInput {
    /// 1 to 200 characters, unique in the project; required on create.
    pub name: Option<String>,
    /// Seconds between expected pings (default a day); not with `schedule`.
    pub period_seconds: Option<i32>,
    /// Seconds past the expected time before down (default an hour).
    pub grace_seconds: Option<i32>,
    /// Five-field cron expression; not with `period_seconds`.
    pub schedule: Option<String>,
    /// IANA time zone for `schedule` (default UTC).
    pub tz: Option<String>,
    pub paused: Option<bool>,
    /// Failures in a row (fail pings, non-zero exit codes, missed deadlines)
    /// before it is down: 1 to 100 (default 1).
    #[schema(minimum = 1, maximum = 100)]
    pub failure_threshold: Option<i32>,
    /// Successes in a row before a down heartbeat is up again: 1 to 100
    /// (default 1).
    #[schema(minimum = 1, maximum = 100)]
    pub recovery_threshold: Option<i32>,
    /// Free-form labels: at most 20, each 1 to 50 letters, digits or `-_.:/`;
    /// on update the list replaces the old one.
    #[schema(max_items = 20)]
    pub tags: Option<Vec<String>>,
}

/// The tags of `input`, or `current`'s (none on create), checked.
fn tags(input: &HeartbeatInput, current: Option<&Heartbeat>) -> ApiResult<Vec<String>> {
    match &input.tags {
        Some(raw) => Tags::parse(raw)
            .map(|t| t.as_slice().to_vec())
            .map_err(|e| invalid(format!("tags: {e}"))),
        None => Ok(current.map(|hb| hb.tags.clone()).unwrap_or_default()),
    }
}

/// Largest failure or recovery threshold.
const MAX_THRESHOLD: i32 = 100;

/// Merges the thresholds of `input` over `current` (None on create) and checks
/// them.
fn thresholds(input: &HeartbeatInput, current: Option<&Heartbeat>) -> ApiResult<Thresholds> {
    let current = current.map(|hb| hb.thresholds).unwrap_or_default();
    let t = Thresholds {
        failure: input.failure_threshold.unwrap_or(current.failure),
        recovery: input.recovery_threshold.unwrap_or(current.recovery),
    };
    for (field, value) in [
        ("failure_threshold", t.failure),
        ("recovery_threshold", t.recovery),
    ] {
        if !(1..=MAX_THRESHOLD).contains(&value) {
            return Err(invalid(format!(
                "{field}: must be between 1 and {MAX_THRESHOLD}"
            )));
        }
    }
    Ok(t)
}

/// The validated expectation and grace of a heartbeat.
struct Timing {
    period_seconds: Option<i32>,
    schedule: Option<String>,
    tz: String,
    grace_seconds: i32,
}

fn invalid(message: String) -> ApiError {
    ApiError::unprocessable("invalid_input", message)
}

fn check_name(name: &str) -> ApiResult<String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(invalid("name: must be 1 to 200 characters".into()));
    }
    Ok(name.to_string())
}

/// Merges `input` over `current` (None on create) and checks the result.
fn timing(input: &HeartbeatInput, current: Option<&Heartbeat>) -> ApiResult<Timing> {
    if input.period_seconds.is_some() && input.schedule.is_some() {
        return Err(invalid(
            "give either period_seconds or schedule, not both".into(),
        ));
    }
    let (period_seconds, schedule) = match (input.period_seconds, &input.schedule, current) {
        (Some(p), _, _) => (Some(p), None),
        (None, Some(s), _) => (None, Some(s.trim().to_string())),
        (None, None, Some(hb)) => (hb.period_seconds, hb.schedule.clone()),
        (None, None, None) => (Some(DEFAULT_PERIOD), None),
    };
    let tz = input
        .tz
        .clone()
        .or_else(|| current.map(|hb| hb.tz.clone()))
        .unwrap_or_else(|| "UTC".into());
    let grace_seconds = input
        .grace_seconds
        .or(current.map(|hb| hb.grace_seconds))
        .unwrap_or(DEFAULT_GRACE);
    if let Some(p) = period_seconds {
        if !(1..=MAX_SECONDS).contains(&p) {
            return Err(invalid(format!(
                "period_seconds: must be between 1 and {MAX_SECONDS}"
            )));
        }
    }
    if !(0..=MAX_SECONDS).contains(&grace_seconds) {
        return Err(invalid(format!(
            "grace_seconds: must be between 0 and {MAX_SECONDS}"
        )));
    }
    parse_tz(&tz).map_err(|e| invalid(format!("tz: {e}")))?;
    if let Some(expr) = &schedule {
        HeartbeatSchedule::parse(expr, &tz).map_err(|e| invalid(format!("schedule: {e}")))?;
    }
    Ok(Timing {
        period_seconds,
        schedule,
        tz,
        grace_seconds,
    })
}

const INSERT_HEARTBEAT: &str = "
INSERT INTO heartbeat.heartbeat (heartbeat_id, project_id, name, token, period_seconds,
                                 schedule, tz, grace_seconds, paused, status,
                                 failure_threshold, recovery_threshold, tags)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $9 THEN 'paused' ELSE 'pending' END,
        $10, $11, $12)
ON CONFLICT (project_id, name) DO NOTHING";

#[utoipa::path(post, path = "/api/heartbeats", operation_id = "createHeartbeat", tag = "heartbeats", request_body(content = HeartbeatInput, description = "name, period_seconds + grace_seconds or schedule + tz"), responses((status = 201, description = "Created, with its token and ping URL", body = HeartbeatView), (status = 422, description = "Invalid field, named in the message", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    ApiJson(input): ApiJson<HeartbeatInput>,
) -> ApiResult<Response> {
    let name = check_name(
        input
            .name
            .as_deref()
            .ok_or_else(|| invalid("name: required".into()))?,
    )?;
    let t = timing(&input, None)?;
    let th = thresholds(&input, None)?;
    let tags = tags(&input, None)?;
    let paused = input.paused.unwrap_or(false);
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    // The project row lock serializes creates, so the limit holds under races.
    tx.execute(
        "SELECT 1 FROM heartbeat.project WHERE project_id = $1 FOR UPDATE",
        &[&caller.project_id],
    )
    .await?;
    let count: i64 = tx
        .query_one(
            "SELECT count(*) FROM heartbeat.heartbeat WHERE project_id = $1",
            &[&caller.project_id],
        )
        .await?
        .get(0);
    let limit = state.config.monitor.max_heartbeats_per_project;
    if count >= limit {
        return Err(ApiError::client(
            StatusCode::CONFLICT,
            "heartbeat_limit",
            format!(
                "this project already has {count} heartbeats; the limit is {limit} per project"
            ),
        ));
    }
    let id = Uuid::now_v7();
    let token = HeartbeatToken::generate();
    let inserted = tx
        .execute(
            INSERT_HEARTBEAT,
            &[
                &id,
                &caller.project_id,
                &name,
                &token.as_str(),
                &t.period_seconds,
                &t.schedule,
                &t.tz,
                &t.grace_seconds,
                &paused,
                &th.failure,
                &th.recovery,
                &tags,
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(ApiError::conflict(format!(
            "a heartbeat named '{name}' already exists in this project"
        )));
    }
    tx.commit().await?;
    let hb = fetch(&client, &caller, id).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(hb.view(Utc::now(), &base_url(&state))),
    )
        .into_response())
}

/// The name and timing fields `input` would give a new value, for
/// [`selfcheck::check_edit`].
fn changed_fields(input: &HeartbeatInput, current: &Heartbeat) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if input
        .name
        .as_deref()
        .is_some_and(|n| n.trim() != current.name)
    {
        changed.push("name");
    }
    if input
        .period_seconds
        .is_some_and(|p| Some(p) != current.period_seconds)
    {
        changed.push("period_seconds");
    }
    if input
        .grace_seconds
        .is_some_and(|g| g != current.grace_seconds)
    {
        changed.push("grace_seconds");
    }
    if input
        .schedule
        .as_deref()
        .is_some_and(|s| Some(s.trim()) != current.schedule.as_deref())
    {
        changed.push("schedule");
    }
    if input.tz.as_deref().is_some_and(|tz| tz != current.tz) {
        changed.push("tz");
    }
    changed
}

impl From<JobHeartbeatError> for ApiError {
    fn from(e: JobHeartbeatError) -> Self {
        ApiError::client(StatusCode::CONFLICT, "job_heartbeat", e.to_string())
    }
}

/// Editing keeps the last ping, the history and the stored status; the deadline
/// is set to now so the deadline loop re-evaluates under the new timing (and
/// records a flip if the new timing changes the status). New thresholds apply to
/// the current streaks at once: a streak that now reaches one changes the state.
const UPDATE_HEARTBEAT: &str = "
UPDATE heartbeat.heartbeat SET
    name = $2, period_seconds = $3, schedule = $4, tz = $5, grace_seconds = $6,
    paused = $7, failure_threshold = $8, recovery_threshold = $9, tags = $10,
    failing = CASE WHEN NOT failing AND fail_streak >= $8 THEN true
                   WHEN failing AND ok_streak >= $9 THEN false ELSE failing END,
    failing_since = CASE WHEN (NOT failing AND fail_streak >= $8) OR (failing AND ok_streak >= $9)
                         THEN now() ELSE failing_since END,
    resumed_at = CASE WHEN paused AND NOT $7 THEN now() ELSE resumed_at END,
    deadline = now()
WHERE heartbeat_id = $1";

#[utoipa::path(patch, path = "/api/heartbeats/{id}", operation_id = "updateHeartbeat", tag = "heartbeats", params(("id" = Uuid, Path)), request_body(content = HeartbeatInput, description = "Fields to change; history and status are kept"), responses((status = 200, description = "The updated heartbeat", body = HeartbeatView), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope), (status = 409, description = "A change of name or timing to one of the daemon's own job heartbeats (they can only be paused), or a name already taken", body = crate::error::ErrorEnvelope), (status = 422, description = "Invalid field, named in the message", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<HeartbeatInput>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let client = state.pool.get().await?;
    let current = fetch(&client, &caller, id).await?;
    let name = match &input.name {
        Some(n) => check_name(n)?,
        None => current.name.clone(),
    };
    selfcheck::check_edit(&current, &changed_fields(&input, &current))?;
    let t = timing(&input, Some(&current))?;
    let th = thresholds(&input, Some(&current))?;
    let tags = tags(&input, Some(&current))?;
    let paused = input.paused.unwrap_or(current.paused);
    let result = client
        .execute(
            UPDATE_HEARTBEAT,
            &[
                &id,
                &name,
                &t.period_seconds,
                &t.schedule,
                &t.tz,
                &t.grace_seconds,
                &paused,
                &th.failure,
                &th.recovery,
                &tags,
            ],
        )
        .await;
    if let Err(e) = &result {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            return Err(ApiError::conflict(format!(
                "a heartbeat named '{name}' already exists in this project"
            )));
        }
    }
    result?;
    let hb = fetch(&client, &caller, id).await?;
    Ok(ApiJson(hb.view(Utc::now(), &base_url(&state))).into_response())
}

#[utoipa::path(delete, path = "/api/heartbeats/{id}", operation_id = "deleteHeartbeat", tag = "heartbeats", params(("id" = Uuid, Path)), responses((status = 204, description = "Deleted"), (status = 409, description = "One of the daemon's own job heartbeats, which cannot be deleted", body = crate::error::ErrorEnvelope), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let client = state.pool.get().await?;
    selfcheck::check_delete(&fetch(&client, &caller, id).await?)?;
    client
        .execute(
            "DELETE FROM heartbeat.heartbeat WHERE heartbeat_id = $1",
            &[&id],
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// One recorded ping.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PingView {
    /// Consecutive per heartbeat.
    seq: i64,
    at: DateTime<Utc>,
    /// `success`, `fail`, `start` or `log`.
    kind: String,
    /// From `/hb/{token}/{exit_code}`.
    exit_code: Option<i32>,
    /// The `?rid=` run id.
    rid: Option<Uuid>,
    /// Time since the matching start ping, for a finish.
    duration_ms: Option<i64>,
    /// The client's address.
    source: Option<String>,
    user_agent: Option<String>,
    /// The POST body, truncated at the ping body limit.
    body: Option<String>,
}

/// `GET /api/heartbeats/{id}/pings`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PingList {
    /// Newest first.
    pings: Vec<PingView>,
}

#[utoipa::path(get, path = "/api/heartbeats/{id}/pings", operation_id = "listHeartbeatPings", tag = "heartbeats", params(("id" = Uuid, Path)), responses((status = 200, description = "Recent pings, newest first", body = PingList), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn pings(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Response> {
    let client = state.pool.get().await?;
    let hb = fetch(&client, &caller, parse_id(&id)?).await?;
    let rows = client
        .query(
            "SELECT seq, at, kind, exit_code, rid, duration_ms, source, user_agent, body
             FROM heartbeat.ping WHERE heartbeat_id = $1 ORDER BY seq DESC LIMIT $2",
            &[&hb.id, &state.config.monitor.pings_kept],
        )
        .await?;
    let pings: Vec<PingView> = rows
        .iter()
        .map(|r| PingView {
            seq: r.get(0),
            at: r.get(1),
            kind: r.get(2),
            exit_code: r.get(3),
            rid: r.get(4),
            duration_ms: r.get(5),
            source: r.get(6),
            user_agent: r.get(7),
            body: r.get(8),
        })
        .collect();
    Ok(ApiJson(PingList { pings }).into_response())
}

/// One change of the stored status.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FlipView {
    /// When the status changed (the deadline, or the ping), not when noticed.
    at: DateTime<Utc>,
    from: StoredStatus,
    to: StoredStatus,
    /// When the daemon noticed.
    detected_at: DateTime<Utc>,
}

/// `GET /api/heartbeats/{id}/flips`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FlipList {
    /// Newest first, at most 1000.
    flips: Vec<FlipView>,
}

#[utoipa::path(get, path = "/api/heartbeats/{id}/flips", operation_id = "listHeartbeatFlips", tag = "heartbeats", params(("id" = Uuid, Path)), responses((status = 200, description = "Status transitions, newest first", body = FlipList), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn flips(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Response> {
    let client = state.pool.get().await?;
    let hb = fetch(&client, &caller, parse_id(&id)?).await?;
    let rows = client
        .query(
            "SELECT at, from_status, to_status, detected_at FROM heartbeat.flip
             WHERE heartbeat_id = $1 ORDER BY flip_id DESC LIMIT 1000",
            &[&hb.id],
        )
        .await?;
    let flips: Vec<FlipView> = rows
        .iter()
        .map(|r| FlipView {
            at: r.get(0),
            from: r.get(1),
            to: r.get(2),
            detected_at: r.get(3),
        })
        .collect();
    Ok(ApiJson(FlipList { flips }).into_response())
}

/// Body of `POST /api/webhooks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// An http or https URL alerts are POSTed to.
    url: String,
    /// Key of the `Heartbeat-Signature` HMAC-SHA256; never shown again.
    secret: Option<String>,
}

/// A webhook; its secret is never shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    id: Uuid,
    url: String,
    /// Whether alerts are signed.
    has_secret: bool,
    created_at: DateTime<Utc>,
}

/// `GET /api/webhooks`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    webhooks: Vec<WebhookView>,
}

fn webhook_view(r: &tokio_postgres::Row) -> WebhookView {
    WebhookView {
        id: r.get(0),
        url: r.get(1),
        has_secret: r.get(2),
        created_at: r.get(3),
    }
}

#[utoipa::path(get, path = "/api/webhooks", operation_id = "listWebhooks", tag = "webhooks", responses((status = 200, description = "Webhooks of the caller's project (secrets never shown)", body = WebhookList)), security((), ("bearer" = [])))]
async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Response> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT webhook_id, url, secret IS NOT NULL, created_at FROM heartbeat.webhook
             WHERE project_id = $1 ORDER BY created_at",
            &[&caller.project_id],
        )
        .await?;
    let webhooks = rows.iter().map(webhook_view).collect();
    Ok(ApiJson(WebhookList { webhooks }).into_response())
}

#[utoipa::path(post, path = "/api/webhooks", operation_id = "createWebhook", tag = "webhooks", request_body(content = WebhookInput, description = "url and optional secret for the HMAC-SHA256 signature"), responses((status = 201, description = "Created", body = WebhookView), (status = 422, description = "Invalid field, named in the message", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    ApiJson(input): ApiJson<WebhookInput>,
) -> ApiResult<Response> {
    let url = reqwest::Url::parse(&input.url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| invalid("url: must be an http or https URL".into()))?;
    let secret = input.secret.filter(|s| !s.is_empty());
    if let Some(secret) = &secret {
        // It keys the HMAC signature, and the log redactor masks only secrets it
        // can tell from ordinary words.
        if secret.chars().count() < MIN_WEBHOOK_SECRET_CHARS {
            return Err(invalid(format!(
                "secret: at least {MIN_WEBHOOK_SECRET_CHARS} characters"
            )));
        }
        // Before anything can log it: from now on it is masked in every line.
        crate::ops::redact::register_secret(secret);
    }
    let client = state.pool.get().await?;
    let row = client
        .query_one(
            "INSERT INTO heartbeat.webhook (webhook_id, project_id, url, secret)
             VALUES ($1, $2, $3, $4)
             RETURNING webhook_id, url, secret IS NOT NULL, created_at",
            &[&Uuid::now_v7(), &caller.project_id, &url.as_str(), &secret],
        )
        .await?;
    Ok((StatusCode::CREATED, ApiJson(webhook_view(&row))).into_response())
}

#[utoipa::path(delete, path = "/api/webhooks/{id}", operation_id = "deleteWebhook", tag = "webhooks", params(("id" = Uuid, Path)), responses((status = 204, description = "Deleted"), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn remove_webhook(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let not_found = || ApiError::not_found(format!("no webhook {id}"));
    let webhook_id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    let client = state.pool.get().await?;
    let n = client
        .execute(
            "DELETE FROM heartbeat.webhook WHERE webhook_id = $1 AND project_id = $2",
            &[&webhook_id, &caller.project_id],
        )
        .await?;
    if n == 0 {
        return Err(not_found());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Body of `POST /api/projects`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectInput {
    /// 1 to 100 characters, unique.
    name: String,
}

/// One project, without its keys.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProjectSummary {
    project_id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

/// `GET /api/projects`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProjectList {
    /// Ordered by name.
    projects: Vec<ProjectSummary>,
}

#[utoipa::path(post, path = "/api/projects", operation_id = "createProject", tag = "projects", request_body(content = ProjectInput, description = "name"), responses((status = 201, description = "Created, with its keys (shown once)", body = crate::auth::CreatedProject), (status = 422, description = "Invalid field, named in the message", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    ApiJson(input): ApiJson<ProjectInput>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let mut client = state.pool.get().await?;
    let created = crate::auth::create_project(&mut client, &input.name).await?;
    Ok((StatusCode::CREATED, ApiJson(created)).into_response())
}

#[utoipa::path(get, path = "/api/projects", operation_id = "listProjects", tag = "projects", responses((status = 200, description = "Projects (admin key)", body = ProjectList)), security((), ("bearer" = [])))]
async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Response> {
    caller.require_admin()?;
    let client = state.pool.get().await?;
    let rows = client
        .query(
            "SELECT project_id, name, created_at FROM heartbeat.project ORDER BY name",
            &[],
        )
        .await?;
    let projects = rows
        .iter()
        .map(|r| ProjectSummary {
            project_id: r.get(0),
            name: r.get(1),
            created_at: r.get(2),
        })
        .collect();
    Ok(ApiJson(ProjectList { projects }).into_response())
}
