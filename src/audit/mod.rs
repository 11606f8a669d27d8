//! Audit cuts: operator-written SQL files (`<cuts_dir>/<cut_id>.sql`) whose results,
//! per look-back window, are kept fresh as JSON snapshots.
//!
//! The audit lane's job runs two phases: `sync` mirrors the files into
//! `heartbeat.audit_cut_registry` ([`registry`]), then `snapshots` computes every
//! (cut × window) into `heartbeat.audit_cut_snapshot` ([`snapshot`]). The API
//! ([`routes`]) only reads those tables.
//!
//! - [`cut_file`]: the file format: header, windows, query ([`CutFile`], [`CutWindow`]).
//! - [`registry`]: the `sync` phase.
//! - [`snapshot`]: the `snapshots` phase and the lane's [`AuditBody`].
//! - [`routes`]: `GET /api/audit/cuts`, `GET /api/audit/cuts/{cut_id}`.

pub mod cut_file;
pub mod registry;
pub mod routes;
pub mod snapshot;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use cut_file::{CutFile, CutId, CutWindow};
pub use routes::routes;
pub use snapshot::AuditBody;

use crate::config::error::ConfigError;

/// The `[audit]` configuration section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Directory of cut files. Default: `<definitions_dir>/cuts`.
    pub cuts_dir: Option<PathBuf>,
    /// How long one (cut × window) query may run before it is stopped and reported
    /// as failed, seconds.
    pub statement_timeout_secs: f64,
    /// Most rows one snapshot may hold; a cut returning more fails (add a LIMIT or
    /// aggregate), so one careless query cannot store a table's worth of JSON.
    pub max_rows: u32,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            cuts_dir: None,
            statement_timeout_secs: 30.0,
            max_rows: 10_000,
        }
    }
}

impl AuditConfig {
    pub fn cuts_dir(&self, definitions_dir: &Path) -> PathBuf {
        self.cuts_dir
            .clone()
            .unwrap_or_else(|| definitions_dir.join("cuts"))
    }

    pub fn statement_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.statement_timeout_secs)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        // PostgreSQL takes whole milliseconds; 0 would mean "no timeout".
        if !(self.statement_timeout_secs >= 0.001 && self.statement_timeout_secs <= 86_400.0) {
            return Err(ConfigError::new(
                "audit.statement_timeout_secs",
                "must be between 0.001 and 86400 seconds",
            ));
        }
        if !(1..=1_000_000).contains(&self.max_rows) {
            return Err(ConfigError::new(
                "audit.max_rows",
                "must be between 1 and 1000000",
            ));
        }
        Ok(())
    }
}
