//! Daemon configuration: one struct, three layers.
//!
//! Flags override environment variables (clap reads both, see `main.rs`), which
//! override the optional TOML file (`--config` / `HEARTBEAT_CONFIG`), which overrides
//! the defaults declared here. Every field is documented where it is declared so
//! `docs/configuration.md` and the README table have one source to copy from.
//!
//! Validation happens once, in [`Config::validate`], and reports the first bad field
//! as a [`ConfigError`] naming it; the binary prints that line and exits with status 2.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration problem, always naming the field at fault.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {problem}")]
pub struct ConfigError {
    /// The field's name as written in the TOML file (dotted for nested sections).
    pub field: String,
    /// What is wrong with it, in words a user can act on.
    pub problem: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("'{other}' is not one of text, json")),
        }
    }
}

/// The whole daemon configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server listens on (`HEARTBEAT_BIND`). Without an admin key
    /// only loopback addresses are accepted (open mode).
    pub bind: SocketAddr,
    /// PostgreSQL connection string (`DATABASE_URL`). Unset: the daemon provisions and
    /// runs its own cluster under `data_dir` (the embedded default).
    pub database_url: Option<String>,
    /// Where the embedded PostgreSQL cluster lives (`HEARTBEAT_DATA_DIR`). Default:
    /// `$XDG_DATA_HOME/heartbeat` (`~/.local/share/heartbeat`), or
    /// `/var/lib/heartbeat` when run as root, since the unprivileged server user
    /// cannot enter root's home.
    pub data_dir: PathBuf,
    /// Admin bearer key (`HEARTBEAT_ADMIN_KEY`). Unset: open mode, loopback only.
    pub admin_key: Option<String>,
    /// `text` or `json` (`HEARTBEAT_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// Switch the internal cron table off, for hosts driven by crontab
    /// (`HEARTBEAT_NO_SCHEDULER`).
    pub no_scheduler: bool,
    /// Directory holding `metrics/` and `cuts/` definition files.
    pub definitions_dir: PathBuf,
    /// Maximum number of pooled PostgreSQL connections.
    pub pool_size: usize,
    /// Largest accepted request body, in bytes; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// How long a graceful shutdown may take before the daemon exits anyway, seconds.
    pub shutdown_timeout_secs: u64,
    /// Load demo definitions and the demo source (on by default in embedded mode).
    pub demo: Option<bool>,
    /// `[[sources]]`: where events are ingested from (see `refresh::sources`).
    pub sources: Vec<crate::refresh::sources::SourceConfig>,
    /// `[refresh]`: compute, benchmark and cockpit settings (see `refresh`).
    pub refresh: crate::refresh::RefreshConfig,
    /// The dead man's switch (`[monitor]`, see `monitor::MonitorConfig`).
    #[serde(default)]
    pub monitor: crate::monitor::MonitorConfig,
    /// `[jobs]`: max runtimes, retention, node id.
    pub jobs: crate::jobs::config::JobsConfig,
    /// `[ops]`: self-ping URL and interval.
    #[serde(default)]
    pub ops: crate::ops::OpsConfig,
    /// `[schedule]`: the cron table's time zone and entries (seeds merged in).
    #[serde(default)]
    pub schedule: crate::schedule::ScheduleConfig,
    /// `[segments]`: the client tier snapshot (see `segments::SegmentsConfig`).
    #[serde(default)]
    pub segments: crate::segments::SegmentsConfig,
    /// `[audit]`: audit cuts directory and statement timeout (see `audit::AuditConfig`).
    #[serde(default)]
    pub audit: crate::audit::AuditConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            database_url: None,
            data_dir: default_data_dir(),
            admin_key: None,
            log_format: LogFormat::Text,
            no_scheduler: false,
            definitions_dir: PathBuf::from("sql"),
            pool_size: 16,
            body_limit_bytes: 1024 * 1024,
            shutdown_timeout_secs: 10,
            demo: None,
            sources: Vec::new(),
            refresh: crate::refresh::RefreshConfig::default(),
            monitor: crate::monitor::MonitorConfig::default(),
            jobs: Default::default(),
            ops: Default::default(),
            schedule: Default::default(),
            segments: Default::default(),
            audit: Default::default(),
        }
    }
}

fn default_data_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/heartbeat");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("heartbeat");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/share/heartbeat")
}

impl Config {
    /// Reads the TOML file at `path` (all fields optional) over the defaults.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("config", format!("cannot read {}: {e}", path.display()))
        })?;
        Self::from_toml(&text)
    }

    /// Parses TOML text over the defaults, naming the offending key on error.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            // The span covers the bad value or key; the key is what precedes `=` on
            // that line.
            let field = e
                .span()
                .map(|span| {
                    let start = text[..span.start].rfind('\n').map_or(0, |i| i + 1);
                    let end = text[span.start..]
                        .find('\n')
                        .map_or(text.len(), |i| span.start + i);
                    text[start..end]
                        .split('=')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_string()
                })
                .filter(|s| !s.is_empty() && !s.starts_with('['))
                .unwrap_or_else(|| "config".to_string());
            ConfigError::new(field, e.message().to_string())
        })
    }

    /// Checks cross-field rules that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.admin_key.is_none() && !self.bind.ip().is_loopback() {
            return Err(ConfigError::new(
                "bind",
                format!(
                    "{} is not a loopback address; set an admin key (HEARTBEAT_ADMIN_KEY) to serve beyond this machine",
                    self.bind
                ),
            ));
        }
        if let Some(key) = &self.admin_key {
            if key.len() < 16 {
                return Err(ConfigError::new(
                    "admin_key",
                    "must be at least 16 characters long",
                ));
            }
        }
        if let Some(url) = &self.database_url {
            url.parse::<tokio_postgres::Config>().map_err(|e| {
                ConfigError::new(
                    "database_url",
                    format!("not a PostgreSQL connection string: {e}"),
                )
            })?;
        }
        if self.pool_size == 0 {
            return Err(ConfigError::new("pool_size", "must be at least 1"));
        }
        self.jobs.validate()?;
        self.monitor.validate()?;
        self.ops.validate()?;
        self.schedule.validate()?;
        if self.body_limit_bytes < 1024 {
            return Err(ConfigError::new(
                "body_limit_bytes",
                "must be at least 1024",
            ));
        }
        crate::refresh::sources::validate(&self.sources)?;
        self.refresh.validate()?;
        self.segments.validate()?;
        self.audit.validate()?;
        Ok(())
    }

    /// Whether demo definitions and data are loaded: explicit setting, else only in
    /// the embedded default.
    pub fn demo_enabled(&self) -> bool {
        self.demo.unwrap_or(self.database_url.is_none())
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:8000");
        assert!(c.validate().is_ok());
    }

    #[test]
    fn an_unknown_key_is_named() {
        let err = Config::from_toml("bnd = \"x\"").unwrap_err();
        assert!(err.to_string().contains("bnd"), "{err}");
    }

    #[test]
    fn a_public_bind_without_a_key_is_refused() {
        let c = Config::from_toml("bind = \"0.0.0.0:8000\"").unwrap();
        let err = c.validate().unwrap_err();
        assert_eq!(err.field, "bind");
    }

    #[test]
    fn a_ping_history_without_room_is_refused() {
        let c = Config::from_toml("[monitor]\npings_kept = 0").unwrap();
        assert_eq!(c.validate().unwrap_err().field, "monitor.pings_kept");
        let c = Config::from_toml("[monitor]\npings_kept = 1").unwrap();
        assert!(c.validate().is_ok());
    }

    #[test]
    fn a_bad_bind_names_the_field() {
        let err = Config::from_toml("bind = \"nope\"").unwrap_err();
        assert!(err.to_string().starts_with("bind"), "{err}");
    }
}
