//! healthchecks.io compatibility: its ping URLs and part of its Management API, so the cron jobs, `runitor`
//! wrappers and client libraries that ping healthchecks.io work against Heartbeat
//! by changing one base URL. What is supported, accepted without effect, or not
//! supported is listed in docs/healthchecks-compat.md.
//!
//! The area owns no storage of its own: a healthchecks.io check is a heartbeat
//! (its `ping_uuid` and `slug` columns), a ping goes through the monitor's
//! group-commit writer, and a check created by `?create=1` is created by the
//! monitor's `heartbeat::create`.
//!
//! - [`ping`]: the domain: what a `/ping/...` URL names, and how a UUID or a
//!   ping key and slug are resolved to the heartbeat's token.
//! - [`routes`]: the ping URLs' HTTP edge, answered in healthchecks.io's plain texts.
//! - [`check`]: a heartbeat as the Management API's check JSON.
//! - [`store`]: the checks the Management API reads and writes, in the database.
//! - [`api_routes`]: the Management API's HTTP edge (`X-Api-Key`, healthchecks.io's
//!   `{"error": "..."}` answers, its CORS) for checks.
//! - [`history`]: a check's pings and flips, the project's channels; its
//!   `routes` serve them and the Management API's other reads (badges, status).
//! - [`badge`]: status badges per tag and per project (SVG, JSON, shields.io),
//!   at unguessable URLs; its `routes` serve them.
//!
//! A check's tags and channels are the heartbeat's own (`tags`, `channels`):
//! what one API sets, the other shows (docs/decisions.md §26).

pub mod api_routes;
pub mod badge;
pub mod check;
pub mod history;
pub mod ping;
pub mod routes;
pub mod spec;
pub mod store;

use serde::Deserialize;

/// The `[hc]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HcConfig {
    /// Where healthchecks.io-style ping URLs are served: `<prefix>/<uuid>`,
    /// `<prefix>/<ping_key>/<slug>`. healthchecks.io's own is `/ping` on a
    /// self-hosted instance (hc-ping.com serves them at the root, which a client
    /// reaches through a reverse proxy or a base URL ending in the prefix).
    pub ping_prefix: String,
}

/// The prefix the routes are declared at.
pub const DEFAULT_PING_PREFIX: &str = "/ping";

impl Default for HcConfig {
    fn default() -> Self {
        Self {
            ping_prefix: DEFAULT_PING_PREFIX.into(),
        }
    }
}

impl HcConfig {
    /// A prefix is one or more path segments: a leading `/`, no trailing `/`,
    /// and not a path the daemon already serves.
    pub fn validate(&self) -> Result<(), crate::config::error::ConfigError> {
        use crate::config::error::ConfigError;
        let p = &self.ping_prefix;
        let taken = [
            "/api", "/hb", "/mcp", "/assets", "/metrics", "/healthz", "/readyz",
        ];
        let ok = p.len() > 1
            && p.starts_with('/')
            && !p.ends_with('/')
            && !p.contains(['{', '}', '?', '#', '*'])
            && !taken
                .iter()
                .any(|t| p == t || p.starts_with(&format!("{t}/")));
        if ok {
            Ok(())
        } else {
            Err(ConfigError::new(
                "hc.ping_prefix",
                "must start with '/', not end with '/', and not be a path the daemon serves \
                 (/api, /hb, /mcp, /assets, /metrics, /healthz, /readyz)",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_must_be_free_paths() {
        for good in ["/ping", "/hc/ping", "/p"] {
            let c = HcConfig {
                ping_prefix: good.into(),
            };
            assert!(c.validate().is_ok(), "{good}");
        }
        for bad in ["", "/", "ping", "/ping/", "/api", "/api/v1", "/hb", "/{x}"] {
            let c = HcConfig {
                ping_prefix: bad.into(),
            };
            assert!(c.validate().is_err(), "{bad}");
        }
    }
}
