//! The `[ops]` configuration section, in a file of its own so the whole-daemon
//! [`Config`](crate::config::Config) can hold it without importing the ops module
//! (whose routes and loops import the daemon's state, which holds the config).

use serde::Deserialize;

use crate::config::error::ConfigError;

/// The `[ops]` configuration section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpsConfig {
    /// URL the daemon GETs every `self_ping_interval_secs` while healthy
    /// (`--self-ping-url`, `HEARTBEAT_SELF_PING_URL`). Unset: no self-ping.
    pub self_ping_url: Option<String>,
    /// Seconds between self-pings.
    pub self_ping_interval_secs: u64,
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            self_ping_url: None,
            self_ping_interval_secs: 60,
        }
    }
}

impl OpsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.self_ping_url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| ConfigError::new("ops.self_ping_url", format!("not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(ConfigError::new(
                    "ops.self_ping_url",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if self.self_ping_interval_secs == 0 {
            return Err(ConfigError::new(
                "ops.self_ping_interval_secs",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
