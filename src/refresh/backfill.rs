//! Backfill: which buckets a range asks a metric to recompute (docs/refresh.md,
//! "Backfill").
//!
//! A requested range is in instants; a metric computes whole buckets of its
//! grain. The buckets recomputed are every bucket the range touches (its start
//! rounded down, its end rounded up to the grain), within the history horizon
//! and before the last complete bucket's end: a bucket still filling is never
//! written, as in an incremental run. The dry run and the job use this one plan.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::definitions::{self, Grain};
use crate::jobs::range::{Range, RangeSet};

/// The grain-aligned bucket runs `[from, to)` a metric of `grain` recomputes
/// for `ranges` at `now`, keeping `history` of buckets.
pub fn bucket_runs(
    grain: Grain,
    ranges: &RangeSet,
    now: DateTime<Utc>,
    history: Duration,
) -> RangeSet {
    let step = grain.duration();
    let end = grain.truncate(now);
    let horizon = grain.truncate(now - history);
    let mut runs = RangeSet::default();
    for r in ranges.ranges() {
        let lo = grain.truncate(r.from).max(horizon);
        let up = grain.truncate(r.to);
        let hi = if up < r.to { up + step } else { up }.min(end);
        runs.add(Range { from: lo, to: hi });
    }
    runs
}

/// How many buckets of `grain` `runs` hold.
pub fn bucket_count(grain: Grain, runs: &RangeSet) -> i64 {
    let step = grain.duration().num_seconds();
    runs.ranges()
        .iter()
        .map(|r| (r.to - r.from).num_seconds() / step)
        .sum()
}

/// How many buckets of `grain` lie in both `run` and `runs`.
pub fn overlap(grain: Grain, run: Range, runs: &RangeSet) -> i64 {
    let step = grain.duration().num_seconds();
    runs.ranges()
        .iter()
        .map(|r| {
            let (lo, hi) = (r.from.max(run.from), r.to.min(run.to));
            if hi > lo {
                (hi - lo).num_seconds() / step
            } else {
                0
            }
        })
        .sum()
}

/// What a backfill would recompute for one metric.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricPlan {
    pub metric_id: String,
    /// `hour` or `day`.
    #[schema(value_type = String)]
    pub grain: Grain,
    /// How many buckets.
    pub buckets: i64,
    /// The buckets as contiguous runs `[from, to)`.
    pub runs: Vec<Range>,
}

/// The plan of every metric in `ranges`, read from the metric files in
/// `definitions_dir` (a metric whose file does not parse is left out: the job
/// would report it failed).
pub fn plan(
    definitions_dir: &Path,
    ranges: &BTreeMap<String, RangeSet>,
    now: DateTime<Utc>,
    history_days: u32,
) -> Vec<MetricPlan> {
    let (defs, _) = definitions::load_dir(&definitions::metrics_dir(definitions_dir));
    let history = Duration::days(i64::from(history_days));
    defs.iter()
        .filter_map(|d| {
            let asked = ranges.get(d.id.as_str())?;
            let runs = bucket_runs(d.grain, asked, now, history);
            Some(MetricPlan {
                metric_id: d.id.to_string(),
                grain: d.grain,
                buckets: bucket_count(d.grain, &runs),
                runs: runs.ranges().to_vec(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_range_recomputes_every_bucket_it_touches_and_no_incomplete_one() {
        let now = t("2026-11-30T10:20:00Z");
        let asked = RangeSet::of(Range {
            from: t("2026-11-29T22:30:00Z"),
            to: t("2026-11-30T12:00:00Z"),
        });
        let runs = bucket_runs(Grain::Hour, &asked, now, Duration::days(400));
        assert_eq!(
            runs.ranges(),
            &[Range {
                from: t("2026-11-29T22:00:00Z"),
                to: t("2026-11-30T10:00:00Z"),
            }]
        );
        assert_eq!(bucket_count(Grain::Hour, &runs), 12);
        let days = bucket_runs(Grain::Day, &asked, now, Duration::days(400));
        assert_eq!(
            bucket_count(Grain::Day, &days),
            1,
            "only the 29th is complete"
        );
    }

    #[test]
    fn the_horizon_clips_a_range() {
        let now = t("2026-11-30T00:00:00Z");
        let asked = RangeSet::of(Range {
            from: t("2026-11-01T00:00:00Z"),
            to: t("2026-11-03T00:00:00Z"),
        });
        let runs = bucket_runs(Grain::Day, &asked, now, Duration::days(28));
        assert_eq!(runs.ranges()[0].from, t("2026-11-02T00:00:00Z"));
        assert_eq!(bucket_count(Grain::Day, &runs), 1);
    }
}
