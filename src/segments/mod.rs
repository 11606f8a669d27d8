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

use crate::config::error::ConfigError;

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
    /// IANA time zone whose calendar day a snapshot is filed under (a run at
    /// 04:30 in Asia/Tokyo is still 19:30 UTC the day before). Default: the cron
    /// table's `schedule.timezone`, so the 04:30 run files under its own day.
    pub timezone: Option<String>,
}

impl Default for SegmentsConfig {
    fn default() -> Self {
        Self {
            window_days: 30,
            score: ScoreKind::Events,
            thresholds: Thresholds::default(),
            timezone: None,
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
        self.tz(chrono_tz::UTC)?;
        self.thresholds.validate()
    }

    /// The parsed `timezone`, or `fallback` (the schedule's) when unset.
    pub fn tz(&self, fallback: chrono_tz::Tz) -> Result<chrono_tz::Tz, ConfigError> {
        let Some(name) = &self.timezone else {
            return Ok(fallback);
        };
        name.parse().map_err(|_| {
            ConfigError::new(
                "segments.timezone",
                format!("'{name}' is not an IANA time zone such as UTC or Europe/Paris"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn the_segments_and_audit_sections_read_from_the_config_file() {
        let config = Config::from_toml(
            "definitions_dir = \"/defs\"\n\
             [segments]\nwindow_days = 14\nscore = \"value_sum\"\n\
             [segments.thresholds]\nmode = \"absolute\"\ntop = 100\nmid = 10\n\
             [audit]\nstatement_timeout_secs = 5\n",
        )
        .unwrap();
        assert!(config.validate().is_ok());
        assert_eq!(config.segments.window_days, 14);
        assert_eq!(config.segments.score, super::ScoreKind::ValueSum);
        assert_eq!(
            config.audit.cuts_dir(&config.definitions_dir()),
            std::path::Path::new("/defs/cuts")
        );
        assert_eq!(config.audit.statement_timeout().as_secs(), 5);
    }

    #[test]
    fn the_defaults_are_thirty_days_and_top_ten_mid_forty_percent() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config.segments.window_days, 30);
        assert_eq!(
            config.segments.thresholds,
            super::Thresholds::Percentile {
                top: 10.0,
                mid: 40.0
            }
        );
        assert_eq!(config.audit.statement_timeout().as_secs(), 30);
    }

    #[test]
    fn bad_segment_and_audit_settings_name_their_field() {
        let bad = [
            ("[segments]\nwindow_days = 0\n", "segments.window_days"),
            (
                "[segments.thresholds]\nmode = \"percentile\"\ntop = 70\nmid = 40\n",
                "segments.thresholds",
            ),
            (
                "[audit]\nstatement_timeout_secs = 0\n",
                "audit.statement_timeout_secs",
            ),
            (
                "[segments]\ntimezone = \"Mars/Olympus\"\n",
                "segments.timezone",
            ),
        ];
        for (text, field) in bad {
            let err = Config::from_toml(text).unwrap().validate().unwrap_err();
            assert_eq!(err.field, field, "{text}");
        }
        assert!(Config::from_toml("[segments]\nwindow = 3\n").is_err());
    }
}
