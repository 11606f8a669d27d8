//! The job vocabulary: kinds, scopes, triggers, states, and the job record whose
//! JSON is the API contract (docs/api.md).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::range::RangeSet;

/// One lane per kind; a lane runs one job at a time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Ingest from every source, then compute metrics.
    Recompute,
    /// μ/σ of `rolling_stat` metrics.
    Benchmarks,
    /// Daily client tier snapshot.
    Segments,
    /// Audit-cut registry sync plus snapshots.
    Audit,
    /// Retention: deletes rows past `[retention]`, one phase per table.
    Maintenance,
}

impl JobKind {
    pub const ALL: [JobKind; 5] = [
        JobKind::Recompute,
        JobKind::Benchmarks,
        JobKind::Segments,
        JobKind::Audit,
        JobKind::Maintenance,
    ];

    /// How many lanes there are (the size of per-lane arrays).
    pub const COUNT: usize = Self::ALL.len();

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Recompute => "recompute",
            JobKind::Benchmarks => "benchmarks",
            JobKind::Segments => "segments",
            JobKind::Audit => "audit",
            JobKind::Maintenance => "maintenance",
        }
    }

    /// Index into per-lane arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown job kind '{s}': expected one of recompute, benchmarks, segments, audit, maintenance"))
    }
}

/// What a job covers: which metrics it brings up to date (incrementally), and
/// which bucket ranges it recomputes per metric (a backfill).
///
/// `All` covers every incremental request; a metric list covers its subsets. A
/// backfill's ranges are covered only by ranges that hold them, metric by metric:
/// an incremental run does not recompute buckets it already has. In JSON `"all"`,
/// a list of metric ids, or for a backfill `{"metrics": "all" | [ids] | null,
/// "ranges": {"<metric id>": [{"from", "to"}, ...]}}`, read by this one
/// `Deserialize` for the API, the MCP tool and the shared job tables alike.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    All,
    Metrics(BTreeSet<String>),
    Backfill(Backfill),
}

/// A scope with ranges: the incremental part merged with it (if any) and, per
/// metric, the union of the ranges asked for. Never holds an empty range set.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Backfill {
    /// The incremental part: `"all"`, a list, or null for none.
    pub metrics: Option<Box<Scope>>,
    pub ranges: BTreeMap<String, RangeSet>,
}

impl Scope {
    /// A backfill of `ranges` for each of `ids`.
    pub fn backfill<'a>(ids: impl IntoIterator<Item = &'a String>, ranges: &RangeSet) -> Scope {
        Scope::Backfill(Backfill {
            metrics: None,
            ranges: ids
                .into_iter()
                .map(|id| (id.clone(), ranges.clone()))
                .collect(),
        })
    }

    /// The incremental part: None when the scope is only a backfill.
    fn incremental(&self) -> Option<&Scope> {
        match self {
            Scope::Backfill(b) => b.metrics.as_deref(),
            plain => Some(plain),
        }
    }

    /// The backfill ranges per metric (empty for a plain scope).
    pub fn ranges(&self) -> Option<&BTreeMap<String, RangeSet>> {
        match self {
            Scope::Backfill(b) => Some(&b.ranges),
            _ => None,
        }
    }

    /// Whether a job with this scope already does everything `other` asks for.
    pub fn covers(&self, other: &Scope) -> bool {
        let incremental = match (self.incremental(), other.incremental()) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(Scope::All), _) => true,
            (Some(Scope::Metrics(mine)), Some(Scope::Metrics(theirs))) => theirs.is_subset(mine),
            _ => false,
        };
        let empty = BTreeMap::new();
        let mine = self.ranges().unwrap_or(&empty);
        incremental
            && other
                .ranges()
                .unwrap_or(&empty)
                .iter()
                .all(|(id, theirs)| mine.get(id).is_some_and(|m| m.covers(theirs)))
    }

    /// The smallest scope covering both: incremental parts united, ranges united
    /// per metric.
    pub fn union(&self, other: &Scope) -> Scope {
        let incremental = match (self.incremental(), other.incremental()) {
            (None, None) => None,
            (Some(x), None) | (None, Some(x)) => Some(x.clone()),
            (Some(Scope::Metrics(a)), Some(Scope::Metrics(b))) => {
                Some(Scope::Metrics(a.union(b).cloned().collect()))
            }
            _ => Some(Scope::All),
        };
        let mut ranges = self.ranges().cloned().unwrap_or_default();
        for (id, theirs) in other.ranges().into_iter().flatten() {
            let merged = ranges
                .get(id)
                .map_or_else(|| theirs.clone(), |m| m.union(theirs));
            ranges.insert(id.clone(), merged);
        }
        match (incremental, ranges.is_empty()) {
            (Some(plain), true) => plain,
            (incremental, _) => Scope::Backfill(Backfill {
                metrics: incremental.map(Box::new),
                ranges,
            }),
        }
    }

    /// The metric ids brought up to date incrementally: None for all, an empty
    /// set for a backfill alone.
    pub fn metric_ids(&self) -> Option<&BTreeSet<String>> {
        static NONE: BTreeSet<String> = BTreeSet::new();
        match self.incremental() {
            Some(Scope::All) => None,
            Some(Scope::Metrics(ids)) => Some(ids),
            _ => Some(&NONE),
        }
    }

    /// Whether the job touches metric `id` at all (incrementally or by a range).
    pub fn includes_metric(&self, id: &str) -> bool {
        self.metric_ids().is_none_or(|ids| ids.contains(id))
            || self.ranges().is_some_and(|r| r.contains_key(id))
    }
}

/// More ids than this in one request is a mistake, not a scope.
pub const MAX_METRIC_IDS: usize = 1000;

/// A request's `metric_ids` in the OpenAPI document: `"all"` or a list of 1 to
/// [`MAX_METRIC_IDS`] metric ids (an empty list is refused: `"all"` says every
/// metric). Read into a [`Scope`].
pub struct MetricIds;

impl utoipa::PartialSchema for MetricIds {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["all"])),
            )
            .item(
                ArrayBuilder::new()
                    .items(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            // No NUL: the request edge refuses one in any text.
                            .pattern(Some("^[^\\u0000]*$")),
                    )
                    .min_items(Some(1))
                    .max_items(Some(MAX_METRIC_IDS)),
            )
            .description(Some("\"all\" or a list of metric ids"))
            .into()
    }
}

impl ToSchema for MetricIds {}

/// A job's scope in the OpenAPI document: what [`MetricIds`] allows, or a
/// backfill's object.
impl utoipa::PartialSchema for Scope {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{
            AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, Type,
        };
        let ranges = ArrayBuilder::new().items(super::range::Range::schema());
        let backfill = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "metrics",
                OneOfBuilder::new()
                    .item(MetricIds::schema())
                    .item(ObjectBuilder::new().schema_type(Type::Null))
                    .description(Some(
                        "The incremental part merged with the backfill, or null",
                    )),
            )
            .required("metrics")
            .property(
                "ranges",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .additional_properties(Some(AdditionalProperties::RefOr(ranges.into())))
                    .description(Some(
                        "Per metric id, the bucket ranges [from, to) it recomputes",
                    )),
            )
            .required("ranges");
        OneOfBuilder::new()
            .item(MetricIds::schema())
            .item(backfill)
            .description(Some(
                "\"all\", a list of metric ids, or a backfill's metrics and ranges",
            ))
            .into()
    }
}

impl ToSchema for Scope {}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(BTreeSet<String>),
            Backfill(Backfill),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("metric_ids must be \"all\" or a list of metric ids")
        })? {
            Raw::Word(w) if w == "all" => Ok(Scope::All),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "metric_ids must be \"all\" or a list of metric ids, not \"{w}\""
            ))),
            Raw::List(ids) => Ok(Scope::Metrics(ids)),
            Raw::Backfill(b) => Ok(Scope::Backfill(b)),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scope::All => s.serialize_str("all"),
            Scope::Metrics(ids) => ids.serialize(s),
            Scope::Backfill(b) => b.serialize(s),
        }
    }
}

/// Who asked for a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Cron,
    User,
    Deploy,
    #[default]
    Api,
    /// An operator fired a cron entry now (`POST /api/schedule/{entry}/trigger`).
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cron => "cron",
            Trigger::User => "user",
            Trigger::Deploy => "deploy",
            Trigger::Api => "api",
            Trigger::Manual => "manual",
        }
    }
}

impl FromStr for Trigger {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cron" => Ok(Trigger::Cron),
            "user" => Ok(Trigger::User),
            "deploy" => Ok(Trigger::Deploy),
            "api" => Ok(Trigger::Api),
            "manual" => Ok(Trigger::Manual),
            other => Err(format!(
                "unknown trigger '{other}': expected one of cron, user, deploy, api, manual"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// One phase of a job, with its own timing and a free-form detail.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Phase {
    pub name: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub detail: serde_json::Value,
}

/// Progress of the current phase: metrics, sources, cuts...
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// The job as the API shows it (and as nodes publish it to each other).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// UUIDv7: sorts by creation time.
    pub job_id: Uuid,
    pub kind: JobKind,
    pub trigger: Trigger,
    pub scope: Scope,
    pub state: JobState,
    /// The phase running now (or the last one, once finished).
    pub phase: Option<String>,
    pub phases: Vec<Phase>,
    pub progress: Progress,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    /// Requests answered with this job (the first included).
    pub coalesced_requests: u64,
    /// The node running (or that ran) the job.
    pub node: String,
    /// What the body reported on success or failure (failed sources, cuts, counts).
    pub result: serde_json::Value,
    /// Requests other nodes coalesced onto this job (learnt when publishing); shown
    /// as part of `coalesced_requests`, kept apart so publishing does not double it.
    #[serde(skip)]
    pub remote_requests: u64,
}

impl Job {
    /// The phase for a log line: the current one, or `start` before the first,
    /// so every line about a job carries `job_id`, `kind`, `phase` and `node`
    /// (docs/operations/supervision.md).
    pub fn phase_or_start(&self) -> &str {
        self.phase.as_deref().unwrap_or("start")
    }

    /// The job as the API shows it: every request counted, wherever it arrived.
    pub fn view(&self) -> Job {
        let mut job = self.clone();
        job.coalesced_requests += job.remote_requests;
        job.remote_requests = 0;
        job
    }

    pub fn new(kind: JobKind, scope: Scope, trigger: Trigger, node: &str) -> Self {
        Job {
            job_id: Uuid::now_v7(),
            kind,
            trigger,
            scope,
            state: JobState::Queued,
            phase: None,
            phases: Vec::new(),
            progress: Progress::default(),
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            error: None,
            coalesced_requests: 1,
            node: node.to_string(),
            result: serde_json::Value::Null,
            remote_requests: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(ids: &[&str]) -> Scope {
        Scope::Metrics(ids.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn all_covers_everything_and_lists_cover_subsets() {
        assert!(Scope::All.covers(&metrics(&["a"])));
        assert!(metrics(&["a", "b"]).covers(&metrics(&["a"])));
        assert!(!metrics(&["a"]).covers(&metrics(&["a", "b"])));
        assert!(!metrics(&["a"]).covers(&Scope::All));
    }

    fn backfill(id: &str, from_h: i64, to_h: i64) -> Scope {
        let t0: DateTime<Utc> = "2026-10-01T00:00:00Z".parse().unwrap();
        let r = crate::jobs::range::Range {
            from: t0 + chrono::Duration::hours(from_h),
            to: t0 + chrono::Duration::hours(to_h),
        };
        Scope::backfill(&[id.to_string()], &RangeSet::of(r))
    }

    #[test]
    fn ranges_are_covered_by_ranges_of_the_same_metric_only() {
        assert!(backfill("a", 0, 48).covers(&backfill("a", 10, 20)));
        assert!(!backfill("a", 0, 48).covers(&backfill("a", 40, 50)));
        assert!(!backfill("a", 0, 48).covers(&backfill("b", 10, 20)));
        assert!(
            !Scope::All.covers(&backfill("a", 10, 20)),
            "an incremental run does not recompute buckets it has"
        );
        assert!(!backfill("a", 0, 48).covers(&Scope::All));
        let both = Scope::All.union(&backfill("a", 0, 48));
        assert!(both.covers(&Scope::All) && both.covers(&backfill("a", 1, 2)));
        assert!(both.covers(&metrics(&["z"])));
    }

    #[test]
    fn a_union_of_backfills_unites_ranges_per_metric_and_reads_back_from_json() {
        let u = backfill("a", 0, 5)
            .union(&backfill("a", 3, 9))
            .union(&backfill("a", 20, 22))
            .union(&backfill("b", 1, 2))
            .union(&metrics(&["c"]));
        let ranges = u.ranges().unwrap();
        assert_eq!(ranges["a"].ranges().len(), 2);
        assert_eq!(ranges["b"].ranges().len(), 1);
        assert_eq!(u.metric_ids(), Some(&["c".to_string()].into()));
        assert!(u.includes_metric("a") && u.includes_metric("c") && !u.includes_metric("d"));
        let json = serde_json::to_value(&u).unwrap();
        assert_eq!(json["metrics"], serde_json::json!(["c"]));
        assert_eq!(serde_json::from_value::<Scope>(json).unwrap(), u);
        assert_eq!(
            serde_json::to_value(metrics(&["a"])).unwrap(),
            serde_json::json!(["a"]),
            "a plain scope keeps its JSON"
        );
    }

    #[test]
    fn union_of_lists_is_their_union_and_all_absorbs() {
        assert_eq!(
            metrics(&["a"]).union(&metrics(&["b"])),
            metrics(&["a", "b"])
        );
        assert_eq!(metrics(&["a"]).union(&Scope::All), Scope::All);
    }
}
