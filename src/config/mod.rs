//! Daemon configuration: one struct, three layers.
//!
//! Flags override environment variables (clap reads both, see `main.rs`), which
//! override the optional TOML file (`--config` / `HEARTBEAT_CONFIG`), which overrides
//! the defaults declared here. Every field is documented where it is declared;
//! `docs/configuration.md` is the reference built from those comments, and a test
//! here fails when a key has no row there (or a row names no key).
//!
//! Each area declares its own section beside its code and names only [`error`] of
//! this module, so the sections are gathered here without an import cycle. Where an
//! area's `mod.rs` reaches the daemon's state (which holds this config), its section
//! lives in a file of its own (`refresh/config.rs`, `ops/config.rs`,
//! `jobs/config.rs`, `schedule/table.rs`) and this module imports that file.
//!
//! Validation happens once, in [`Config::validate`], and reports the first bad field
//! as a [`ConfigError`] naming it; the binary prints that line and exits with status 2.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub mod error;

pub use error::ConfigError;

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
    /// Directory holding `metrics/` and `cuts/` definition files
    /// (`HEARTBEAT_DEFINITIONS_DIR`). A relative path in the file is read against the
    /// file's directory; on the command line or in the environment, against the
    /// working directory at start. Unset: the demo definitions embedded in the
    /// binary, written to `<data_dir>/demo-definitions` at start.
    pub definitions_dir: Option<PathBuf>,
    /// Maximum number of pooled PostgreSQL connections.
    pub pool_size: usize,
    /// Largest accepted request body, in bytes; larger bodies get 413.
    pub body_limit_bytes: usize,
    /// How long a graceful shutdown may take before the daemon exits anyway, seconds.
    pub shutdown_timeout_secs: u64,
    /// Add the demo event source and fill the cockpit at start (on by default in
    /// embedded mode). The demo definitions are what an unset `definitions_dir` reads.
    pub demo: Option<bool>,
    /// `[[sources]]`: where events are ingested from (see `refresh::sources`).
    pub sources: Vec<crate::refresh::sources::SourceConfig>,
    /// `[refresh]`: compute, benchmark and cockpit settings (see `refresh`).
    pub refresh: crate::refresh::config::RefreshConfig,
    /// The dead man's switch (`[monitor]`, see `monitor::MonitorConfig`).
    #[serde(default)]
    pub monitor: crate::monitor::MonitorConfig,
    /// `[notify]`: reminder bounds and the SMTP server of email channels.
    #[serde(default)]
    pub notify: crate::notify::config::NotifyConfig,
    /// `[hc]`: healthchecks.io-compatible ping URLs (see `hc::HcConfig`).
    #[serde(default)]
    pub hc: crate::hc::HcConfig,
    /// `[jobs]`: max runtimes, retention, node id.
    pub jobs: crate::jobs::config::JobsConfig,
    /// `[ops]`: self-ping URL and interval.
    #[serde(default)]
    pub ops: crate::ops::config::OpsConfig,
    /// `[schedule]`: the cron table's time zone and entries (seeds merged in).
    #[serde(default)]
    pub schedule: crate::schedule::table::ScheduleConfig,
    /// `[segments]`: the client tier snapshot (see `segments::SegmentsConfig`).
    #[serde(default)]
    pub segments: crate::segments::SegmentsConfig,
    /// `[audit]`: audit cuts directory and statement timeout (see `audit::AuditConfig`).
    #[serde(default)]
    pub audit: crate::audit::AuditConfig,
    /// `[retention]`: how long rows that grow with time are kept (see
    /// `retention::RetentionConfig`).
    #[serde(default)]
    pub retention: crate::retention::config::RetentionConfig,
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
            definitions_dir: None,
            pool_size: 16,
            body_limit_bytes: 1024 * 1024,
            shutdown_timeout_secs: 10,
            demo: None,
            sources: Vec::new(),
            refresh: crate::refresh::config::RefreshConfig::default(),
            monitor: crate::monitor::MonitorConfig::default(),
            notify: Default::default(),
            hc: Default::default(),
            jobs: Default::default(),
            ops: Default::default(),
            schedule: Default::default(),
            segments: Default::default(),
            audit: Default::default(),
            retention: Default::default(),
        }
    }
}

/// The dotted name of the entry at byte `at` of a TOML text, and the value
/// written there: the key on that line under the nearest table header above it
/// (`[[array]]` headers counted, so the third `[[sources]]` is `sources[2]`). A
/// span on a header line (a table missing a required key) names the table.
fn locate(text: &str, at: usize) -> (Option<String>, Option<String>) {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
    let line = text[line_start..line_end].trim();
    let mut arrays: std::collections::HashMap<String, usize> = Default::default();
    let mut section: Option<String> = None;
    for header in text[..line_end].lines().map(str::trim) {
        if let Some(name) = header.strip_prefix("[[").and_then(|h| h.split("]]").next()) {
            let name = name.trim().to_string();
            let n = arrays.entry(name.clone()).or_insert(0);
            section = Some(format!("{name}[{n}]"));
            *n += 1;
        } else if let Some(name) = header.strip_prefix('[').and_then(|h| h.split(']').next()) {
            section = Some(name.trim().to_string());
        }
    }
    if line.starts_with('[') {
        return (section, None);
    }
    let Some((key, value)) = line.split_once('=') else {
        return (section, None);
    };
    let key = key.trim().trim_matches('"');
    let value = value.trim();
    let field = match (&section, key.is_empty()) {
        (_, true) => section.clone(),
        (Some(s), false) => Some(format!("{s}.{key}")),
        (None, false) => Some(key.to_string()),
    };
    (field, (!value.is_empty()).then(|| value.to_string()))
}

/// `sources[i]` (with the entry's `name` when it has one) for the first
/// `[[sources]]` entry that does not parse on its own.
fn failing_source(text: &str) -> Option<String> {
    let doc: toml::Table = toml::from_str(text).ok()?;
    let sources = doc.get("sources")?.as_array()?;
    sources.iter().enumerate().find_map(|(i, entry)| {
        let parsed = crate::refresh::sources::SourceConfig::deserialize(entry.clone());
        parsed
            .is_err()
            .then(|| match entry.get("name").and_then(|n| n.as_str()) {
                Some(name) => format!("sources[{i}] (name = \"{name}\")"),
                None => format!("sources[{i}]"),
            })
    })
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
    /// Relative directories in it are read against the file's own directory, so
    /// the daemon finds the same files whatever its working directory.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new("config", format!("cannot read {}: {e}", path.display()))
        })?;
        let mut config = Self::from_toml(&text)?;
        let base = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let anchor = |dir: &mut PathBuf| {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        };
        if let Some(dir) = &mut config.definitions_dir {
            anchor(dir);
        }
        if let Some(dir) = &mut config.audit.cuts_dir {
            anchor(dir);
        }
        Ok(config)
    }

    /// Parses TOML text over the defaults; an error names the offending entry in
    /// full (`schedule.entries.nightly.cron`, `sources[1]`, `bind`) and quotes the
    /// bad value, so a user finds the line without counting.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let message = e.message().to_string();
            let Some(span) = e.span() else {
                return ConfigError::new("config", message);
            };
            let (mut field, value) = locate(text, span.start);
            if field.as_deref().is_some_and(|f| f.starts_with("sources[")) {
                // Sources are a tagged enum, so serde reports the whole array's
                // span: find the entry by parsing each one alone.
                field = failing_source(text).or(field);
            }
            let problem = match value {
                Some(v) if !message.contains(&v) => format!("{message} (value: {v})"),
                _ => message,
            };
            ConfigError::new(field.unwrap_or_else(|| "config".into()), problem)
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
        self.notify.validate()?;
        self.hc.validate()?;
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
        self.retention.validate()?;
        Ok(())
    }

    /// Whether demo definitions and data are loaded: explicit setting, else only in
    /// the embedded default.
    pub fn demo_enabled(&self) -> bool {
        self.demo.unwrap_or(self.database_url.is_none())
    }

    /// The directory metric and cut files are read from: the configured one, else
    /// where the demo definitions embedded in the binary are written at start.
    pub fn definitions_dir(&self) -> PathBuf {
        self.definitions_dir
            .clone()
            .unwrap_or_else(|| crate::bundled_definitions::demo_dir(&self.data_dir))
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

    /// One step from a table to a value inside it, as [`keys_of`] walks the struct.
    #[derive(Clone, Debug)]
    enum Step {
        /// `key = { ... }`: a nested table.
        Table(String),
        /// `key = [{ ... }]`: an array of tables.
        Array(String),
        /// `key = { <name> = { ... } }`: tables by a name the user chooses.
        Map(String),
        /// `tag = "variant"` inside the table: one variant of a tagged enum.
        Variant(String, String),
    }

    /// The TOML text putting the `pairs` (`k = v, ...`) at `path`.
    fn toml_at(path: &[Step], pairs: &str) -> String {
        let mut body = pairs.to_string();
        for step in path.iter().rev() {
            body = match step {
                Step::Table(k) => format!("{k} = {{ {body} }}"),
                Step::Array(k) => format!("{k} = [{{ {body} }}]"),
                Step::Map(k) => format!("{k} = {{ name = {{ {body} }} }}"),
                Step::Variant(tag, v) => format!("{tag} = \"{v}\", {body}"),
            };
        }
        body
    }

    /// How a key at `path` is written in docs/configuration.md: dotted, `[]` for
    /// an array element, `<name>` for a map key, `[variant]` for a tagged variant.
    fn dotted(path: &[Step], key: &str) -> String {
        let mut out = String::new();
        for step in path {
            match step {
                Step::Table(k) => out += &format!(".{k}"),
                Step::Array(k) => out += &format!(".{k}[]"),
                Step::Map(k) => out += &format!(".{k}.<name>"),
                Step::Variant(_, v) => {
                    if out.ends_with("[]") {
                        out.truncate(out.len() - 2);
                    }
                    out += &format!("[{v}]");
                }
            }
        }
        out += &format!(".{key}");
        out.trim_start_matches('.').to_string()
    }

    /// The parse error of `text`, which must not parse.
    fn refusal(text: &str) -> String {
        match toml::from_str::<Config>(text) {
            Ok(_) => panic!("{text} parsed"),
            Err(e) => e.message().to_string(),
        }
    }

    /// The names serde lists after `expected` in `message`.
    fn expected_names(message: &str) -> Vec<String> {
        let Some((_, list)) = message.split_once("expected") else {
            return Vec::new();
        };
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    /// Every key the config structs accept, found by asking serde: an unknown key
    /// in a table is refused with the list of known ones (every section denies
    /// unknown fields), and probing each key with a table tells a nested table,
    /// a map of tables, an array of tables or a tagged enum from a plain value.
    /// So the list follows the structs without any of them having to serialize.
    fn keys_of(path: &[Step], out: &mut Vec<String>) {
        let message = refusal(&toml_at(path, "zzz = 1"));
        assert!(
            message.contains("unknown field `zzz`"),
            "{path:?}: {message}"
        );
        for field in expected_names(&message) {
            let mut here = path.to_vec();
            let probe = refusal(&toml_at(path, &format!("{field} = {{ zzz = 1 }}")));
            if probe.contains("unknown field `zzz`") {
                here.push(Step::Table(field));
                keys_of(&here, out);
            } else if let Some(tag) = missing_field(&probe) {
                here.push(Step::Table(field));
                tagged(&here, &tag, out);
            } else if probe.contains("invalid type: integer `1`, expected struct") {
                here.push(Step::Map(field));
                keys_of(&here, out);
            } else if probe.contains("expected a sequence") {
                let element = refusal(&toml_at(path, &format!("{field} = [{{ zzz = 1 }}]")));
                here.push(Step::Array(field));
                match missing_field(&element) {
                    Some(tag) => tagged(&here, &tag, out),
                    None => keys_of(&here, out),
                }
            } else {
                out.push(dotted(path, &field));
            }
        }
    }

    fn missing_field(message: &str) -> Option<String> {
        let rest = message.strip_prefix("missing field `")?;
        Some(rest.split('`').next()?.to_string())
    }

    /// The keys of a tagged enum at `path`: its tag, then each variant's fields.
    fn tagged(path: &[Step], tag: &str, out: &mut Vec<String>) {
        out.push(dotted(path, tag));
        let message = refusal(&toml_at(path, &format!("{tag} = \"zzz\"")));
        let variants = expected_names(&message);
        assert!(!variants.is_empty(), "{path:?}: {message}");
        for variant in variants {
            let mut here = path.to_vec();
            here.push(Step::Variant(tag.to_string(), variant));
            keys_of(&here, out);
        }
    }

    /// The keys docs/configuration.md documents: the first cell of each table row,
    /// when it is one backticked key.
    fn documented_keys() -> Vec<String> {
        let doc = include_str!("../../docs/configuration.md");
        doc.lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split_once('`'))
            .filter(|(_, after)| after.trim_start().starts_with('|'))
            .map(|(key, _)| key.to_string())
            .collect()
    }

    #[test]
    fn every_config_key_is_documented_and_every_documented_key_exists() {
        let mut keys = Vec::new();
        keys_of(&[], &mut keys);
        assert!(keys.len() > 50, "too few keys found: {keys:?}");
        let documented = documented_keys();
        let undocumented: Vec<_> = keys.iter().filter(|k| !documented.contains(k)).collect();
        assert!(
            undocumented.is_empty(),
            "keys without a row in docs/configuration.md: {undocumented:?}"
        );
        let unknown: Vec<_> = documented.iter().filter(|k| !keys.contains(k)).collect();
        assert!(
            unknown.is_empty(),
            "docs/configuration.md documents keys the config does not have: {unknown:?}"
        );
    }

    /// The TOML keys the README's table of common settings names (its third
    /// column; `[[sources]]` is the array itself).
    fn readme_keys() -> Vec<String> {
        let readme = include_str!("../../README.md");
        readme
            .lines()
            .filter(|l| l.starts_with("| ") && l.matches('|').count() == 6)
            .filter_map(|l| l.split('|').nth(3))
            .flat_map(|cell| cell.split('`').skip(1).step_by(2).map(str::to_string))
            .filter(|k| k != "TOML key")
            .collect()
    }

    #[test]
    fn every_key_the_readme_names_exists() {
        let mut keys = Vec::new();
        keys_of(&[], &mut keys);
        let named = readme_keys();
        assert!(named.len() >= 12, "the README's table: {named:?}");
        let unknown: Vec<_> = named
            .iter()
            .filter(|k| {
                let array = k.trim_start_matches("[[").trim_end_matches("]]");
                !keys.contains(k)
                    && !keys
                        .iter()
                        .any(|key| key.starts_with(&format!("{array}[]")))
            })
            .collect();
        assert!(
            unknown.is_empty(),
            "README.md names keys the config does not have: {unknown:?}"
        );
    }

    #[test]
    fn relative_directories_in_a_file_are_read_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("heartbeat.toml");
        std::fs::write(
            &path,
            "definitions_dir = \"defs\"\n[audit]\ncuts_dir = \"../cuts\"\n",
        )
        .unwrap();
        let c = Config::from_file(&path).unwrap();
        assert_eq!(c.definitions_dir(), dir.path().join("defs"));
        assert_eq!(c.audit.cuts_dir, Some(dir.path().join("../cuts")));
        let absolute = Config::from_toml("definitions_dir = \"/srv/defs\"").unwrap();
        assert_eq!(absolute.definitions_dir(), Path::new("/srv/defs"));
    }

    #[test]
    fn without_a_definitions_dir_the_demo_files_live_in_the_data_dir() {
        let c = Config::from_toml("data_dir = \"/var/lib/hb\"").unwrap();
        assert_eq!(
            c.definitions_dir(),
            Path::new("/var/lib/hb/demo-definitions")
        );
    }

    #[test]
    fn a_bad_bind_names_the_field() {
        let err = Config::from_toml("bind = \"nope\"").unwrap_err();
        assert!(err.to_string().starts_with("bind"), "{err}");
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn parse_errors_name_the_section_the_entry_and_the_value() {
        let cases = [
            (
                "[[sources]]\nname = \"a\"\nkind = \"demo\"\n[[sources]]\nkind = \"demo\"\n",
                "sources[1]",
                "name",
            ),
            (
                "[schedule.entries.nightly]\njob = \"audit\"\ncron = \"0 3 * * funday\"\n",
                "schedule.entries.nightly.cron",
                "funday",
            ),
            (
                "[[sources]]\nname = \"a\"\nkind = \"demo\"\n[[sources]]\nname = \"shop\"\nkind = \"http_json\"\n",
                "sources[1] (name = \"shop\")",
                "url",
            ),
            ("[monitor]\npings_kept = \"many\"\n", "monitor.pings_kept", "many"),
            ("bind = \"localhost\"\n", "bind", "localhost"),
        ];
        for (text, field, value) in cases {
            let err = Config::from_toml(text).unwrap_err();
            assert_eq!(err.field, field, "{text}: {err}");
            assert!(err.problem.contains(value), "{text}: {err}");
        }
    }
}
