//! Backfill ranges: the time part of a recompute's scope (docs/refresh.md,
//! "Backfill").
//!
//! A range is a half-open span of bucket bounds `[from, to)`, as a metric file's
//! query takes them. A [`RangeSet`] is a union of ranges kept sorted, disjoint and
//! merged where they touch, so "covers" and "union" are exact and cheap, and two
//! sets holding the same instants compare equal however they were built.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One span of bucket bounds, `from` included, `to` excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct Range {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Why a requested range is refused; each names the bound at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("{field}: '{value}' is neither an RFC 3339 time (2026-10-01T00:00:00Z) nor a date (2026-10-01)")]
    Unparsable { field: &'static str, value: String },
    #[error("to ({to}) must be after from ({from})")]
    Reversed {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    #[error("from ({from}) is beyond refresh.history_days ({days} days): the earliest bucket kept starts at {earliest}")]
    BeyondHistory {
        from: DateTime<Utc>,
        days: u32,
        earliest: DateTime<Utc>,
    },
    #[error("from ({from}) is in the future: only complete buckets are computed")]
    InTheFuture { from: DateTime<Utc> },
    #[error("to needs from: a backfill starts somewhere")]
    ToWithoutFrom,
}

/// Reads a bound: an RFC 3339 time, or a date meaning its midnight UTC.
pub fn parse_bound(field: &'static str, value: &str) -> Result<DateTime<Utc>, RangeError> {
    let v = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    Err(RangeError::Unparsable {
        field,
        value: value.to_string(),
    })
}

impl Range {
    /// A range an operator asked for: `from` before `to` (default: now), within
    /// `history_days` of `now`, and not starting in the future.
    pub fn requested(
        from: Option<&str>,
        to: Option<&str>,
        now: DateTime<Utc>,
        history_days: u32,
    ) -> Result<Option<Range>, RangeError> {
        let from = match (from, to) {
            (None, None) => return Ok(None),
            (None, Some(_)) => return Err(RangeError::ToWithoutFrom),
            (Some(f), _) => parse_bound("from", f)?,
        };
        let to = match to {
            Some(t) => parse_bound("to", t)?,
            None => now,
        };
        if to <= from {
            return Err(RangeError::Reversed { from, to });
        }
        let earliest = now - Duration::days(i64::from(history_days));
        if from < earliest {
            return Err(RangeError::BeyondHistory {
                from,
                days: history_days,
                earliest,
            });
        }
        if from >= now {
            return Err(RangeError::InTheFuture { from });
        }
        Ok(Some(Range { from, to }))
    }
}

/// A union of ranges: sorted, disjoint, touching ranges merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<Range>", into = "Vec<Range>")]
pub struct RangeSet(Vec<Range>);

impl From<Vec<Range>> for RangeSet {
    fn from(ranges: Vec<Range>) -> Self {
        let mut set = RangeSet::default();
        for r in ranges {
            set.add(r);
        }
        set
    }
}

impl From<RangeSet> for Vec<Range> {
    fn from(set: RangeSet) -> Self {
        set.0
    }
}

impl RangeSet {
    pub fn of(range: Range) -> Self {
        RangeSet(vec![range])
    }

    pub fn ranges(&self) -> &[Range] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds a range, merging it with every range it overlaps or touches.
    pub fn add(&mut self, r: Range) {
        if r.to <= r.from {
            return;
        }
        let mut merged = r;
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut placed = false;
        for &x in &self.0 {
            if x.to < merged.from {
                out.push(x);
            } else if merged.to < x.from {
                if !placed {
                    out.push(merged);
                    placed = true;
                }
                out.push(x);
            } else {
                merged = Range {
                    from: merged.from.min(x.from),
                    to: merged.to.max(x.to),
                };
            }
        }
        if !placed {
            out.push(merged);
        }
        self.0 = out;
    }

    pub fn union(&self, other: &RangeSet) -> RangeSet {
        let mut out = self.clone();
        for &r in &other.0 {
            out.add(r);
        }
        out
    }

    /// Whether every instant of `other` is in this set. Merged ranges make this
    /// exact: a range of `other` is covered only by one range of this set.
    pub fn covers(&self, other: &RangeSet) -> bool {
        other
            .0
            .iter()
            .all(|r| self.0.iter().any(|x| x.from <= r.from && r.to <= x.to))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        "2026-10-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::hours(h)
    }
    fn r(a: i64, b: i64) -> Range {
        Range {
            from: t(a),
            to: t(b),
        }
    }
    fn set(rs: &[(i64, i64)]) -> RangeSet {
        rs.iter().map(|&(a, b)| r(a, b)).collect::<Vec<_>>().into()
    }

    #[test]
    fn union_merges_overlapping_and_touching_ranges_and_keeps_gaps() {
        assert_eq!(set(&[(0, 5), (3, 8)]), set(&[(0, 8)]));
        assert_eq!(set(&[(0, 5), (5, 8)]), set(&[(0, 8)]));
        assert_eq!(set(&[(10, 12), (0, 2)]).ranges(), &[r(0, 2), r(10, 12)]);
        assert_eq!(
            set(&[(0, 2), (10, 12)]).union(&set(&[(1, 11)])),
            set(&[(0, 12)])
        );
    }

    #[test]
    fn a_set_covers_what_lies_inside_one_of_its_ranges() {
        let s = set(&[(0, 10), (20, 30)]);
        assert!(s.covers(&set(&[(2, 5), (20, 30)])));
        assert!(!s.covers(&set(&[(5, 15)])), "straddles a gap");
        assert!(!s.covers(&set(&[(25, 31)])));
        assert!(s.covers(&RangeSet::default()));
    }

    #[test]
    fn twenty_scattered_ranges_union_to_exactly_the_instants_they_hold() {
        // Against a brute-force model: one flag per hour.
        let mut model = [false; 200];
        let mut s = RangeSet::default();
        let mut seed = 7u64;
        for _ in 0..20 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let a = (seed >> 33) % 190;
            let len = 1 + (seed >> 20) % 9;
            s.add(r(a as i64, (a + len) as i64));
            for flag in model.iter_mut().skip(a as usize).take(len as usize) {
                *flag = true;
            }
        }
        for h in 0..200 {
            let inside = s.covers(&set(&[(h, h + 1)]));
            assert_eq!(inside, model[h as usize], "hour {h}");
        }
        assert!(s.ranges().windows(2).all(|w| w[0].to < w[1].from));
    }

    #[test]
    fn requested_ranges_are_checked_and_name_the_bound() {
        let now = t(24 * 30);
        let ok = Range::requested(Some("2026-10-02"), Some("2026-10-03T12:00:00Z"), now, 400);
        assert_eq!(ok.unwrap(), Some(r(24, 60)));
        assert_eq!(Range::requested(None, None, now, 400), Ok(None));
        assert_eq!(
            Range::requested(Some("2026-10-02"), None, now, 400).unwrap(),
            Some(Range {
                from: t(24),
                to: now
            })
        );
        assert!(matches!(
            Range::requested(Some("2026-10-05"), Some("2026-10-02"), now, 400),
            Err(RangeError::Reversed { .. })
        ));
        let far = Range::requested(Some("2026-10-01"), None, now, 10).unwrap_err();
        assert!(far.to_string().contains("refresh.history_days"), "{far}");
        let bad = Range::requested(Some("yesterday"), None, now, 400).unwrap_err();
        assert!(bad.to_string().starts_with("from:"), "{bad}");
        assert_eq!(
            Range::requested(None, Some("2026-10-02"), now, 400),
            Err(RangeError::ToWithoutFrom)
        );
    }
}
