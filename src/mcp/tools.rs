//! The tool catalogue: what an agent sees in `tools/list`, and the typed arguments
//! each call is parsed into before anything runs.
//!
//! Heartbeat tools take minutes (as the dashboard does); the REST API they forward
//! to takes seconds. Arguments are strict (`deny_unknown_fields`) so a misspelt
//! field is an error naming it, not a silently ignored value.

use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::jobs::Scope;

/// Whether a tool only reads. A read-only key may call only `Read` tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Every tool, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolName {
    ListHeartbeats,
    GetHeartbeat,
    CreateHeartbeat,
    UpdateHeartbeat,
    DeleteHeartbeat,
    TriggerRecompute,
    GetJob,
    GetActiveJob,
    ListMetrics,
    ListChannels,
    TestChannel,
}

impl ToolName {
    pub const ALL: [ToolName; 11] = [
        ToolName::ListHeartbeats,
        ToolName::GetHeartbeat,
        ToolName::CreateHeartbeat,
        ToolName::UpdateHeartbeat,
        ToolName::DeleteHeartbeat,
        ToolName::TriggerRecompute,
        ToolName::GetJob,
        ToolName::GetActiveJob,
        ToolName::ListMetrics,
        ToolName::ListChannels,
        ToolName::TestChannel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ToolName::ListHeartbeats => "list_heartbeats",
            ToolName::GetHeartbeat => "get_heartbeat",
            ToolName::CreateHeartbeat => "create_heartbeat",
            ToolName::UpdateHeartbeat => "update_heartbeat",
            ToolName::DeleteHeartbeat => "delete_heartbeat",
            ToolName::TriggerRecompute => "trigger_recompute",
            ToolName::GetJob => "get_job",
            ToolName::GetActiveJob => "get_active_job",
            ToolName::ListMetrics => "list_metrics",
            ToolName::ListChannels => "list_channels",
            ToolName::TestChannel => "test_channel",
        }
    }

    pub fn parse(name: &str) -> Option<ToolName> {
        ToolName::ALL.into_iter().find(|t| t.as_str() == name)
    }

    pub fn access(self) -> Access {
        match self {
            ToolName::ListHeartbeats
            | ToolName::GetHeartbeat
            | ToolName::GetJob
            | ToolName::GetActiveJob
            | ToolName::ListMetrics
            | ToolName::ListChannels => Access::Read,
            // It sends a message to people: a write, as the API has it.
            ToolName::CreateHeartbeat
            | ToolName::UpdateHeartbeat
            | ToolName::DeleteHeartbeat
            | ToolName::TriggerRecompute
            | ToolName::TestChannel => Access::Write,
        }
    }

    fn description(self) -> &'static str {
        match self {
            ToolName::ListHeartbeats => "List every heartbeat (cron job monitor) of your project with its computed status: pending (never pinged), up, late (past its period, within grace), down (past period + grace, or its last ping reported a failure) or paused.",
            ToolName::GetHeartbeat => "One heartbeat: its status, ping URL, period and grace in minutes, last ping time.",
            ToolName::CreateHeartbeat => "Create a heartbeat that expects a ping every period_minutes, allowing grace_minutes of lateness before it is down. Returns it with the ping URL to call from the cron job (curl -fsS -m 10 --retry 5 <ping_url>).",
            ToolName::UpdateHeartbeat => "Change a heartbeat's name, period or grace (minutes). Its last ping, history and status are kept.",
            ToolName::DeleteHeartbeat => "Delete a heartbeat and its ping history.",
            ToolName::TriggerRecompute => "Start a recompute (ingest, then compute) of the given metric ids, or \"all\". With from (and optionally to) it backfills that bucket range whatever its state, at most refresh.history_days back; with dry_run: true as well it returns the buckets each metric would recompute and runs nothing. If a running job already covers the request (metrics and range) it is reused (coalesced: true); otherwise it is merged into the follow-up that runs next. Returns job_id, coalesced and queued (or, for a dry run, dry_run and metrics); follow it with get_job.",
            ToolName::GetJob => "A job's state (queued, running, succeeded, failed, cancelled), current phase, progress and error.",
            ToolName::GetActiveJob => "The recompute job running now (or null) and the queued follow-up, if any.",
            ToolName::ListMetrics => "Every metric with its latest value, benchmark mean and standard deviation, z score and band (normal |z| < 1, amber 1 <= |z| < 2, red |z| >= 2).",
            ToolName::ListChannels => "List where your project's alerts go: each channel's id, name, kind (webhook, http, email, slack, pagerduty, ...), settings with secrets masked, reminder interval, digest schedule, whether it is muted, and whether its deliveries are failing (failing, last_error).",
            ToolName::TestChannel => "Send a test notification to one channel now and return the outcome: ok, the service's HTTP status or SMTP reply code, the error if it failed, and how long it took (duration_ms). People on that channel receive it.",
        }
    }

    fn input_schema(self) -> Value {
        let id = json!({"type": ["string", "integer"], "description": "The heartbeat's id, as list_heartbeats shows it."});
        let name = json!({"type": "string", "minLength": 1, "description": "A name people recognise, such as \"nightly backup\"."});
        let period = json!({"type": "integer", "minimum": 1, "description": "Expected time between pings, in minutes."});
        let grace = json!({"type": "integer", "minimum": 0, "description": "Extra minutes allowed after the period before the heartbeat is down."});
        let (properties, required) = match self {
            ToolName::ListHeartbeats
            | ToolName::GetActiveJob
            | ToolName::ListMetrics
            | ToolName::ListChannels => (json!({}), json!([])),
            ToolName::TestChannel => (
                json!({ "id": {"type": "string", "format": "uuid", "description": "The channel's id, as list_channels shows it."} }),
                json!(["id"]),
            ),
            ToolName::GetHeartbeat | ToolName::DeleteHeartbeat => {
                (json!({ "id": id }), json!(["id"]))
            }
            ToolName::CreateHeartbeat => (
                json!({ "name": name, "period_minutes": period, "grace_minutes": grace }),
                json!(["name", "period_minutes", "grace_minutes"]),
            ),
            ToolName::UpdateHeartbeat => (
                json!({ "id": id, "name": name, "period_minutes": period, "grace_minutes": grace }),
                json!(["id"]),
            ),
            ToolName::TriggerRecompute => (
                json!({
                    "metric_ids": {
                        "description": "\"all\" (the default) or a list of metric ids from list_metrics.",
                        "anyOf": [
                            {"type": "string", "enum": ["all"]},
                            {"type": "array", "items": {"type": "string"}, "minItems": 1}
                        ]
                    },
                    "from": {"type": "string", "description": "Backfill from this bucket bound: an RFC 3339 time (2026-10-01T00:00:00Z) or a date (2026-10-01, its midnight UTC); at most refresh.history_days back, not in the future."},
                    "to": {"type": "string", "description": "The backfill's end, excluded (default: now); same forms as from, after it; needs from."},
                    "dry_run": {"type": "boolean", "default": false, "description": "With from: return the buckets each metric would recompute and run nothing."}
                }),
                json!([]),
            ),
            ToolName::GetJob => (
                json!({ "job_id": {"type": "string", "description": "The job_id trigger_recompute returned."} }),
                json!(["job_id"]),
            ),
        };
        json!({
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": false,
        })
    }

    /// The `tools/list` entry.
    pub fn tool(self) -> Tool {
        let Value::Object(schema) = self.input_schema() else {
            unreachable!("input_schema builds an object");
        };
        let schema: JsonObject = schema;
        let annotations = match self {
            ToolName::DeleteHeartbeat => ToolAnnotations::new().read_only(false).destructive(true),
            _ if self.access() == Access::Read => ToolAnnotations::new().read_only(true),
            _ => ToolAnnotations::new().read_only(false).destructive(false),
        };
        let mut tool = Tool::new(self.as_str(), self.description(), Arc::new(schema));
        tool.annotations = Some(annotations);
        tool
    }
}

/// The whole catalogue, in a stable order.
pub fn catalogue() -> Vec<Tool> {
    ToolName::ALL.into_iter().map(ToolName::tool).collect()
}

/// For tools that take nothing: `{}` or no arguments at all.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// A heartbeat id as the API spells it in paths: a number or a short token of
/// letters, digits, `-` and `_`. Anything else could escape its path segment.
#[derive(Debug, Clone)]
pub struct HeartbeatId(String);

impl HeartbeatId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for HeartbeatId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Number(n) if n.is_u64() => n.to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "id must be a string or a non-negative integer, not {other}"
                )))
            }
        };
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(HeartbeatId(raw))
        } else {
            Err(serde::de::Error::custom(format!(
                "'{raw}' is not a heartbeat id (list_heartbeats shows them)"
            )))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRef {
    pub id: HeartbeatId,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateHeartbeat {
    pub name: String,
    pub period_minutes: u32,
    pub grace_minutes: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateHeartbeat {
    pub id: HeartbeatId,
    pub name: Option<String>,
    pub period_minutes: Option<u32>,
    pub grace_minutes: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerRecompute {
    #[serde(default)]
    pub metric_ids: Scope,
    /// A backfill's start, passed to the API as given (it parses and bounds it).
    #[serde(default)]
    pub from: Option<String>,
    /// A backfill's end, excluded; needs `from`.
    #[serde(default)]
    pub to: Option<String>,
    /// With `from`: answer the buckets each metric would recompute, run nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `test_channel`'s argument: a channel id, a UUID (so it cannot escape its
/// path segment).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRef {
    pub id: String,
}

impl ChannelRef {
    pub fn uuid(&self) -> Result<uuid::Uuid, String> {
        self.id.trim().parse().map_err(|_| {
            format!(
                "'{}' is not a channel id (list_channels shows them)",
                self.id
            )
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRef {
    pub job_id: String,
}

/// A period of at least a minute; the API would say "seconds", which is not what
/// the agent sent.
pub fn period_seconds(minutes: u32) -> Result<u64, String> {
    if minutes == 0 {
        return Err("period_minutes must be at least 1".into());
    }
    Ok(u64::from(minutes) * 60)
}

/// Rewrites the API's seconds into the minutes agents use, in place: a heartbeat
/// object gains `period_minutes`/`grace_minutes` and loses the seconds fields.
/// How many status changes and flagged pings `get_heartbeat` adds.
pub const RECENT_EVENTS: usize = 10;

/// The first `n` items of a JSON list (newest first, as the API lists them).
pub fn first(list: &Value, n: usize) -> Value {
    Value::Array(
        list.as_array()
            .into_iter()
            .flatten()
            .take(n)
            .cloned()
            .collect(),
    )
}

/// The first `n` pings a detection rule flagged (`event` set: early, too_fast).
pub fn flagged(pings: &Value, n: usize) -> Value {
    Value::Array(
        pings
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| !p["event"].is_null())
            .take(n)
            .cloned()
            .collect(),
    )
}

pub fn heartbeat_in_minutes(hb: &mut Value) {
    let Some(obj) = hb.as_object_mut() else {
        return;
    };
    for (secs, mins) in [
        ("period_seconds", "period_minutes"),
        ("grace_seconds", "grace_minutes"),
    ] {
        if let Some(v) = obj.remove(secs) {
            let minutes = match v.as_u64() {
                Some(s) if s % 60 == 0 => json!(s / 60),
                Some(s) => json!(s as f64 / 60.0),
                None => v.as_f64().map_or(Value::Null, |s| json!(s / 60.0)),
            };
            obj.insert(mins.to_string(), minutes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_an_object_schema_that_forbids_unknown_fields() {
        for tool in catalogue() {
            assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
            assert_eq!(tool.input_schema["additionalProperties"], false);
        }
    }

    #[test]
    fn only_reads_are_read_tools() {
        let reads: Vec<_> = ToolName::ALL
            .into_iter()
            .filter(|t| t.access() == Access::Read)
            .map(ToolName::as_str)
            .collect();
        assert_eq!(
            reads,
            [
                "list_heartbeats",
                "get_heartbeat",
                "get_job",
                "get_active_job",
                "list_metrics",
                "list_channels"
            ]
        );
    }

    #[test]
    fn heartbeat_ids_cannot_escape_their_path_segment() {
        assert!(serde_json::from_value::<HeartbeatId>(json!("abc-12_3")).is_ok());
        assert!(serde_json::from_value::<HeartbeatId>(json!(42)).is_ok());
        assert!(serde_json::from_value::<HeartbeatId>(json!("../x")).is_err());
        assert!(serde_json::from_value::<HeartbeatId>(json!("a/b")).is_err());
        assert!(serde_json::from_value::<HeartbeatId>(json!(-1)).is_err());
        assert!(serde_json::from_value::<HeartbeatId>(json!("")).is_err());
    }

    #[test]
    fn seconds_become_minutes() {
        let mut hb = json!({"name": "x", "period_seconds": 3600, "grace_seconds": 90});
        heartbeat_in_minutes(&mut hb);
        assert_eq!(
            hb,
            json!({"name": "x", "period_minutes": 60, "grace_minutes": 1.5})
        );
    }
}
