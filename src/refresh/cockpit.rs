//! The cockpit: each active metric's latest value against its benchmark, and
//! bounded series of its values. These are the queries; the HTTP handlers that
//! serve them (`GET /api/metrics`, `GET /api/metrics/{id}/values`) are in
//! [`super::routes`].
//!
//! - [`list_metrics`]: id, title, kind, grain, latest bucket and value, μ, σ, z and
//!   band (null when there is no benchmark, too few points, or σ = 0).
//! - [`metric_values`]: values with `from <= bucket < to` (default the last 7 days
//!   for hourly metrics, 90 days for daily). A range that is empty, inverted or
//!   wider than `refresh.max_series_points` buckets is refused; so is an unknown
//!   id. Retired metrics keep their series.

use chrono::{DateTime, Duration, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};

use super::benchmarks::{band, z_score};
use super::definitions::{Grain, MetricId};

/// Why a cockpit read was refused or failed. Mapped to HTTP statuses by one `From`
/// impl in [`super::routes`].
#[derive(Debug, thiserror::Error)]
pub enum CockpitError {
    /// No metric with this id (or not a valid id at all).
    #[error("no metric '{0}'")]
    UnknownMetric(String),
    /// `from` is not before `to`.
    #[error("from ({from}) must be before to ({to})")]
    EmptyRange {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    /// More buckets than `refresh.max_series_points`.
    #[error("the range spans {buckets} {} buckets; at most {max_points} are returned at once", grain.as_str())]
    RangeTooLarge {
        buckets: i64,
        grain: Grain,
        max_points: u32,
    },
    /// The registry holds a grain this build does not know.
    #[error("{0}")]
    BadGrain(String),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

const LIST_SQL: &str = "
SELECT r.metric_id, r.title, r.kind, r.grain, r.description,
       r.benchmark_mean, r.benchmark_stddev, r.benchmark_points, r.computed_at,
       v.bucket, v.value
FROM heartbeat.metric_registry r
LEFT JOIN LATERAL (
    SELECT bucket, value FROM heartbeat.metric_value
    WHERE metric_id = r.metric_id ORDER BY bucket DESC LIMIT 1
) v ON true
WHERE r.retired_at IS NULL
ORDER BY r.metric_id";

/// One active metric against its benchmark.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MetricSummary {
    pub id: String,
    pub title: String,
    /// `counter`, `gauge`, `ratio` or `rolling_stat`.
    pub kind: String,
    /// `hour` or `day`.
    pub grain: String,
    pub description: String,
    /// Start of the newest computed bucket.
    pub latest_bucket: Option<DateTime<Utc>>,
    pub latest_value: Option<f64>,
    /// Benchmark mean μ over the rolling window; null without a benchmark.
    pub mean: Option<f64>,
    /// Benchmark standard deviation σ.
    pub stddev: Option<f64>,
    /// Points behind μ and σ.
    pub benchmark_points: Option<i32>,
    /// (value − μ) / σ; null without a benchmark, too few points, or σ = 0.
    pub z: Option<f64>,
    /// `normal` (|z| < 1), `amber` (< 2) or `red`.
    #[schema(value_type = Option<String>)]
    pub band: Option<&'static str>,
    /// When the benchmark was computed.
    pub computed_at: Option<DateTime<Utc>>,
}

/// `GET /api/metrics`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MetricList {
    /// Ordered by id.
    pub metrics: Vec<MetricSummary>,
}

/// Every active metric with its latest value against its benchmark, by id.
pub async fn list_metrics(pool: &Pool) -> Result<MetricList, CockpitError> {
    let client = pool.get().await?;
    let rows = client.query(LIST_SQL, &[]).await?;
    let metrics = rows
        .iter()
        .map(|r| {
            let (mean, stddev, value) = (r.get(5), r.get(6), r.get(10));
            let z = z_score(value, mean, stddev);
            MetricSummary {
                id: r.get(0),
                title: r.get(1),
                kind: r.get(2),
                grain: r.get(3),
                description: r.get(4),
                mean,
                stddev,
                benchmark_points: r.get(7),
                computed_at: r.get(8),
                latest_bucket: r.get(9),
                latest_value: value,
                z,
                band: band(z),
            }
        })
        .collect();
    Ok(MetricList { metrics })
}

/// The range a series is asked for; either end may be left to its default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// One bucket of a series.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Point {
    pub bucket: DateTime<Utc>,
    pub value: Option<f64>,
}

/// `GET /api/metrics/{id}/values`.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Series {
    pub metric_id: String,
    /// `hour` or `day`.
    pub grain: String,
    /// Inclusive start of the range.
    pub from: DateTime<Utc>,
    /// Exclusive end of the range.
    pub to: DateTime<Utc>,
    /// Computed buckets in the range, oldest first.
    pub values: Vec<Point>,
}

const GRAIN_SQL: &str = "SELECT grain FROM heartbeat.metric_registry WHERE metric_id = $1";
const VALUES_SQL: &str = "
SELECT bucket, value FROM heartbeat.metric_value
WHERE metric_id = $1 AND bucket >= $2 AND bucket < $3 ORDER BY bucket";

/// The series of metric `id` over `range`, at most `max_points` buckets, with
/// defaults counted back from `now`.
pub async fn metric_values(
    pool: &Pool,
    id: &str,
    range: RangeQuery,
    now: DateTime<Utc>,
    max_points: u32,
) -> Result<Series, CockpitError> {
    let unknown = || CockpitError::UnknownMetric(id.to_string());
    let metric = MetricId::parse(id).map_err(|_| unknown())?;
    let client = pool.get().await?;
    let grain: Grain = client
        .query_opt(GRAIN_SQL, &[&metric.as_str()])
        .await?
        .ok_or_else(unknown)?
        .get::<_, String>(0)
        .parse()
        .map_err(CockpitError::BadGrain)?;
    let (from, to) = resolve_range(range, grain, now, max_points)?;
    let values = client
        .query(VALUES_SQL, &[&metric.as_str(), &from, &to])
        .await?
        .iter()
        .map(|r| Point {
            bucket: r.get(0),
            value: r.get(1),
        })
        .collect();
    Ok(Series {
        metric_id: metric.to_string(),
        grain: grain.as_str().to_string(),
        from,
        to,
        values,
    })
}

/// Fills defaults and checks the range: non-empty, and at most `max_points`
/// buckets of `grain`.
fn resolve_range(
    range: RangeQuery,
    grain: Grain,
    now: DateTime<Utc>,
    max_points: u32,
) -> Result<(DateTime<Utc>, DateTime<Utc>), CockpitError> {
    let default_span = match grain {
        Grain::Hour => Duration::days(7),
        Grain::Day => Duration::days(90),
    };
    let to = range.to.unwrap_or(now);
    let from = range.from.unwrap_or(to - default_span);
    if from >= to {
        return Err(CockpitError::EmptyRange { from, to });
    }
    let buckets = (to - from).num_seconds() / grain.duration().num_seconds();
    if buckets > i64::from(max_points) {
        return Err(CockpitError::RangeTooLarge {
            buckets,
            grain,
            max_points,
        });
    }
    Ok((from, to))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn an_inverted_range_is_refused() {
        let q = RangeQuery {
            from: Some(at("2026-01-02T00:00:00Z")),
            to: Some(at("2026-01-01T00:00:00Z")),
        };
        assert!(resolve_range(q, Grain::Hour, Utc::now(), 100).is_err());
    }

    #[test]
    fn the_point_limit_depends_on_the_grain() {
        let q = || RangeQuery {
            from: Some(at("2026-01-01T00:00:00Z")),
            to: Some(at("2026-01-11T00:00:00Z")),
        };
        assert!(resolve_range(q(), Grain::Hour, Utc::now(), 100).is_err());
        assert!(resolve_range(q(), Grain::Day, Utc::now(), 100).is_ok());
    }
}
