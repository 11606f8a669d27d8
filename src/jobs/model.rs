//! The job vocabulary: kinds, scopes, triggers, states, and the job record whose
//! JSON is the API contract (docs/api.md).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

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

/// What a job covers. `All` covers everything; a metric list covers its subsets.
/// In JSON `"all"` or a list of metric ids, read by this one `Deserialize` for the
/// API body, the MCP tool and the shared job tables alike.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    All,
    Metrics(BTreeSet<String>),
}

impl Scope {
    /// Whether a job with this scope already does everything `other` asks for.
    pub fn covers(&self, other: &Scope) -> bool {
        match (self, other) {
            (Scope::All, _) => true,
            (Scope::Metrics(_), Scope::All) => false,
            (Scope::Metrics(mine), Scope::Metrics(theirs)) => theirs.is_subset(mine),
        }
    }

    /// The smallest scope covering both.
    pub fn union(&self, other: &Scope) -> Scope {
        match (self, other) {
            (Scope::Metrics(a), Scope::Metrics(b)) => Scope::Metrics(a.union(b).cloned().collect()),
            _ => Scope::All,
        }
    }

    /// The metric ids, or None for all.
    pub fn metric_ids(&self) -> Option<&BTreeSet<String>> {
        match self {
            Scope::All => None,
            Scope::Metrics(ids) => Some(ids),
        }
    }
}

/// More ids than this in one request is a mistake, not a scope.
pub const MAX_METRIC_IDS: usize = 1000;

/// In the OpenAPI document: `"all"` or a list of 1 to [`MAX_METRIC_IDS`]
/// metric ids (an empty list is refused: `"all"` says every metric).
impl utoipa::PartialSchema for Scope {
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

impl ToSchema for Scope {}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(BTreeSet<String>),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("metric_ids must be \"all\" or a list of metric ids")
        })? {
            Raw::Word(w) if w == "all" => Ok(Scope::All),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "metric_ids must be \"all\" or a list of metric ids, not \"{w}\""
            ))),
            Raw::List(ids) => Ok(Scope::Metrics(ids)),
        }
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scope::All => s.serialize_str("all"),
            Scope::Metrics(ids) => ids.serialize(s),
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

    #[test]
    fn union_of_lists_is_their_union_and_all_absorbs() {
        assert_eq!(
            metrics(&["a"]).union(&metrics(&["b"])),
            metrics(&["a", "b"])
        );
        assert_eq!(metrics(&["a"]).union(&Scope::All), Scope::All);
    }
}
