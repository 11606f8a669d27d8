//! The HTTP edge of notifications: `/api/channels` (CRUD, test, delivery
//! history), `/api/alerts/{id}`, `/api/digest` (the digest's panel), and
//! `/api/webhooks`, the older API over the same rows (channels of kind
//! `webhook`).
//!
//! Every query is scoped by the caller's project: another project's channel is
//! simply not found. Read-only keys may list (the auth middleware refuses their
//! writes).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::channel::{self, ChannelInput, ChannelView, NotifyError};
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult, NoQuery};
use crate::state::AppState;

impl From<NotifyError> for ApiError {
    fn from(e: NotifyError) -> Self {
        match e {
            NotifyError::Invalid(m) => ApiError::unprocessable("invalid_input", m),
            NotifyError::NotFound(m) => ApiError::not_found(m),
            NotifyError::Pool(e) => ApiError::Pool(e),
            NotifyError::Db(e) => ApiError::Db(e),
        }
    }
}

/// The notification routes with their OpenAPI operations (one `routes!` per
/// path: the handlers of a path share it).
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(show, update, remove))
        .routes(routes!(test))
        .routes(routes!(deliveries))
        .routes(routes!(alert))
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(remove_webhook))
        .routes(routes!(digest))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DigestQuery {
    /// Only heartbeats carrying this tag.
    #[param(min_length = 1, max_length = 50, pattern = r"^[A-Za-z0-9\-_.:/]+$")]
    tag: Option<String>,
}

#[utoipa::path(get, path = "/api/digest", operation_id = "getDigest", tag = "heartbeats", params(DigestQuery), responses((status = 200, description = "Every heartbeat of the caller's project as the digest shows it: status, last success, age, interval and age ÷ interval, down ones first", body = super::digest::Panel), (status = 422, description = "A malformed tag", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn digest(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<DigestQuery>,
) -> ApiResult<Response> {
    let tag = q
        .tag
        .as_deref()
        .map(crate::monitor::heartbeat::Tags::parse_one)
        .transpose()
        .map_err(|e| ApiError::unprocessable("invalid_input", format!("tag: {e}")))?;
    let client = state.pool.get().await?;
    let admin = caller.role == crate::auth::Role::Admin;
    let panel = super::digest::panel(
        &client,
        caller.project_id,
        admin,
        tag.as_deref(),
        Utc::now(),
    )
    .await?;
    Ok(ApiJson(panel).into_response())
}

/// The documented shape of `POST /api/channels`: as [`ChannelInput`], with
/// `kind` required and one of the kinds. What `config` needs depends on the kind
/// (docs/notifications.md), so it stays a free object here.
pub struct ChannelCreateDoc;

impl utoipa::PartialSchema for ChannelCreateDoc {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let schema: utoipa::openapi::schema::Schema = serde_json::from_value(json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["kind"],
            "properties": {
                "name": {"type": ["string", "null"], "description": "1 to 200 characters (default: the kind)"},
                "kind": {"type": "string", "enum": super::channel::Kind::names(), "description": "Fixed once created"},
                "config": {"type": ["object", "null"], "description": "The kind's settings (docs/notifications.md); no text in it may hold NUL"},
                "repeat_every_seconds": {"type": ["integer", "null"], "description": "Seconds between reminders while a heartbeat stays down; 0 or null: none"},
                "muted": {"type": ["boolean", "null"]},
                "digest_schedule": {"type": ["string", "null"], "description": "When a digest of every heartbeat goes out: a five-field crontab expression such as 0 7 * * *; null: none. Not for pagerduty, opsgenie, github or gitea"},
                "digest_tz": {"type": ["string", "null"], "description": "IANA time zone of digest_schedule (default UTC)"}
            }
        }))
        .expect("the channel schema is a schema");
        schema.into()
    }
}

impl utoipa::ToSchema for ChannelCreateDoc {}

fn parse_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(format!("no channel {raw}")))
}

/// `GET /api/channels`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChannelList {
    /// Oldest first.
    channels: Vec<ChannelView>,
}

/// The shortest reminder interval: a minute, unless the deployment lowers it.
fn min_repeat(state: &AppState) -> Option<i32> {
    Some(state.config.notify.min_repeat_seconds)
}

#[utoipa::path(get, path = "/api/channels", operation_id = "listChannels", tag = "channels", responses((status = 200, description = "Channels of the caller's project, secrets masked", body = ChannelList)), security((), ("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Response> {
    let channels = channel::list(&state.pool, caller.project_id).await?;
    Ok(ApiJson(ChannelList { channels }).into_response())
}

#[utoipa::path(get, path = "/api/channels/{id}", operation_id = "getChannel", tag = "channels", params(("id" = Uuid, Path)), responses((status = 200, description = "The channel, secrets masked", body = ChannelView), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn show(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (c, e) = channel::get(&state.pool, caller.project_id, parse_id(&id)?).await?;
    Ok(ApiJson(c.view(e)).into_response())
}

#[utoipa::path(post, path = "/api/channels", operation_id = "createChannel", tag = "channels", request_body(content = ChannelCreateDoc, description = "kind and config (docs/notifications.md); name, repeat_every_seconds, muted"), responses((status = 201, description = "Created; secrets masked from now on", body = ChannelView), (status = 422, description = "Invalid field (an unknown kind or placeholder, a missing config field), named in the message", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    ApiJson(input): ApiJson<ChannelInput>,
) -> ApiResult<Response> {
    let view = channel::create(
        &state.pool,
        &state.database_url,
        caller.project_id,
        input,
        min_repeat(&state),
    )
    .await?;
    Ok((StatusCode::CREATED, ApiJson(view)).into_response())
}

#[utoipa::path(patch, path = "/api/channels/{id}", operation_id = "updateChannel", tag = "channels", params(("id" = Uuid, Path)), request_body(content = ChannelInput, description = "Fields to change; a config is replaced whole, and a masked secret sent back keeps the stored one"), responses((status = 200, description = "The updated channel", body = ChannelView), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope), (status = 422, description = "Invalid field, named in the message", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ChannelInput>,
) -> ApiResult<Response> {
    let view = channel::update(
        &state.pool,
        &state.database_url,
        caller.project_id,
        parse_id(&id)?,
        input,
        min_repeat(&state),
    )
    .await?;
    Ok(ApiJson(view).into_response())
}

#[utoipa::path(delete, path = "/api/channels/{id}", operation_id = "deleteChannel", tag = "channels", params(("id" = Uuid, Path)), responses((status = 204, description = "Deleted with its alerts and history"), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    channel::delete(
        &state.pool,
        &state.database_url,
        caller.project_id,
        parse_id(&id)?,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/api/channels/{id}/test", operation_id = "testChannel", tag = "channels", params(("id" = Uuid, Path)), responses((status = 200, description = "A test event went through the outbox and was sent once; the outcome (ok is false when it failed)", body = super::outbox::TestOutcome), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn test(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (c, _) = channel::get(&state.pool, caller.project_id, parse_id(&id)?).await?;
    let outcome = state
        .notifier
        .send_test(&state.pool, c.id, Utc::now())
        .await?;
    Ok(ApiJson(outcome).into_response())
}

/// One alert of the outbox.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertView {
    id: i64,
    channel_id: Uuid,
    /// Null for a test.
    heartbeat_id: Option<Uuid>,
    /// `down`, `up`, `reminder` or `test`.
    event: String,
    /// The reminder's interval number; 0 for the transition itself.
    reminder: i32,
    /// `pending`, `delivered` or `failed`.
    state: String,
    attempts: i32,
    created_at: DateTime<Utc>,
    next_attempt_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
    /// The last attempt's HTTP status or SMTP reply code.
    last_status: Option<i32>,
    last_error: Option<String>,
}

/// `GET /api/channels/{id}/alerts`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertList {
    /// Newest first, at most 200.
    alerts: Vec<AlertView>,
}

const ALERT_COLUMNS: &str = "a.alert_id, a.channel_id, a.heartbeat_id, a.event, a.reminder, \
    a.state, a.attempts, a.created_at, a.next_attempt_at, a.delivered_at, a.last_status, \
    a.last_error";

fn alert_view(r: &tokio_postgres::Row) -> AlertView {
    AlertView {
        id: r.get(0),
        channel_id: r.get(1),
        heartbeat_id: r.get(2),
        event: r.get(3),
        reminder: r.get(4),
        state: r.get(5),
        attempts: r.get(6),
        created_at: r.get(7),
        next_attempt_at: r.get(8),
        delivered_at: r.get(9),
        last_status: r.get(10),
        last_error: r.get(11),
    }
}

#[utoipa::path(get, path = "/api/channels/{id}/alerts", operation_id = "listChannelAlerts", tag = "channels", params(("id" = Uuid, Path)), responses((status = 200, description = "The channel's alerts with their outcome, newest first", body = AlertList), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let (c, _) = channel::get(&state.pool, caller.project_id, parse_id(&id)?).await?;
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {ALERT_COLUMNS} FROM heartbeat.alert a WHERE a.channel_id = $1
                 ORDER BY a.alert_id DESC LIMIT 200"
            ),
            &[&c.id],
        )
        .await?;
    let alerts = rows.iter().map(alert_view).collect();
    Ok(ApiJson(AlertList { alerts }).into_response())
}

/// One delivery attempt.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AttemptView {
    attempt: i32,
    at: DateTime<Utc>,
    duration_ms: i32,
    /// HTTP status or SMTP reply code; null when nothing answered.
    status: Option<i32>,
    /// Null on success.
    error: Option<String>,
}

/// `GET /api/alerts/{id}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AlertDetail {
    alert: AlertView,
    /// Oldest first.
    attempts: Vec<AttemptView>,
}

#[utoipa::path(get, path = "/api/alerts/{id}", operation_id = "getAlert", tag = "channels", params(("id" = i64, Path)), responses((status = 200, description = "The alert with every delivery attempt", body = AlertDetail), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn alert(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let not_found = || ApiError::not_found(format!("no alert {id}"));
    let alert_id: i64 = id.parse().map_err(|_| not_found())?;
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            &format!(
                "SELECT {ALERT_COLUMNS} FROM heartbeat.alert a
                 JOIN heartbeat.channel c USING (channel_id)
                 WHERE a.alert_id = $1 AND c.project_id = $2"
            ),
            &[&alert_id, &caller.project_id],
        )
        .await?
        .ok_or_else(not_found)?;
    let attempts = client
        .query(
            "SELECT attempt, at, duration_ms, status, error FROM heartbeat.delivery_attempt
             WHERE alert_id = $1 ORDER BY attempt",
            &[&alert_id],
        )
        .await?
        .iter()
        .map(|r| AttemptView {
            attempt: r.get(0),
            at: r.get(1),
            duration_ms: r.get(2),
            status: r.get(3),
            error: r.get(4),
        })
        .collect();
    Ok(ApiJson(AlertDetail {
        alert: alert_view(&row),
        attempts,
    })
    .into_response())
}

/// Body of `POST /api/webhooks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// An http or https URL alerts are POSTed to: a host name or IPv4 address,
    /// an optional port, path and query; no user, password or fragment.
    #[schema(schema_with = webhook_url_schema)]
    url: String,
    /// Key of the `Heartbeat-Signature` HMAC-SHA256; never shown again. Empty
    /// or null: alerts are not signed.
    #[schema(schema_with = webhook_secret_schema)]
    secret: Option<String>,
}

fn webhook_url_schema() -> utoipa::openapi::schema::Schema {
    serde_json::from_value(json!({
        "type": "string", "pattern": channel::WEBHOOK_URL_PATTERN,
        "description": "An http or https URL alerts are POSTed to: a host name or IPv4 address, an optional port, path and query; no user, password or fragment"
    }))
    .expect("the url schema is a schema")
}

/// `secret`: null, empty (unsigned), or at least 16 characters without NUL.
fn webhook_secret_schema() -> utoipa::openapi::schema::Schema {
    serde_json::from_value(json!({
        "anyOf": [
            {"type": "null"},
            {"type": "string", "maxLength": 0},
            {"type": "string", "minLength": channel::MIN_WEBHOOK_SECRET_CHARS, "pattern": crate::error::NO_NUL_PATTERN}
        ],
        "description": "Key of the `Heartbeat-Signature` HMAC-SHA256, at least 16 characters; never shown again. Empty or null: alerts are not signed."
    }))
    .expect("the secret schema is a schema")
}

/// A webhook; its secret is never shown.
#[derive(Serialize, utoipa::ToSchema)]
pub struct WebhookView {
    /// The id of the `webhook` channel it is.
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

const WEBHOOK_COLUMNS: &str =
    "channel_id, config->>'url', coalesce(config->>'secret', '') <> '', created_at";

#[utoipa::path(get, path = "/api/webhooks", operation_id = "listWebhooks", tag = "webhooks", responses((status = 200, description = "Webhooks of the caller's project (secrets never shown)", body = WebhookList)), security((), ("bearer" = [])))]
async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Response> {
    let client = state.pool.get().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {WEBHOOK_COLUMNS} FROM heartbeat.channel
                 WHERE project_id = $1 AND kind = 'webhook' ORDER BY created_at, channel_id"
            ),
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
    let mut config = json!({"url": input.url});
    if let Some(secret) = input.secret.filter(|s| !s.is_empty()) {
        config["secret"] = json!(secret);
    }
    let view = channel::create(
        &state.pool,
        &state.database_url,
        caller.project_id,
        ChannelInput {
            name: Some("webhook".into()),
            kind: Some("webhook".into()),
            config: Some(config),
            ..ChannelInput::default()
        },
        None,
    )
    .await?;
    let client = state.pool.get().await?;
    let row = client
        .query_one(
            &format!("SELECT {WEBHOOK_COLUMNS} FROM heartbeat.channel WHERE channel_id = $1"),
            &[&view.id],
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
            "DELETE FROM heartbeat.channel
             WHERE channel_id = $1 AND project_id = $2 AND kind = 'webhook'",
            &[&webhook_id, &caller.project_id],
        )
        .await?;
    if n == 0 {
        return Err(not_found());
    }
    drop(client);
    // The redactor's list stays as small as the channel table.
    channel::register_secrets(&state.pool, &state.database_url).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
