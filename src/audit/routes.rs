//! `GET /api/audit/cuts` and `GET /api/audit/cuts/{cut_id}?window=`: read the
//! registry and snapshots the audit job writes.
//!
//! A 404 says which of three cases applies, each with its own code: the cut is
//! unknown (`unknown_cut`), the window is not one of the cut's (`unknown_window`),
//! or the snapshot awaits its first refresh (`snapshot_pending`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::NoQuery;
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use crate::state::AppState;

/// The audit routes with their OpenAPI operations.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_cuts))
        .routes(routes!(get_cut))
}

/// One window of a cut in the listing: its snapshot's age, or nulls while pending.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WindowStatus {
    /// The window label, e.g. `7d`.
    window: String,
    computed_at: Option<DateTime<Utc>>,
    /// Seconds since `computed_at`.
    age_seconds: Option<f64>,
    row_count: Option<i32>,
    /// True when the cut file changed after this snapshot was computed.
    stale: Option<bool>,
}

/// One registered cut.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CutSummary {
    cut_id: String,
    title: String,
    description: String,
    windows: Vec<WindowStatus>,
    /// When the cut file's content last changed.
    updated_at: DateTime<Utc>,
    /// When the registry last read the file.
    synced_at: DateTime<Utc>,
}

/// `GET /api/audit/cuts`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CutList {
    /// Ordered by id.
    cuts: Vec<CutSummary>,
}

/// `GET /api/audit/cuts/{cut_id}`: one window's snapshot.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CutSnapshot {
    cut_id: String,
    title: String,
    description: String,
    /// The window shown (the first of `windows` unless `?window=` named one).
    window: String,
    /// Every window the cut defines.
    windows: Vec<String>,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    /// Column names, in the order the cut's query returns them.
    columns: Vec<String>,
    /// The rows as the cut's query returned them.
    #[schema(value_type = Vec<Object>)]
    rows: serde_json::Value,
    row_count: i32,
    computed_at: DateTime<Utc>,
    /// Seconds since `computed_at`.
    age_seconds: f64,
    /// True when the cut file changed since this snapshot was computed.
    stale: bool,
    /// How long the cut's query took.
    duration_ms: i32,
}

const LIST_CUTS: &str = "
SELECT r.cut_id, r.title, r.description, r.windows, r.updated_at, r.synced_at,
       s.window_label, s.computed_at,
       extract(epoch FROM now() - s.computed_at)::float8,
       s.row_count, s.content_hash IS DISTINCT FROM r.content_hash
FROM heartbeat.audit_cut_registry r
LEFT JOIN heartbeat.audit_cut_snapshot s ON s.cut_id = r.cut_id
ORDER BY r.cut_id";

#[utoipa::path(get, path = "/api/audit/cuts", operation_id = "listAuditCuts", tag = "audit", responses((status = 200, description = "The registry with each snapshot's age", body = CutList)), security((), ("bearer" = [])))]
async fn list_cuts(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
) -> ApiResult<ApiJson<CutList>> {
    let client = state.pool.get().await?;
    let rows = client.query(LIST_CUTS, &[]).await?;
    let mut cuts: Vec<CutSummary> = Vec::new();
    for row in &rows {
        let cut_id: String = row.get(0);
        if cuts.last().is_none_or(|c| c.cut_id != cut_id) {
            let windows: Vec<String> = row.get(3);
            cuts.push(CutSummary {
                cut_id,
                title: row.get(1),
                description: row.get(2),
                windows: windows
                    .into_iter()
                    .map(|window| WindowStatus {
                        window,
                        computed_at: None,
                        age_seconds: None,
                        row_count: None,
                        stale: None,
                    })
                    .collect(),
                updated_at: row.get(4),
                synced_at: row.get(5),
            });
        }
        let Some(label) = row.get::<_, Option<String>>(6) else {
            continue;
        };
        let cut = cuts.last_mut().expect("pushed above");
        if let Some(w) = cut.windows.iter_mut().find(|w| w.window == label) {
            w.computed_at = row.get(7);
            w.age_seconds = row.get(8);
            w.row_count = row.get(9);
            w.stale = Some(row.get(10));
        }
    }
    Ok(ApiJson(CutList { cuts }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CutQuery {
    /// One of the cut's windows; default: its first.
    window: Option<String>,
}

/// `$2` is the requested window, or '' for the cut's first.
const GET_CUT: &str = "
SELECT r.title, r.description, r.windows, r.content_hash,
       w.label, s.window_start, s.window_end, s.columns, s.payload, s.row_count,
       s.computed_at, extract(epoch FROM now() - s.computed_at)::float8,
       s.content_hash, s.duration_ms
FROM heartbeat.audit_cut_registry r
CROSS JOIN LATERAL (SELECT coalesce(nullif($2, ''), r.windows[1]) AS label) w
LEFT JOIN heartbeat.audit_cut_snapshot s
       ON s.cut_id = r.cut_id AND s.window_label = w.label
WHERE r.cut_id = $1";

#[utoipa::path(get, path = "/api/audit/cuts/{cut_id}", operation_id = "getAuditCut", tag = "audit", params(("cut_id" = String, Path), ("window" = Option<String>, Query)), responses((status = 200, description = "The snapshot", body = CutSnapshot), (status = 404, description = "Unknown cut or window, or snapshot pending", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn get_cut(
    State(state): State<AppState>,
    Path(cut_id): Path<String>,
    ApiQuery(query): ApiQuery<CutQuery>,
) -> ApiResult<ApiJson<CutSnapshot>> {
    let requested = query.window.as_deref().map(str::trim).unwrap_or("");
    // PostgreSQL text cannot hold a NUL, so no cut or window has one.
    if cut_id.contains('\0') || requested.contains('\0') {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            if cut_id.contains('\0') {
                "unknown_cut"
            } else {
                "unknown_window"
            },
            "no audit cut or window with a NUL in its name",
        ));
    }
    let client = state.pool.get().await?;
    let Some(row) = client.query_opt(GET_CUT, &[&cut_id, &requested]).await? else {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            "unknown_cut",
            format!("no audit cut '{cut_id}' (GET /api/audit/cuts lists them)"),
        ));
    };
    let windows: Vec<String> = row.get(2);
    let window: String = row.get(4);
    if !windows.contains(&window) {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            "unknown_window",
            format!(
                "cut '{cut_id}' has no window '{window}'; its windows are {}",
                windows.join(", ")
            ),
        ));
    }
    if row.get::<_, Option<DateTime<Utc>>>(10).is_none() {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            "snapshot_pending",
            format!(
                "cut '{cut_id}' window '{window}' awaits its first refresh (POST /api/jobs/audit runs it)"
            ),
        ));
    }
    let registry_hash: String = row.get(3);
    let snapshot_hash: String = row.get(12);
    Ok(ApiJson(CutSnapshot {
        cut_id,
        title: row.get(0),
        description: row.get(1),
        window,
        windows,
        window_start: row.get(5),
        window_end: row.get(6),
        columns: row.get(7),
        rows: row.get(8),
        row_count: row.get(9),
        computed_at: row.get(10),
        age_seconds: row.get(11),
        stale: registry_hash != snapshot_hash,
        duration_ms: row.get(13),
    }))
}
