//! Benchmarks: μ and σ of each `rolling_stat` metric over a rolling window.
//!
//! μ is the mean and σ the sample standard deviation (`stddev_samp`) of the
//! metric's non-null values with buckets in `[now - window, now)`, written to
//! `metric_registry.benchmark_mean / benchmark_stddev` with the point count.
//! When the window holds fewer than `benchmark_min_points` points, μ and σ are
//! stored as null: too little history to call anything unusual. The cockpit then
//! shows z and band as null, as it does when σ is 0 (every value equal: z is
//! undefined, not infinite).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::jobs::{JobContext, JobError};

const ROLLING_STATS_SQL: &str = "
SELECT metric_id FROM heartbeat.metric_registry
WHERE kind = 'rolling_stat' AND retired_at IS NULL ORDER BY metric_id";

/// One statement per metric, so each metric's μ/σ change atomically.
const BENCHMARK_SQL: &str = "
WITH w AS (
    SELECT count(value)::int AS n, avg(value) AS mean, stddev_samp(value) AS sd
    FROM heartbeat.metric_value
    WHERE metric_id = $1 AND bucket >= $2 AND bucket < $3 AND value IS NOT NULL
)
UPDATE heartbeat.metric_registry
SET benchmark_mean = CASE WHEN w.n >= $4 THEN w.mean END,
    benchmark_stddev = CASE WHEN w.n >= $4 THEN w.sd END,
    benchmark_points = w.n,
    benchmark_at = now()
FROM w WHERE metric_id = $1
RETURNING w.n, benchmark_mean, benchmark_stddev";

/// What the benchmarks job wrote for one metric.
#[derive(Debug, Clone, Serialize)]
pub struct BenchmarkReport {
    pub metric_id: String,
    pub points: i32,
    pub mean: Option<f64>,
    pub stddev: Option<f64>,
}

/// Recomputes μ/σ for every active `rolling_stat` metric.
pub async fn run(
    ctx: &JobContext,
    now: DateTime<Utc>,
    window: Duration,
    min_points: i32,
) -> Result<Vec<BenchmarkReport>, JobError> {
    let mut client = ctx.client().await?;
    let ids: Vec<String> = client
        .query(ROLLING_STATS_SQL, &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .filter(|id: &String| ctx.scope().metric_ids().is_none_or(|s| s.contains(id)))
        .collect();
    ctx.begin_phase("benchmarks", ids.len() as u64);
    let from = now - window;
    let mut reports = Vec::new();
    for id in ids {
        ctx.check()?;
        let tx = client.transaction().await?;
        ctx.enter_fence(&*tx).await?;
        let row = tx
            .query_one(BENCHMARK_SQL, &[&id, &from, &now, &min_points])
            .await?;
        tx.commit().await?;
        reports.push(BenchmarkReport {
            metric_id: id,
            points: row.get(0),
            mean: row.get(1),
            stddev: row.get(2),
        });
        ctx.advance();
        ctx.set_phase_detail(serde_json::json!({ "metrics": reports }));
    }
    Ok(reports)
}

/// z = (value − μ) / σ, or None when any input is missing or σ is 0.
pub fn z_score(value: Option<f64>, mean: Option<f64>, stddev: Option<f64>) -> Option<f64> {
    let (v, m, s) = (value?, mean?, stddev?);
    if s == 0.0 || !s.is_finite() {
        return None;
    }
    Some((v - m) / s)
}

/// `normal` |z| < 1, `amber` 1 ≤ |z| < 2, `red` |z| ≥ 2 (docs/refresh.md).
pub fn band(z: Option<f64>) -> Option<&'static str> {
    let a = z?.abs();
    Some(if a < 1.0 {
        "normal"
    } else if a < 2.0 {
        "amber"
    } else {
        "red"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_follow_the_design_thresholds() {
        assert_eq!(band(Some(0.99)), Some("normal"));
        assert_eq!(band(Some(-1.0)), Some("amber"));
        assert_eq!(band(Some(1.99)), Some("amber"));
        assert_eq!(band(Some(-2.0)), Some("red"));
        assert_eq!(band(None), None);
    }

    #[test]
    fn z_is_null_when_sigma_is_zero_or_missing() {
        assert_eq!(z_score(Some(5.0), Some(3.0), Some(0.0)), None);
        assert_eq!(z_score(Some(5.0), None, None), None);
        assert_eq!(z_score(None, Some(1.0), Some(1.0)), None);
        assert_eq!(z_score(Some(5.0), Some(3.0), Some(2.0)), Some(1.0));
    }
}
