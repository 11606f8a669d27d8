//! `GET /api/segments?date=` (counts per tier and a page of clients) and
//! `GET /api/segments/{client_id}` (that client's tier history).
//!
//! The day listing reads counts and page in one REPEATABLE READ transaction, so
//! both come from the same snapshot even while the segments job replaces the day.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::IsolationLevel;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tiers::Tier;
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use crate::state::AppState;

/// The segments routes with their OpenAPI operations.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_day))
        .routes(routes!(client_history))
}

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DayQuery {
    /// `YYYY-MM-DD`; default: the latest snapshot.
    date: Option<NaiveDate>,
    /// Only clients of this tier in the page (counts always cover all tiers).
    tier: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

fn page_bounds(limit: Option<i64>, offset: Option<i64>) -> ApiResult<(i64, i64)> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    let offset = offset.unwrap_or(0);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::unprocessable(
            "invalid_query",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    if offset < 0 {
        return Err(ApiError::unprocessable(
            "invalid_query",
            "offset must be 0 or more",
        ));
    }
    Ok((limit, offset))
}

const DAY_COUNTS: &str = "
SELECT tier, count(*), max(window_days), max(computed_at)
FROM heartbeat.client_segment_snapshot
WHERE snapshot_date = $1
GROUP BY tier";

const DAY_PAGE: &str = "
SELECT client_id, tier, score, rank
FROM heartbeat.client_segment_snapshot
WHERE snapshot_date = $1 AND ($2::text IS NULL OR tier = $2)
ORDER BY rank, client_id
LIMIT $3 OFFSET $4";

#[utoipa::path(get, path = "/api/segments", operation_id = "listSegments", tag = "segments", params(("date" = Option<NaiveDate>, Query, description = "Default: the latest snapshot"), ("tier" = inline(Option<Tier>), Query, description = "Only clients of this tier in the page"), ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000), ("offset" = Option<i64>, Query, minimum = 0)), responses((status = 200, description = "Counts per tier and a page of clients", body = SegmentDay), (status = 404, description = "No snapshot for that day", body = crate::error::ErrorEnvelope), (status = 422, description = "Bad query", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn list_day(
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<DayQuery>,
) -> ApiResult<ApiJson<SegmentDay>> {
    let (limit, offset) = page_bounds(query.limit, query.offset)?;
    let tier: Option<Tier> = query
        .tier
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e: String| ApiError::unprocessable("invalid_query", e))?;
    let mut client = state.pool.get().await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let date: NaiveDate = match query.date {
        Some(date) => date,
        None => tx
            .query_one(
                "SELECT max(snapshot_date) FROM heartbeat.client_segment_snapshot",
                &[],
            )
            .await?
            .get::<_, Option<NaiveDate>>(0)
            .ok_or_else(|| {
                ApiError::client(
                    StatusCode::NOT_FOUND,
                    "no_snapshot",
                    "no segment snapshot yet; the segments job makes one (POST /api/jobs/segments)",
                )
            })?,
    };
    let counts_rows = tx.query(DAY_COUNTS, &[&date]).await?;
    if counts_rows.is_empty() {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            "no_snapshot",
            format!("no segment snapshot for {date}"),
        ));
    }
    let mut counts = BTreeMap::new();
    for t in Tier::ALL {
        counts.insert(t.as_str().to_string(), 0);
    }
    let mut total: i64 = 0;
    let mut window_days: Option<i32> = None;
    let mut computed_at: Option<DateTime<Utc>> = None;
    for row in &counts_rows {
        let n: i64 = row.get(1);
        counts.insert(row.get::<_, String>(0), n);
        total += n;
        window_days = row.get(2);
        computed_at = computed_at.max(row.get(3));
    }
    let tier_name = tier.map(Tier::as_str);
    let clients = tx
        .query(DAY_PAGE, &[&date, &tier_name, &limit, &offset])
        .await?
        .iter()
        .map(|row| SegmentClient {
            client_id: row.get(0),
            tier: row.get(1),
            score: row.get(2),
            rank: row.get(3),
        })
        .collect();
    tx.commit().await?;
    Ok(ApiJson(SegmentDay {
        date,
        computed_at,
        window_days,
        counts,
        total,
        tier: tier_name,
        limit,
        offset,
        clients,
    }))
}

/// `GET /api/segments`: one day's snapshot.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SegmentDay {
    /// The snapshot's day (the newest when none was asked for).
    date: NaiveDate,
    computed_at: Option<DateTime<Utc>>,
    /// Days of activity behind each tier.
    window_days: Option<i32>,
    /// Clients per tier (`top`, `mid`, `micro`), zeros included.
    counts: BTreeMap<String, i64>,
    /// Clients in the snapshot.
    total: i64,
    /// The `tier` filter, if any.
    #[schema(value_type = Option<String>)]
    tier: Option<&'static str>,
    limit: i64,
    offset: i64,
    /// This page, by rank.
    clients: Vec<SegmentClient>,
}

/// One client's row in a day's snapshot.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SegmentClient {
    client_id: String,
    /// `top`, `mid` or `micro`.
    tier: String,
    /// Activity over the window (events, or value sum).
    score: f64,
    /// 1 = most active.
    rank: i32,
}

/// `GET /api/segments/{client_id}`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClientHistory {
    client_id: String,
    /// Newest first.
    history: Vec<ClientDay>,
}

/// A client's tier on one day.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ClientDay {
    date: NaiveDate,
    /// `top`, `mid` or `micro`.
    tier: String,
    score: f64,
    rank: i32,
    window_days: i32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Most recent days to return (default 90, at most 1000).
    limit: Option<i64>,
}

const CLIENT_HISTORY: &str = "
SELECT snapshot_date, tier, score, rank, window_days
FROM heartbeat.client_segment_snapshot
WHERE client_id = $1
ORDER BY snapshot_date DESC
LIMIT $2";

#[utoipa::path(get, path = "/api/segments/{client_id}", operation_id = "getClientSegments", tag = "segments", params(("client_id" = String, Path), ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Most recent days (default 90)")), responses((status = 200, description = "The client's tier history, newest first", body = ClientHistory), (status = 404, description = "Unknown client", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn client_history(
    State(state): State<AppState>,
    Path(client_id): Path<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> ApiResult<ApiJson<ClientHistory>> {
    let (limit, _) = page_bounds(Some(query.limit.unwrap_or(90)), None)?;
    // PostgreSQL text cannot hold a NUL, so no client id has one.
    if client_id.contains('\0') {
        return Err(ApiError::not_found("no client with a NUL in its id"));
    }
    let client = state.pool.get().await?;
    let history: Vec<ClientDay> = client
        .query(CLIENT_HISTORY, &[&client_id, &limit])
        .await?
        .iter()
        .map(|row| ClientDay {
            date: row.get(0),
            tier: row.get(1),
            score: row.get(2),
            rank: row.get(3),
            window_days: row.get(4),
        })
        .collect();
    if history.is_empty() {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            "unknown_client",
            format!("client '{client_id}' is in no segment snapshot"),
        ));
    }
    Ok(ApiJson(ClientHistory { client_id, history }))
}
