//! Client segments: each day, every client's tier (`top`, `mid`, `micro`) from its
//! activity over a window, kept as one snapshot row per (date, client) in
//! `heartbeat.client_segment_snapshot`.
//!
//! - [`tiers`]: ranking and threshold rules (pure).
//! - [`snapshot`]: the segments lane's [`SegmentsBody`]: score, rank, replace the day.
//! - [`routes`]: `GET /api/segments`, `GET /api/segments/{client_id}`.

pub mod routes;
pub mod snapshot;
pub mod tiers;

use serde::Deserialize;

pub use routes::routes;
pub use snapshot::SegmentsBody;
pub use tiers::{Thresholds, Tier};

use crate::config::ConfigError;

/// What a client's activity score counts over the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScoreKind {
    /// The number of the client's events.
    #[default]
    Events,
    /// The sum of the `value` of the client's events.
    ValueSum,
}

/// The `[segments]` configuration section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SegmentsConfig {
    /// Days of activity behind a client's score, ending when the job runs.
    pub window_days: u32,
    /// `events` (count) or `value_sum`.
    pub score: ScoreKind,
    /// `[segments.thresholds]`: `mode = "percentile"` (shares of clients, in
    /// percent; default top 10, mid 40) or `mode = "absolute"` (minimum scores).
    pub thresholds: Thresholds,
}

impl Default for SegmentsConfig {
    fn default() -> Self {
        Self {
            window_days: 30,
            score: ScoreKind::Events,
            thresholds: Thresholds::default(),
        }
    }
}

impl SegmentsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=3660).contains(&self.window_days) {
            return Err(ConfigError::new(
                "segments.window_days",
                "must be between 1 and 3660",
            ));
        }
        self.thresholds.validate()
    }
}
