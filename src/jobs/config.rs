//! The `[jobs]` configuration section.

use std::time::Duration;

use serde::Deserialize;

use super::model::JobKind;

/// Limits and retention for the jobs engine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Max runtime per kind, in seconds; a job past it is cancelled and fails.
    pub max_runtime_secs: MaxRuntimes,
    /// How many finished jobs stay pollable (newest kept).
    pub retain_count: usize,
    /// How long a finished job stays pollable, seconds.
    pub retain_secs: u64,
    /// This node's id in job JSON and logs; default hostname:pid.
    pub node_id: Option<String>,
    /// Diagnostic: every lane runs a probe body that holds its fenced transaction
    /// this many milliseconds and records its interval in `heartbeat.job_probe`.
    /// For checking a cluster's wiring (and its tests); never set in production.
    pub probe_body_ms: Option<u64>,
}

/// One limit per lane, seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaxRuntimes {
    pub recompute: u64,
    pub benchmarks: u64,
    pub segments: u64,
    pub audit: u64,
    pub maintenance: u64,
}

impl Default for MaxRuntimes {
    fn default() -> Self {
        Self {
            recompute: 30 * 60,
            benchmarks: 10 * 60,
            segments: 10 * 60,
            audit: 15 * 60,
            maintenance: 30 * 60,
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            max_runtime_secs: MaxRuntimes::default(),
            retain_count: 200,
            retain_secs: 24 * 3600,
            node_id: None,
            probe_body_ms: None,
        }
    }
}

impl JobsConfig {
    pub fn max_runtime(&self, kind: JobKind) -> Duration {
        let m = &self.max_runtime_secs;
        Duration::from_secs(match kind {
            JobKind::Recompute => m.recompute,
            JobKind::Benchmarks => m.benchmarks,
            JobKind::Segments => m.segments,
            JobKind::Audit => m.audit,
            JobKind::Maintenance => m.maintenance,
        })
    }

    /// The node id: configured, or hostname:pid.
    pub fn node(&self) -> String {
        if let Some(id) = &self.node_id {
            return id.clone();
        }
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        format!("{host}:{}", std::process::id())
    }

    pub fn validate(&self) -> Result<(), crate::config::error::ConfigError> {
        for kind in JobKind::ALL {
            if self.max_runtime(kind).is_zero() {
                return Err(crate::config::error::ConfigError::new(
                    format!("jobs.max_runtime_secs.{kind}"),
                    "must be at least 1",
                ));
            }
        }
        if self.retain_count == 0 {
            return Err(crate::config::error::ConfigError::new(
                "jobs.retain_count",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
