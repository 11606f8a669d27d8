//! HTTP routes of the jobs engine (docs/api.md, "Jobs").

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::engine::JobRequest;
use super::engine::Submitted;
use super::error::EngineError;
use super::follow::{follow, Followed};
use super::live::JobEvent;
use super::model::{Job, JobKind, Scope, Trigger};
use crate::error::ErrorEnvelope;
use crate::error::NoQuery;
use crate::error::{ApiError, ApiQuery, ApiResult};
use crate::state::AppState;

use super::model::{MetricIds, MAX_METRIC_IDS};
use super::range::{Range, RangeError, RangeSet};

/// The jobs routes with their OpenAPI operations: each path comes from its
/// handler's `#[utoipa::path]`, so a route cannot exist without its entry.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_recompute))
        .routes(routes!(get_recompute))
        .routes(routes!(active_recompute))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job, post_job))
        .routes(routes!(cancel_job))
        .routes(routes!(job_events))
}

/// Body of `POST /api/metrics/recompute` and (optionally) `POST /api/jobs/{kind}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobRequestBody {
    /// `"all"` (default) or a list of metric ids; only for recompute.
    #[serde(default)]
    #[schema(value_type = MetricIds)]
    pub metric_ids: Scope,
    /// Who asks; default `api`.
    #[serde(default)]
    #[schema(value_type = Trigger)]
    pub trigger: Trigger,
    /// Recompute only: backfill the buckets from here (an RFC 3339 time or a date,
    /// meaning its midnight UTC), whatever their state; at most
    /// `refresh.history_days` back.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[^\\u0000]*$")]
    pub from: Option<String>,
    /// Recompute only: the backfill's end, excluded (default: now); needs `from`.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = "^[^\\u0000]*$")]
    pub to: Option<String>,
    /// Recompute with `from` only: answer the buckets each metric would
    /// recompute (200) and run nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// A dry run's answer: what the backfill would recompute.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DryRun {
    /// Always true: nothing ran.
    pub dry_run: bool,
    pub metrics: Vec<crate::refresh::backfill::MetricPlan>,
}

/// `GET /api/metrics/active-job`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ActiveJob {
    /// The running recompute, or null.
    pub job: Option<Job>,
    /// The queued follow-up, or null.
    pub queued: Option<Job>,
}

/// `GET /api/jobs`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<Job>,
}

/// Turns a metric id list into a scope, rejecting empty, oversized or unknown lists.
fn metric_scope(state: &AppState, scope: Scope) -> ApiResult<Scope> {
    let Scope::Metrics(ids) = scope else {
        return Ok(Scope::All);
    };
    if ids.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_input",
            "metric_ids must not be empty; use \"all\" for every metric",
        ));
    }
    if ids.len() > MAX_METRIC_IDS {
        return Err(ApiError::unprocessable(
            "invalid_input",
            format!(
                "metric_ids holds {} ids; at most {MAX_METRIC_IDS}",
                ids.len()
            ),
        ));
    }
    let unknown = state.metric_catalog.unknown(&ids);
    if !unknown.is_empty() {
        let shown: Vec<String> = unknown.iter().take(20).map(|s| format!("'{s}'")).collect();
        let more = unknown.len().saturating_sub(20);
        return Err(ApiError::unprocessable(
            "unknown_metric_ids",
            format!(
                "unknown metric ids: {}{}",
                shown.join(", "),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            ),
        ));
    }
    Ok(Scope::Metrics(ids))
}

impl From<RangeError> for ApiError {
    fn from(e: RangeError) -> Self {
        ApiError::unprocessable("invalid_range", e.to_string())
    }
}

/// What a recompute request asks: a scope (with the backfill range, if any, for
/// each metric asked), or a dry run's plan.
enum Recompute {
    Submit(Scope),
    DryRun(DryRun),
}

fn recompute_request(state: &AppState, body: JobRequestBody) -> ApiResult<Recompute> {
    if matches!(body.metric_ids, Scope::Backfill(_)) {
        return Err(ApiError::unprocessable(
            "invalid_input",
            "metric_ids must be \"all\" or a list of metric ids; a range is from and to",
        ));
    }
    let scope = metric_scope(state, body.metric_ids)?;
    let now = Utc::now();
    let history_days = state.config.refresh.history_days;
    let range = Range::requested(body.from.as_deref(), body.to.as_deref(), now, history_days)?;
    let Some(range) = range else {
        if body.dry_run {
            return Err(ApiError::unprocessable(
                "invalid_input",
                "dry_run needs from (and optionally to): it answers a backfill's buckets",
            ));
        }
        return Ok(Recompute::Submit(scope));
    };
    let ids = match &scope {
        Scope::Metrics(ids) => ids.clone(),
        _ => state.metric_catalog.ids(),
    };
    let scope = Scope::backfill(&ids, &RangeSet::of(range));
    if body.dry_run {
        let ranges = scope.ranges().cloned().unwrap_or_default();
        return Ok(Recompute::DryRun(DryRun {
            dry_run: true,
            metrics: crate::refresh::backfill::plan(
                &state.config.definitions_dir(),
                &ranges,
                now,
                history_days,
            ),
        }));
    }
    Ok(Recompute::Submit(scope))
}

/// The one mapping of the engine's errors to HTTP.
impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::ShuttingDown => ApiError::ShuttingDown,
            EngineError::Unavailable(msg) => ApiError::Unavailable(msg),
            EngineError::NotFound(_) => ApiError::not_found(e.to_string()),
            EngineError::AlreadyFinished { .. } | EngineError::NoLongerRunning(_) => {
                ApiError::conflict(e.to_string())
            }
            EngineError::Pool(e) => ApiError::Pool(e),
            EngineError::Db(e) => ApiError::Db(e),
        }
    }
}

fn accepted(submitted: super::engine::Submitted) -> Response {
    (StatusCode::ACCEPTED, Json(submitted)).into_response()
}

#[utoipa::path(post, path = "/api/metrics/recompute", operation_id = "submitRecompute", tag = "jobs",
    request_body = JobRequestBody,
    responses(
        (status = 200, description = "A dry run (`dry_run: true`): the buckets each metric would recompute; nothing ran", body = DryRun),
        (status = 202, description = "The job serving this request", body = Submitted),
        (status = 400, description = "Malformed JSON", body = ErrorEnvelope),
        (status = 422, description = "Metric ids unknown to the catalog (`unknown_metric_ids`, named; the catalog follows the definitions directory, so the document cannot list them), a range that is reversed, in the future, beyond `refresh.history_days` or unparsable (`invalid_range`, naming the bound), `dry_run` without `from`, or a bad field", body = ErrorEnvelope),
        (status = 503, description = "Shutting down", body = ErrorEnvelope),
    ),
    security((), ("bearer" = [])))]
async fn post_recompute(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    // A body, when there is one, must say it is JSON here (docs/api.md); no body
    // is all defaults, as on `POST /api/jobs/{kind}`.
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json && !body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::client(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a body must be sent as Content-Type: application/json (or send none for all defaults)",
        ));
    }
    let body = optional_body(&body)?;
    let trigger = body.trigger;
    let scope = match recompute_request(&state, body)? {
        Recompute::Submit(scope) => scope,
        Recompute::DryRun(plan) => return Ok(Json(plan).into_response()),
    };
    let submitted = state
        .jobs
        .submit(JobRequest {
            kind: JobKind::Recompute,
            scope,
            trigger,
        })
        .await?;
    Ok(accepted(submitted))
}

/// `POST /api/jobs/{kind}`: the body is optional (no body = all, trigger api).
#[utoipa::path(post, path = "/api/jobs/{key}", operation_id = "submitJob", tag = "jobs",
    params(("key" = JobKind, Path, description = "The lane: recompute, benchmarks, segments or audit")),
    request_body(content = JobRequestBody, description = "Optional; no body means all, trigger api"),
    responses(
        (status = 200, description = "A recompute's dry run (`dry_run: true`): the buckets each metric would recompute; nothing ran", body = DryRun),
        (status = 202, description = "The job serving this request", body = Submitted),
        (status = 404, description = "Unknown kind", body = ErrorEnvelope),
        (status = 422, description = "Metric ids unknown to the catalog (`unknown_metric_ids`, named), a bad range (`invalid_range`, naming the bound), `metric_ids`, `from`, `to` or `dry_run` for a kind other than recompute, or a bad field", body = ErrorEnvelope),
        (status = 503, description = "Shutting down", body = ErrorEnvelope),
    ),
    security((), ("bearer" = [])))]
async fn post_job(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
    Path(key): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let kind: JobKind = key.parse().map_err(ApiError::not_found)?;
    let body = optional_body(&body)?;
    let trigger = body.trigger;
    let scope = match kind {
        JobKind::Recompute => match recompute_request(&state, body)? {
            Recompute::Submit(scope) => scope,
            Recompute::DryRun(plan) => return Ok(Json(plan).into_response()),
        },
        _ if body.metric_ids != Scope::All => {
            return Err(ApiError::unprocessable(
                "invalid_input",
                format!("metric_ids applies only to recompute, not {kind}"),
            ))
        }
        _ if body.from.is_some() || body.to.is_some() || body.dry_run => {
            return Err(ApiError::unprocessable(
                "invalid_input",
                format!("from, to and dry_run apply only to recompute, not {kind}"),
            ))
        }
        _ => Scope::All,
    };
    let submitted = state
        .jobs
        .submit(JobRequest {
            kind,
            scope,
            trigger,
        })
        .await?;
    Ok(accepted(submitted))
}

/// A job-creating route's body: every field is optional, so no body (or only
/// whitespace, with or without a Content-Type) means all defaults, on every such
/// route alike.
fn optional_body(body: &[u8]) -> ApiResult<JobRequestBody> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(JobRequestBody::default());
    }
    let raw: Box<serde_json::value::RawValue> = serde_json::from_slice(body)
        .map_err(|e| ApiError::client(StatusCode::BAD_REQUEST, "malformed_json", e.to_string()))?;
    crate::error::json_object(raw.get())
}

fn parse_id(raw: &str) -> ApiResult<Uuid> {
    raw.parse()
        .map_err(|_| ApiError::not_found(format!("no job '{raw}': not a job id")))
}

fn no_such_job(id: Uuid) -> ApiError {
    ApiError::not_found(format!(
        "no job {id}: unknown, expired from retention, or lost in a restart"
    ))
}

#[utoipa::path(get, path = "/api/metrics/recompute/{id}", operation_id = "getRecompute", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "The recompute job", body = Job),
        (status = 404, description = "Unknown, expired, lost in a restart, or not a recompute", body = ErrorEnvelope),
    ),
    security((), ("bearer" = [])))]
async fn get_recompute(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Response> {
    let id = parse_id(&raw)?;
    match state.jobs.get(id).await? {
        Some(job) if job.kind == JobKind::Recompute => Ok(Json(job).into_response()),
        Some(job) => Err(ApiError::not_found(format!(
            "job {id} is a {} job, not a recompute; see /api/jobs/{id}",
            job.kind
        ))),
        None => Err(no_such_job(id)),
    }
}

#[utoipa::path(get, path = "/api/jobs/{key}", operation_id = "getJob", tag = "jobs",
    params(("key" = Uuid, Path, description = "Job id")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 404, description = "Unknown, expired or lost in a restart", body = ErrorEnvelope),
    ),
    security((), ("bearer" = [])))]
async fn get_job(
    State(state): State<AppState>,
    Path(key): Path<String>,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Response> {
    let id = parse_id(&key)?;
    let job = state.jobs.get(id).await?.ok_or_else(|| no_such_job(id))?;
    Ok(Json(job).into_response())
}

#[utoipa::path(get, path = "/api/metrics/active-job", operation_id = "getActiveRecompute", tag = "jobs",
    responses((status = 200, description = "The running recompute (on any node) and its follow-up", body = ActiveJob)),
    security((), ("bearer" = [])))]
async fn active_recompute(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
) -> ApiResult<Response> {
    Ok(Json(ActiveJob {
        job: state.jobs.active(JobKind::Recompute).await?,
        queued: state.jobs.queued(JobKind::Recompute).await?,
    })
    .into_response())
}

/// Most jobs one `GET /api/jobs` returns.
const MAX_LIST_LIMIT: usize = 500;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only jobs of this kind.
    #[param(value_type = Option<JobKind>)]
    kind: Option<String>,
    /// At most this many (default 50, at most 500: more is refused).
    #[param(value_type = Option<u64>, minimum = 0, maximum = 500)]
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/api/jobs", operation_id = "listJobs", tag = "jobs",
    params(ListQuery),
    responses(
        (status = 200, description = "Retained jobs, newest first", body = JobList),
        (status = 422, description = "Unknown kind, a limit above 500, or another bad query parameter (`invalid_query`)", body = ErrorEnvelope),
    ),
    security((), ("bearer" = [])))]
async fn list_jobs(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let kind = match q.kind.as_deref() {
        Some(k) => Some(
            k.parse::<JobKind>()
                .map_err(|e| ApiError::unprocessable("invalid_query", e))?,
        ),
        None => None,
    };
    let limit = q.limit.unwrap_or(50);
    if limit > MAX_LIST_LIMIT {
        return Err(ApiError::unprocessable(
            "invalid_query",
            format!("limit: at most {MAX_LIST_LIMIT}"),
        ));
    }
    let jobs: Vec<_> = state
        .jobs
        .recent()
        .await?
        .into_iter()
        .filter(|j| kind.is_none_or(|k| j.kind == k))
        .take(limit)
        .collect();
    Ok(Json(JobList { jobs }).into_response())
}

#[utoipa::path(post, path = "/api/jobs/{id}/cancel", operation_id = "cancelJob", tag = "jobs",
    params(("id" = Uuid, Path, description = "Job id")),
    responses(
        (status = 202, description = "Cancelling; the job reaches `cancelled` once rolled back", body = Job),
        (status = 404, description = "Unknown job", body = ErrorEnvelope),
        (status = 409, description = "Already finished", body = ErrorEnvelope),
    ),
    security((), ("bearer" = [])))]
async fn cancel_job(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    let id = parse_id(&raw)?;
    let job = state.jobs.cancel(id).await?;
    Ok((StatusCode::ACCEPTED, Json(job)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_ids_accept_all_or_a_list_only() {
        let b: JobRequestBody = serde_json::from_str(r#"{"metric_ids":"all"}"#).unwrap();
        assert_eq!(b.metric_ids, Scope::All);
        let b: JobRequestBody = serde_json::from_str(r#"{"metric_ids":["a","b"]}"#).unwrap();
        assert!(matches!(b.metric_ids, Scope::Metrics(ids) if ids.len() == 2));
        assert!(serde_json::from_str::<JobRequestBody>(r#"{"metric_ids":"some"}"#).is_err());
        assert!(serde_json::from_str::<JobRequestBody>(r#"{"metric_ids":[1]}"#).is_err());
        assert!(serde_json::from_str::<JobRequestBody>(r#"{"trigger":"boss"}"#).is_err());
        assert!(serde_json::from_str::<JobRequestBody>(r#"{"extra":1}"#).is_err());
    }
}

/// The header an SSE client sends on reconnecting: the last `id:` it received.
const LAST_EVENT_ID: &str = "last-event-id";

/// The largest `Last-Event-ID` taken, as the document says: far past any
/// job's events (a job's log holds at most a few hundred), and exact in a
/// JSON number.
const MAX_EVENT_ID: u64 = 1_000_000_000_000_000;

/// One event of `GET /api/jobs/{id}/events` as the stream frames it: what the
/// document describes per event (an SSE client sees `id`, `event` and `data`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct JobEventFrame {
    /// The event's number, for `Last-Event-ID`.
    #[schema(pattern = "^[0-9]+$")]
    id: String,
    /// What changed.
    event: super::live::JobEventKind,
    /// The JobEvent as JSON (the final state's carries the whole job).
    data: String,
}

/// `Last-Event-ID` as an event id: absent means from the start.
fn last_event_id(headers: &axum::http::HeaderMap) -> ApiResult<u64> {
    let Some(raw) = headers.get(LAST_EVENT_ID) else {
        return Ok(0);
    };
    raw.to_str()
        .ok()
        .map(str::trim)
        // An EventSource sends no header rather than an empty one, so an empty
        // value is not a resume point either.
        .and_then(|v| v.parse::<u64>().ok().filter(|&n| n <= MAX_EVENT_ID))
        .ok_or_else(|| {
            ApiError::unprocessable(
                "invalid_input",
                "Last-Event-ID must be the id of an event from this stream (a whole number)",
            )
        })
}

/// One job event as an SSE frame: `id:` the event's number, `event:` what
/// changed, `data:` the event's JSON.
fn sse_frame(event: &JobEvent) -> axum::response::sse::Event {
    axum::response::sse::Event::default()
        .id(event.id.to_string())
        .event(event.event.as_str())
        .data(serde_json::to_string(event).expect("an event serializes"))
}

#[utoipa::path(get, path = "/api/jobs/{id}/events", operation_id = "followJob", tag = "jobs",
    params(
        ("id" = Uuid, Path, description = "Job id"),
        ("Last-Event-ID" = Option<u64>, Header, nullable = false, minimum = 0, maximum = 1000000000000000.0,
            description = "Resume after this event id (what an EventSource sends on reconnecting); absent means from the start"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: one event per state, phase and progress change (`event:` state, phase or progress; `id:` its number; `data:` a JobEvent as JSON), ending with the final state, whose data carries the whole job. A job on another node is followed through the shared job table.",
            content_type = "text/event-stream", body = JobEventFrame),
        (status = 204, description = "The job had already ended at the given Last-Event-ID: nothing more to send (an EventSource stops reconnecting)"),
        (status = 404, description = "Unknown, expired or lost in a restart", body = ErrorEnvelope),
        (status = 422, description = "Last-Event-ID is not a whole number (`invalid_input`)", body = ErrorEnvelope),
        (status = 503, description = "The shared job table cannot be read", body = ErrorEnvelope),
    ),
    security((), ("bearer" = [])))]
async fn job_events(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
    Path(raw): Path<String>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    use axum::response::sse::{KeepAlive, Sse};
    use futures::StreamExt;
    let id = parse_id(&raw)?;
    let after = last_event_id(&headers)?;
    let events = match follow(&state.jobs, id, after).await {
        Ok(Followed::Stream(events)) => events,
        Ok(Followed::Ended) => return Ok(StatusCode::NO_CONTENT.into_response()),
        Err(EngineError::NotFound(_)) => return Err(no_such_job(id)),
        Err(e) => return Err(e.into()),
    };
    let frames = events.map(|e| Ok::<_, std::convert::Infallible>(sse_frame(&e)));
    Ok(Sse::new(frames)
        .keep_alive(KeepAlive::default())
        .into_response())
}
