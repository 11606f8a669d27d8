//! `/api/heartbeats` and `/api/projects` (webhooks are channels now: `crate::notify`).
//!
//! Every query is scoped by the caller's project, so another project's heartbeat
//! is simply not found (404, never 403: nothing leaks). The admin key sees every
//! project's heartbeats, so `heartbeat status` covers the daemon's own jobs too.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::dependency::{self, ParentError};
use super::event_log::{self, DetectionEvent};
use super::heartbeat::{
    self, CreateError, Heartbeat, HeartbeatView, Limits, NewHeartbeat, Tags, COLUMNS,
};
use super::schedule::{parse_tz, HeartbeatSchedule};
use super::selfcheck::{self, JobHeartbeatError};
use super::silence;
use super::status::{Cause, StoredStatus, Thresholds};
use super::withhold::Withheld;
use super::MAX_PINGS_KEPT;
use crate::auth::{Caller, Role};
use crate::error::{fields, ApiError, ApiJson, ApiResult, NOT_BLANK_PATTERN};
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
        .routes(routes!(events))
        .routes(routes!(list_projects, create_project))
        .merge(super::silence::routes::routes())
}

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
    heartbeat::find_visible(client, id, caller.project_id, caller.role == Role::Admin)
        .await?
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
    #[param(min_length = 1, max_length = 50, pattern = r"^[A-Za-z0-9\-_.:/]+$")]
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
    let rows: Vec<Heartbeat> = rows.iter().map(Heartbeat::from_row).collect();
    let heartbeats = views(&client, &rows, now, &base).await?;
    Ok(ApiJson(HeartbeatList { heartbeats }).into_response())
}

/// The API views of `heartbeats` at `now`, each with the silence covering it.
async fn views(
    client: &tokio_postgres::Client,
    heartbeats: &[Heartbeat],
    now: DateTime<Utc>,
    base: &str,
) -> ApiResult<Vec<HeartbeatView>> {
    let refs: Vec<&Heartbeat> = heartbeats.iter().collect();
    let silences = silence::covering(client, &refs).await?;
    let holding = silence::holding(&silences, now);
    Ok(heartbeats
        .iter()
        .map(|hb| {
            let mut view = hb.view(now, base);
            view.silenced_until = silence::silenced_until(&holding, hb);
            view
        })
        .collect())
}

/// One heartbeat's view (see [`views`]).
async fn view_one(
    client: &tokio_postgres::Client,
    hb: Heartbeat,
    base: &str,
) -> ApiResult<HeartbeatView> {
    let mut list = views(client, std::slice::from_ref(&hb), Utc::now(), base).await?;
    Ok(list.remove(0))
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
    Ok(ApiJson(view_one(&client, hb, &base_url(&state)).await?).into_response())
}

/// Body of `POST /api/heartbeats`: unset fields take defaults. `period_seconds`
/// and `schedule` exclude each other (the `anyOf` says so).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatCreate {
    /// 1 to 200 characters (before trimming), not only white space; unique in
    /// the project.
    pub name: String,
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub period_seconds: Option<i32>,
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub grace_seconds: Option<i32>,
    pub schedule: Option<String>,
    pub tz: Option<String>,
    pub paused: Option<bool>,
    /// Where its alerts go: `"all"` the project's channels (the default), a list
    /// of channel ids, or `[]` for none.
    pub channels: Option<Routing>,
    /// Failures in a row (fail pings, non-zero exit codes, missed deadlines)
    /// before it is down: 1 to 100 (default 1).
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub failure_threshold: Option<i32>,
    /// Successes in a row before a down heartbeat is up again: 1 to 100
    /// (default 1).
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub recovery_threshold: Option<i32>,
    /// Free-form labels: at most 20, each 1 to 50 letters, digits or `-_.:/`;
    /// on update the list replaces the old one.
    pub tags: Option<Vec<String>>,
    /// Schedule heartbeats: seconds around a fire time within which a run must
    /// start (else it is `missed`); a success earlier is `early`. 0 switches it off.
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub start_margin_seconds: Option<i32>,
    /// Seconds a started run may take before it is a `timeout`, each `rid` on its
    /// own clock. 0 switches it off.
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub max_runtime_seconds: Option<i32>,
    /// A success sooner than this many seconds after the previous one is `early`.
    /// 0 switches it off.
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub min_interval_seconds: Option<i32>,
    /// A run that finishes sooner than this many seconds after its start is
    /// `too_fast`. 0 switches it off.
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub min_runtime_seconds: Option<i32>,
    /// Heartbeats of the project whose being down withholds this one's alerts
    /// (at most 20; no cycles); on update the list replaces the old one.
    pub parents: Option<Vec<Uuid>>,
}

/// A heartbeat's channels, as a client gives them.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Routing {
    /// `"all"`.
    All(String),
    List(Vec<Uuid>),
}

/// The stored form of `channels`: None for all; a list is checked against the
/// caller's project, so a heartbeat never routes to another project's channel.
async fn routing(
    client: &tokio_postgres::Client,
    project: Uuid,
    input: Option<&Routing>,
    current: Option<Option<Vec<Uuid>>>,
) -> ApiResult<Option<Vec<Uuid>>> {
    match input {
        None => Ok(current.unwrap_or(None)),
        Some(Routing::All(s)) if s == "all" => Ok(None),
        Some(Routing::All(_)) => Err(invalid("channels: \"all\" or a list of channel ids".into())),
        Some(Routing::List(ids)) => {
            let mut ids = ids.clone();
            ids.sort();
            ids.dedup();
            let found: i64 = client
                .query_one(
                    "SELECT count(*) FROM heartbeat.channel
                     WHERE project_id = $1 AND channel_id = ANY($2)",
                    &[&project, &ids],
                )
                .await?
                .get(0);
            if found != ids.len() as i64 {
                return Err(invalid(
                    "channels: every id must be a channel of this project".into(),
                ));
            }
            Ok(Some(ids))
        }
    }
}

/// Body of `PATCH /api/heartbeats/{id}`: unset fields are kept.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatPatch {
    #[serde(default, deserialize_with = "fields::non_null_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub period_seconds: Option<i32>,
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub grace_seconds: Option<i32>,
    pub schedule: Option<String>,
    pub tz: Option<String>,
    pub paused: Option<bool>,
    /// Where its alerts go: `"all"` the project's channels, a list of channel
    /// ids, or `[]` for none; unset: kept.
    pub channels: Option<Routing>,
    /// Failures in a row (fail pings, non-zero exit codes, missed deadlines)
    /// before it is down: 1 to 100 (default 1).
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub failure_threshold: Option<i32>,
    /// Successes in a row before a down heartbeat is up again: 1 to 100
    /// (default 1).
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub recovery_threshold: Option<i32>,
    /// Free-form labels: at most 20, each 1 to 50 letters, digits or `-_.:/`;
    /// on update the list replaces the old one.
    pub tags: Option<Vec<String>>,
    /// Schedule heartbeats: seconds around a fire time within which a run must
    /// start (else it is `missed`); a success earlier is `early`. 0 switches it off.
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub start_margin_seconds: Option<i32>,
    /// Seconds a started run may take before it is a `timeout`, each `rid` on its
    /// own clock. 0 switches it off.
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub max_runtime_seconds: Option<i32>,
    /// A success sooner than this many seconds after the previous one is `early`.
    /// 0 switches it off.
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub min_interval_seconds: Option<i32>,
    /// A run that finishes sooner than this many seconds after its start is
    /// `too_fast`. 0 switches it off.
    #[serde(default, deserialize_with = "fields::integral_i32")]
    pub min_runtime_seconds: Option<i32>,
    /// Heartbeats of the project whose being down withholds this one's alerts
    /// (at most 20; no cycles); on update the list replaces the old one.
    pub parents: Option<Vec<Uuid>>,
}

/// The timing fields both bodies share, as [`timing`] reads them.
struct TimingInput<'a> {
    period_seconds: Option<i32>,
    grace_seconds: Option<i32>,
    schedule: Option<&'a str>,
    tz: Option<&'a str>,
}

/// The heartbeat body schemas, written out because no derive can say what the
/// server checks: lengths in characters, bounds, the IANA zone list, the shape
/// of a cron expression, and that `period_seconds` and `schedule` exclude each
/// other. What is still checked only by the server: a cron range written
/// backwards (`5-3`) and a day that never occurs in the given months
/// (`0 0 30 2 *`), answered 422 naming the field.
fn heartbeat_schema(create: bool) -> utoipa::openapi::schema::Schema {
    let name = json!({
        "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS,
        "pattern": NOT_BLANK_PATTERN,
        "description": "1 to 200 characters (before trimming), not only white space; unique in the project"
    });
    let zones: Vec<&str> = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).collect();
    let mut schema = json!({
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "name": name,
            "period_seconds": {
                "type": ["integer", "null"], "minimum": 1, "maximum": MAX_SECONDS,
                "description": "Seconds between expected pings (default a day); not with `schedule`"
            },
            "grace_seconds": {
                "type": ["integer", "null"], "minimum": 0, "maximum": MAX_SECONDS,
                "description": "Seconds past the expected time before down (default an hour)"
            },
            "schedule": {
                "type": ["string", "null"], "pattern": cron_pattern(),
                "description": "Five-field cron expression or a macro such as @daily; not with `period_seconds`"
            },
            "tz": {
                "type": ["string", "null"],
                "enum": zones.iter().map(|z| json!(z)).chain([Value::Null]).collect::<Vec<_>>(),
                "description": "IANA time zone for `schedule` (default UTC)"
            },
            "paused": {"type": ["boolean", "null"]},
            "failure_threshold": {
                "type": ["integer", "null"], "minimum": 1, "maximum": 100,
                "description": "Failures in a row (fail pings, non-zero exit codes, missed deadlines) before it is down (default 1)"
            },
            "recovery_threshold": {
                "type": ["integer", "null"], "minimum": 1, "maximum": 100,
                "description": "Successes in a row before a down heartbeat is up again (default 1)"
            },
            "start_margin_seconds": {
                "type": ["integer", "null"], "minimum": 0, "maximum": MAX_SECONDS,
                "description": "Schedule heartbeats: seconds around a fire time within which a run must start (else missed); a success earlier is early; 0 switches it off"
            },
            "max_runtime_seconds": {
                "type": ["integer", "null"], "minimum": 0, "maximum": MAX_SECONDS,
                "description": "Seconds a started run may take before it is a timeout, each rid on its own clock; 0 switches it off"
            },
            "min_interval_seconds": {
                "type": ["integer", "null"], "minimum": 0, "maximum": MAX_SECONDS,
                "description": "A success sooner than this after the previous one is early; 0 switches it off"
            },
            "min_runtime_seconds": {
                "type": ["integer", "null"], "minimum": 0, "maximum": MAX_SECONDS,
                "description": "A run that finishes sooner than this after its start is too_fast; 0 switches it off"
            },
            "parents": {
                "type": ["array", "null"], "maxItems": 20,
                "items": {"type": "string", "format": "uuid"},
                "description": "Heartbeats of the project whose being down withholds this one's alerts; no cycles; on update the list replaces the old one"
            },
            "tags": {
                "type": ["array", "null"], "maxItems": 20,
                "items": {"type": "string", "pattern": "^[A-Za-z0-9_.:/-]{1,50}$"},
                "description": "Free-form labels; on update the list replaces the old one"
            },
            "channels": {
                "anyOf": [
                    {"type": "string", "enum": ["all"]},
                    {"type": "array", "items": {"type": "string", "format": "uuid"}},
                    {"type": "null"}
                ],
                "description": "Where its alerts go: \"all\" the project's channels (the default), a list of channel ids of this project, or [] for none"
            }
        },
        "anyOf": [
            {"properties": {"schedule": {"type": "null"}}},
            {"properties": {"period_seconds": {"type": "null"}}}
        ]
    });
    if create {
        schema["required"] = json!(["name"]);
        schema["description"] =
            json!("Unset fields take defaults; `period_seconds` and `schedule` exclude each other");
    } else {
        schema["description"] = json!("Fields to change; unset fields are kept; `period_seconds` and `schedule` exclude each other");
    }
    serde_json::from_value(schema).expect("the heartbeat schema is a schema")
}

impl utoipa::PartialSchema for HeartbeatCreate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        heartbeat_schema(true).into()
    }
}

impl utoipa::ToSchema for HeartbeatCreate {}

impl utoipa::PartialSchema for HeartbeatPatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        heartbeat_schema(false).into()
    }
}

impl utoipa::ToSchema for HeartbeatPatch {}

/// White space as `str::trim` and `split_whitespace` count it, spelled out.
const WS: &str =
    "[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";

/// The shape of what `schedule::cron::CronSchedule::parse` takes, as a pattern:
/// five fields of comma lists of `*`, a value or a range, a step only after `*`
/// or a range, values within each field's bounds (leading zeros allowed),
/// month and day names in any case; or a macro.
fn cron_pattern() -> String {
    fn any_case(word: &str) -> String {
        word.chars()
            .map(|c| format!("[{}{}]", c.to_ascii_uppercase(), c.to_ascii_lowercase()))
            .collect()
    }
    fn names(list: &[&str]) -> String {
        list.iter()
            .map(|n| any_case(n))
            .collect::<Vec<_>>()
            .join("|")
    }
    let field = |value: &str| {
        let step = "(?:/0*[1-9][0-9]{0,8})?";
        let item = format!("(?:\\*{step}|(?:{value})-(?:{value}){step}|(?:{value}))");
        format!("{item}(?:,{item})*")
    };
    let minute = field("0*[1-5]?[0-9]");
    let hour = field("0*(?:2[0-3]|1?[0-9])");
    let dom = field("0*(?:3[01]|[12][0-9]|[1-9])");
    let months = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = field(&format!("0*(?:1[0-2]|[1-9])|{}", names(&months)));
    let days = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
    let dow = field(&format!("0*[0-7]|{}", names(&days)));
    let macros = names(&[
        "yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly",
    ]);
    format!("^{WS}*(?:@(?:{macros})|{minute}{WS}+{hour}{WS}+{dom}{WS}+{month}{WS}+{dow}){WS}*$")
}

/// The tags of `input`, or `current`'s (none on create), checked.
fn tags(input: Option<&Vec<String>>, current: Option<&Heartbeat>) -> ApiResult<Vec<String>> {
    match input {
        Some(raw) => Tags::parse(raw)
            .map(|t| t.as_slice().to_vec())
            .map_err(|e| invalid(format!("tags: {e}"))),
        None => Ok(current.map(|hb| hb.tags.clone()).unwrap_or_default()),
    }
}

/// Merges the detection rules of `input` over `current` (None on create) and
/// checks them: 0 switches a rule off, unset keeps it.
fn limits(input: [Option<i32>; 4], current: Option<&Heartbeat>) -> ApiResult<Limits> {
    let current = current.map(|hb| hb.limits).unwrap_or_default();
    let names = [
        "start_margin_seconds",
        "max_runtime_seconds",
        "min_interval_seconds",
        "min_runtime_seconds",
    ];
    let kept = [
        current.start_margin_seconds,
        current.max_runtime_seconds,
        current.min_interval_seconds,
        current.min_runtime_seconds,
    ];
    let mut merged = [None; 4];
    for i in 0..4 {
        merged[i] = match input[i] {
            None => kept[i],
            Some(0) => None,
            Some(v) if (1..=MAX_SECONDS).contains(&v) => Some(v),
            Some(_) => {
                return Err(invalid(format!(
                    "{}: must be between 0 (off) and {MAX_SECONDS}",
                    names[i]
                )))
            }
        };
    }
    Ok(Limits {
        start_margin_seconds: merged[0],
        max_runtime_seconds: merged[1],
        min_interval_seconds: merged[2],
        min_runtime_seconds: merged[3],
    })
}

/// Largest failure or recovery threshold.
const MAX_THRESHOLD: i32 = 100;

/// Merges the thresholds of `input` over `current` (None on create) and checks
/// them.
fn thresholds(
    failure: Option<i32>,
    recovery: Option<i32>,
    current: Option<&Heartbeat>,
) -> ApiResult<Thresholds> {
    let current = current.map(|hb| hb.thresholds).unwrap_or_default();
    let t = Thresholds {
        failure: failure.unwrap_or(current.failure),
        recovery: recovery.unwrap_or(current.recovery),
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

/// Longest heartbeat name, in characters as given (JSON Schema's `maxLength`
/// counts the same way: code points, before any trimming).
const MAX_NAME_CHARS: usize = 200;

fn check_name(name: &str) -> ApiResult<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(format!(
            "name: must be 1 to {MAX_NAME_CHARS} characters, not only white space"
        )));
    }
    Ok(trimmed.to_string())
}

/// Merges `input` over `current` (None on create) and checks the result.
fn timing(input: TimingInput<'_>, current: Option<&Heartbeat>) -> ApiResult<Timing> {
    if input.period_seconds.is_some() && input.schedule.is_some() {
        return Err(invalid(
            "give either period_seconds or schedule, not both".into(),
        ));
    }
    let (period_seconds, schedule) = match (input.period_seconds, input.schedule, current) {
        (Some(p), _, _) => (Some(p), None),
        (None, Some(s), _) => (None, Some(s.trim().to_string())),
        (None, None, Some(hb)) => (hb.period_seconds, hb.schedule.clone()),
        (None, None, None) => (Some(DEFAULT_PERIOD), None),
    };
    let tz = input
        .tz
        .map(str::to_string)
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

#[utoipa::path(post, path = "/api/heartbeats", operation_id = "createHeartbeat", tag = "heartbeats", request_body(content = HeartbeatCreate, description = "name, period_seconds + grace_seconds or schedule + tz"), responses((status = 201, description = "Created, with its token and ping URL", body = HeartbeatView), (status = 409, description = "A heartbeat of that name exists in the project (`conflict`), or the project has as many heartbeats as allowed (`heartbeat_limit`)", body = crate::error::ErrorEnvelope), (status = 422, description = "Invalid field, named in the message; also a cron range written backwards or a day that never occurs in the given months, which the schema cannot state; parents not in the project", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    ApiJson(input): ApiJson<HeartbeatCreate>,
) -> ApiResult<Response> {
    let name = check_name(&input.name)?;
    let t = timing(
        TimingInput {
            period_seconds: input.period_seconds,
            grace_seconds: input.grace_seconds,
            schedule: input.schedule.as_deref(),
            tz: input.tz.as_deref(),
        },
        None,
    )?;
    let th = thresholds(input.failure_threshold, input.recovery_threshold, None)?;
    let tags = tags(input.tags.as_ref(), None)?;
    let limits = limits(
        [
            input.start_margin_seconds,
            input.max_runtime_seconds,
            input.min_interval_seconds,
            input.min_runtime_seconds,
        ],
        None,
    )?;
    let mut client = state.pool.get().await?;
    let channels = routing(&client, caller.project_id, input.channels.as_ref(), None).await?;
    let parents = dependency::check_parents(
        &client,
        caller.project_id,
        None,
        input.parents.as_deref().unwrap_or(&[]),
    )
    .await?;
    let new = NewHeartbeat {
        name,
        slug: None,
        period_seconds: t.period_seconds,
        schedule: t.schedule,
        tz: t.tz,
        grace_seconds: t.grace_seconds,
        paused: input.paused.unwrap_or(false),
        channels,
        thresholds: th,
        tags,
        limits,
        parents,
    };
    let limit = state.config.monitor.max_heartbeats_per_project;
    let id = heartbeat::create(&mut client, caller.project_id, &new, limit)
        .await
        .map_err(|e| match e {
            CreateError::Limit { .. } => {
                ApiError::client(StatusCode::CONFLICT, "heartbeat_limit", e.to_string())
            }
            CreateError::NameTaken(_) => ApiError::conflict(e.to_string()),
            CreateError::Db(e) => e.into(),
        })?;
    let hb = fetch(&client, &caller, id).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(hb.view(Utc::now(), &base_url(&state))),
    )
        .into_response())
}

/// The name and timing fields `input` would give a new value, for
/// [`selfcheck::check_edit`].
fn changed_fields(input: &HeartbeatPatch, current: &Heartbeat) -> Vec<&'static str> {
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

impl From<ParentError> for ApiError {
    fn from(e: ParentError) -> Self {
        match e {
            ParentError::Db(e) => e.into(),
            ParentError::Cycle(_) => ApiError::unprocessable("dependency_cycle", e.to_string()),
            other => ApiError::unprocessable("invalid_input", other.to_string()),
        }
    }
}

impl From<JobHeartbeatError> for ApiError {
    fn from(e: JobHeartbeatError) -> Self {
        ApiError::client(StatusCode::CONFLICT, "job_heartbeat", e.to_string())
    }
}

/// Editing keeps the last ping, the history and the stored status; the deadline
/// is set to now so the deadline loop re-evaluates under the new timing and rules
/// (and recomputes `early_before`; the open runs are dropped when no run-time
/// rule is left) (and
/// records a flip if the new timing changes the status). New thresholds apply to
/// the current streaks at once: a streak that now reaches one changes the state.
/// A new name derives a new slug, as healthchecks.io's v1/v2 API does.
const UPDATE_HEARTBEAT: &str = "
UPDATE heartbeat.heartbeat SET
    name = $2, slug = CASE WHEN name = $2 THEN slug ELSE heartbeat.slugify($2) END,
    period_seconds = $3, schedule = $4, tz = $5, grace_seconds = $6,
    paused = $7, channels = $8, failure_threshold = $9, recovery_threshold = $10, tags = $11,
    failing = CASE WHEN NOT failing AND fail_streak >= $9 THEN true
                   WHEN failing AND ok_streak >= $10 THEN false ELSE failing END,
    failing_since = CASE WHEN (NOT failing AND fail_streak >= $9) OR (failing AND ok_streak >= $10)
                         THEN now() ELSE failing_since END,
    resumed_at = CASE WHEN paused AND NOT $7 THEN now() ELSE resumed_at END,
    start_margin_seconds = $12, max_runtime_seconds = $13, min_interval_seconds = $14,
    min_runtime_seconds = $15,
    runs = CASE WHEN $13::int4 IS NULL AND $15::int4 IS NULL THEN '[]' ELSE runs END,
    early_before = NULL, fire_times = NULL, parents = $16,
    deadline = now()
WHERE heartbeat_id = $1";

#[utoipa::path(patch, path = "/api/heartbeats/{id}", operation_id = "updateHeartbeat", tag = "heartbeats", params(("id" = Uuid, Path)), request_body(content = HeartbeatPatch, description = "Fields to change; history and status are kept"), responses((status = 200, description = "The updated heartbeat", body = HeartbeatView), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope), (status = 409, description = "Another heartbeat of the project has that name (`conflict`), or a change of name or timing to one of the daemon's own job heartbeats (`job_heartbeat`; they can only be paused)", body = crate::error::ErrorEnvelope), (status = 422, description = "Invalid field, named in the message; also a cron range written backwards or a day that never occurs in the given months, which the schema cannot state; parents not in the project, or that would make a cycle (`dependency_cycle`, naming it)", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    _: ApiQuery<NoQuery>,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<HeartbeatPatch>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let client = state.pool.get().await?;
    let current = fetch(&client, &caller, id).await?;
    let name = match &input.name {
        Some(n) => check_name(n)?,
        None => current.name.clone(),
    };
    selfcheck::check_edit(&current, &changed_fields(&input, &current))?;
    let t = timing(
        TimingInput {
            period_seconds: input.period_seconds,
            grace_seconds: input.grace_seconds,
            schedule: input.schedule.as_deref(),
            tz: input.tz.as_deref(),
        },
        Some(&current),
    )?;
    let th = thresholds(
        input.failure_threshold,
        input.recovery_threshold,
        Some(&current),
    )?;
    let tags = tags(input.tags.as_ref(), Some(&current))?;
    let limits = limits(
        [
            input.start_margin_seconds,
            input.max_runtime_seconds,
            input.min_interval_seconds,
            input.min_runtime_seconds,
        ],
        Some(&current),
    )?;
    let parents = match &input.parents {
        Some(list) => {
            dependency::check_parents(&client, current.project_id, Some(id), list).await?
        }
        None => current.parents.clone(),
    };
    let paused = input.paused.unwrap_or(current.paused);
    let channels = routing(
        &client,
        current.project_id,
        input.channels.as_ref(),
        Some(current.channels.clone()),
    )
    .await?;
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
                &channels,
                &th.failure,
                &th.recovery,
                &tags,
                &limits.start_margin_seconds,
                &limits.max_runtime_seconds,
                &limits.min_interval_seconds,
                &limits.min_runtime_seconds,
                &parents,
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
    Ok(ApiJson(view_one(&client, hb, &base_url(&state)).await?).into_response())
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
    heartbeat::delete(&client, id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/heartbeats/{id}/pings` query: a window and a bound, so a timeline
/// of the last day reads one day, not the whole ring.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Only pings received at or after this instant (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// At most this many, newest first (default: every kept ping,
    /// `monitor.pings_kept`).
    #[param(minimum = 1, maximum = 100000)]
    limit: Option<i64>,
}

/// `GET /api/heartbeats/{id}/flips` query (its own type for its own bounds in
/// the OpenAPI document).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FlipQuery {
    /// Only status changes at or after this instant (RFC 3339).
    since: Option<DateTime<Utc>>,
    /// At most this many, newest first (default 1000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<i64>,
}

/// Flips one answer holds by default, and at most.
const DEFAULT_FLIPS: i64 = 1000;
const MAX_FLIPS: i64 = 10_000;

impl HistoryQuery {
    /// The `limit` asked for, `default` when none, refused outside `1..=max`.
    fn limit(&self, max: i64, default: i64) -> ApiResult<i64> {
        match self.limit {
            None => Ok(default),
            Some(n) if (1..=max).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::unprocessable(
                "invalid_query",
                format!("limit must be between 1 and {max}, not {n}"),
            )),
        }
    }
}

/// One recorded ping.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PingView {
    /// Consecutive per heartbeat.
    seq: i64,
    at: DateTime<Utc>,
    /// `success`, `fail`, `start`, `log`, or `ign`: a ping the heartbeat
    /// ignored because it takes only POST pings (healthchecks.io's `methods`).
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
    /// A success the detection rules count as a failure: `early` or `too_fast`.
    event: Option<Cause>,
    /// Why, in words (the interval or run time measured and the rule's limit).
    reason: Option<String>,
}

/// `GET /api/heartbeats/{id}/pings`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PingList {
    /// Newest first.
    pings: Vec<PingView>,
}

#[utoipa::path(get, path = "/api/heartbeats/{id}/pings", operation_id = "listHeartbeatPings", tag = "heartbeats", params(("id" = Uuid, Path), HistoryQuery), responses((status = 200, description = "Recent pings, newest first", body = PingList), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope), (status = 422, description = "A malformed `since` or a `limit` out of bounds", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn pings(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> ApiResult<Response> {
    let limit = q.limit(MAX_PINGS_KEPT, state.config.monitor.pings_kept)?;
    let client = state.pool.get().await?;
    let hb = fetch(&client, &caller, parse_id(&id)?).await?;
    let rows = client
        .query(
            "SELECT seq, at, kind, exit_code, rid, duration_ms, source, user_agent, body, event,
                    reason
             FROM heartbeat.ping
             WHERE heartbeat_id = $1 AND ($3::timestamptz IS NULL OR at >= $3)
             ORDER BY seq DESC LIMIT $2",
            &[&hb.id, &limit, &q.since],
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
            event: r.get(9),
            reason: r.get(10),
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
    /// What caused it: for a flip to `down`, `fail`, `missed`, `timeout`,
    /// `early` or `too_fast`; `success` for a recovery; null otherwise.
    cause: Option<String>,
    /// Its alert was withheld: `silenced` (a silence covered the heartbeat) or
    /// `suppressed` (a parent was down); null when it alerted or alerts nothing.
    withheld: Option<Withheld>,
}

/// `GET /api/heartbeats/{id}/flips`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct FlipList {
    /// Newest first, at most 1000.
    flips: Vec<FlipView>,
}

#[utoipa::path(get, path = "/api/heartbeats/{id}/flips", operation_id = "listHeartbeatFlips", tag = "heartbeats", params(("id" = Uuid, Path), FlipQuery), responses((status = 200, description = "Status transitions, newest first", body = FlipList), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope), (status = 422, description = "A malformed `since` or a `limit` out of bounds", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn flips(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<FlipQuery>,
) -> ApiResult<Response> {
    let q = HistoryQuery {
        since: q.since,
        limit: q.limit,
    };
    let limit = q.limit(MAX_FLIPS, DEFAULT_FLIPS)?;
    let client = state.pool.get().await?;
    let hb = fetch(&client, &caller, parse_id(&id)?).await?;
    let rows = client
        .query(
            "SELECT at, from_status, to_status, detected_at, cause, withheld FROM heartbeat.flip
             WHERE heartbeat_id = $1 AND ($3::timestamptz IS NULL OR at >= $3)
             ORDER BY flip_id DESC LIMIT $2",
            &[&hb.id, &limit, &q.since],
        )
        .await?;
    let flips: Vec<FlipView> = rows
        .iter()
        .map(|r| FlipView {
            at: r.get(0),
            from: r.get(1),
            to: r.get(2),
            detected_at: r.get(3),
            cause: r.get(4),
            withheld: r.get(5),
        })
        .collect();
    Ok(ApiJson(FlipList { flips }).into_response())
}

/// `GET /api/heartbeats/{id}/events`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct EventList {
    /// Newest first, at most 1000: the deadline loop's newest 100, and the
    /// pings in the history that carry an event.
    events: Vec<DetectionEvent>,
}

#[utoipa::path(get, path = "/api/heartbeats/{id}/events", operation_id = "listHeartbeatEvents", tag = "heartbeats", params(("id" = Uuid, Path)), responses((status = 200, description = "Detection events (missed, timeout, early, too_fast), below the failure threshold too, newest first", body = EventList), (status = 404, description = "Not found in the caller's project", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Response> {
    let client = state.pool.get().await?;
    let hb = fetch(&client, &caller, parse_id(&id)?).await?;
    let events = event_log::list(&client, hb.id).await?;
    Ok(ApiJson(EventList { events }).into_response())
}

/// Body of `POST /api/projects`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectInput {
    /// 1 to 100 characters (before trimming), not only white space; unique.
    #[schema(schema_with = project_name_schema)]
    name: String,
}

fn project_name_schema() -> utoipa::openapi::schema::Schema {
    serde_json::from_value(json!({
        "type": "string", "minLength": 1, "maxLength": 100, "pattern": NOT_BLANK_PATTERN,
        "description": "1 to 100 characters (before trimming), not only white space; unique"
    }))
    .expect("the project name schema is a schema")
}

/// One project, without its keys.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProjectSummary {
    project_id: Uuid,
    name: String,
    /// The secret half of `/ping/{ping_key}/{slug}` URLs.
    ping_key: String,
    created_at: DateTime<Utc>,
}

/// `GET /api/projects`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ProjectList {
    /// Ordered by name.
    projects: Vec<ProjectSummary>,
}

#[utoipa::path(post, path = "/api/projects", operation_id = "createProject", tag = "projects", request_body(content = ProjectInput, description = "name"), responses((status = 201, description = "Created, with its keys (shown once)", body = crate::auth::CreatedProject), (status = 409, description = "A project of that name exists (`conflict`)", body = crate::error::ErrorEnvelope), (status = 422, description = "Invalid field, named in the message", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
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
            "SELECT project_id, name, created_at, ping_key FROM heartbeat.project ORDER BY name",
            &[],
        )
        .await?;
    let projects = rows
        .iter()
        .map(|r| ProjectSummary {
            project_id: r.get(0),
            name: r.get(1),
            created_at: r.get(2),
            ping_key: r.get(3),
        })
        .collect();
    Ok(ApiJson(ProjectList { projects }).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::schedule::HeartbeatSchedule;

    fn matches(pattern: &str, text: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(text)
    }

    #[test]
    fn the_cron_pattern_takes_what_the_parser_takes() {
        let pattern = cron_pattern();
        for good in [
            "* * * * *",
            "*/5 * * * *",
            "0 0 * * 0",
            "0 0 * * 7",
            "30 4 1,15 * MON-fri",
            "0-59/15 00 1-31 jan-DEC sun",
            "  @Daily ",
            "@hourly",
            "5 4 * * sun\t",
            "007 23 31 12 *",
        ] {
            assert!(matches(&pattern, good), "pattern refuses {good:?}");
            assert!(HeartbeatSchedule::parse(good, "UTC").is_ok(), "{good:?}");
        }
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 8",
            "5/2 * * * *",
            "*/0 * * * *",
            "@reboot",
            "* * * * * *",
            "1,,2 * * * *",
        ] {
            assert!(!matches(&pattern, bad), "pattern takes {bad:?}");
            assert!(HeartbeatSchedule::parse(bad, "UTC").is_err(), "{bad:?}");
        }
        // What only the server can tell: both match the shape and are refused.
        for semantic in ["5-3 * * * *", "0 0 30 2 *"] {
            assert!(matches(&pattern, semantic));
            assert!(HeartbeatSchedule::parse(semantic, "UTC").is_err());
        }
    }

    #[test]
    fn names_are_counted_in_characters_before_trimming() {
        assert!(check_name(&"é".repeat(200)).is_ok());
        assert!(check_name(&"é".repeat(201)).is_err());
        assert_eq!(check_name("  a  ").unwrap(), "a");
        assert!(check_name(&format!("a{}", " ".repeat(200))).is_err());
        assert!(check_name(" \u{3000}\t").is_err());
    }

    #[test]
    fn integral_floats_are_integers_and_fractions_are_not() {
        let p: HeartbeatPatch = serde_json::from_str(r#"{"period_seconds": 1046.0}"#).unwrap();
        assert_eq!(p.period_seconds, Some(1046));
        let p: HeartbeatPatch = serde_json::from_str(r#"{"grace_seconds": null}"#).unwrap();
        assert_eq!(p.grace_seconds, None);
        for bad in [
            r#"{"period_seconds": 1046.5}"#,
            r#"{"period_seconds": 1e12}"#,
            r#"{"period_seconds": "60"}"#,
            r#"{"name": null}"#,
        ] {
            assert!(
                serde_json::from_str::<HeartbeatPatch>(bad).is_err(),
                "{bad}"
            );
        }
        assert!(serde_json::from_str::<HeartbeatCreate>(r#"{"name": null}"#).is_err());
        assert!(serde_json::from_str::<HeartbeatCreate>(r#"{}"#).is_err());
    }
}
