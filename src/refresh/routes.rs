//! The cockpit's HTTP edge: `GET /api/metrics` and `GET /api/metrics/{id}/values`,
//! thin handlers over [`super::cockpit`], and how a [`CockpitError`] answers
//! (unknown metric 404, a bad or oversized range 422).

use axum::extract::{Path, State};
use chrono::Utc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::cockpit::{self, CockpitError, MetricList, RangeQuery, Series};
use crate::error::NoQuery;
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult};
use crate::state::AppState;

/// The cockpit routes with their OpenAPI operations.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_metrics))
        .routes(routes!(metric_values))
}

impl From<CockpitError> for ApiError {
    fn from(e: CockpitError) -> Self {
        match e {
            CockpitError::UnknownMetric(_) => ApiError::not_found(e.to_string()),
            CockpitError::EmptyRange { .. } => {
                ApiError::unprocessable("invalid_range", e.to_string())
            }
            CockpitError::RangeTooLarge { .. } => {
                ApiError::unprocessable("range_too_large", e.to_string())
            }
            CockpitError::BadGrain(message) => ApiError::Internal(message),
            CockpitError::Pool(e) => ApiError::Pool(e),
            CockpitError::Db(e) => ApiError::Db(e),
        }
    }
}

#[utoipa::path(get, path = "/api/metrics", operation_id = "listMetrics", tag = "cockpit", responses((status = 200, description = "Every metric with its latest value, mean, stddev, z and band", body = MetricList)), security((), ("bearer" = [])))]
async fn list_metrics(
    State(state): State<AppState>,
    _: ApiQuery<NoQuery>,
) -> ApiResult<ApiJson<MetricList>> {
    Ok(ApiJson(cockpit::list_metrics(&state.pool).await?))
}

#[utoipa::path(get, path = "/api/metrics/{id}/values", operation_id = "getMetricValues", tag = "cockpit", params(("id" = String, Path), ("from" = Option<chrono::DateTime<Utc>>, Query, description = "RFC 3339; default: the metric's default window before `to`"), ("to" = Option<chrono::DateTime<Utc>>, Query, description = "RFC 3339; default: now")), responses((status = 200, description = "The series in the range", body = Series), (status = 404, description = "Unknown metric", body = crate::error::ErrorEnvelope), (status = 422, description = "Bad or oversized range", body = crate::error::ErrorEnvelope)), security((), ("bearer" = [])))]
async fn metric_values(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(range): ApiQuery<RangeQuery>,
) -> ApiResult<ApiJson<Series>> {
    let series = cockpit::metric_values(
        &state.pool,
        &id,
        range,
        Utc::now(),
        state.config.refresh.max_series_points,
    )
    .await?;
    Ok(ApiJson(series))
}
