//! Metric definition files: `sql/metrics/<metric_id>.sql`.
//!
//! A file is a header of `-- key: value` comment lines followed by one SELECT that
//! returns `(bucket timestamptz, value double precision)` for the bucket range
//! `[$1, $2)` (both `timestamptz`). Compute runs the query once per contiguous run
//! of buckets it needs, so a bucket's value must depend only on events that
//! occurred inside that bucket.
//!
//! ```sql
//! -- title: Orders per hour
//! -- kind: counter
//! -- grain: hour
//! -- description: Completed orders, all clients.
//! SELECT b.bucket, count(e.*)::float8 AS value
//! FROM generate_series($1, $2 - interval '1 hour', interval '1 hour') AS b(bucket)
//! LEFT JOIN heartbeat.event e
//!   ON e.name = 'order' AND e.occurred_at >= b.bucket AND e.occurred_at < b.bucket + interval '1 hour'
//! GROUP BY b.bucket
//! ```
//!
//! Parsing happens here, once: the rest of the crate only ever sees a
//! [`MetricDefinition`] whose id, kind and grain are valid. A bad file becomes a
//! [`DefinitionError`] naming the file and the line.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// A metric id: the file stem, `^[a-z0-9_]{1,64}$`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct MetricId(String);

impl MetricId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(format!(
                "'{s}' is not a metric id (1 to 64 of a-z, 0-9 and _)"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MetricId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a metric measures; `rolling_stat` metrics get μ/σ benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKind {
    Counter,
    Gauge,
    Ratio,
    RollingStat,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Ratio => "ratio",
            MetricKind::RollingStat => "rolling_stat",
        }
    }
}

impl FromStr for MetricKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "counter" => Ok(Self::Counter),
            "gauge" => Ok(Self::Gauge),
            "ratio" => Ok(Self::Ratio),
            "rolling_stat" => Ok(Self::RollingStat),
            other => Err(format!(
                "kind '{other}' is not one of counter, gauge, ratio, rolling_stat"
            )),
        }
    }
}

/// The width of a metric's buckets (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Grain {
    Hour,
    Day,
}

impl Grain {
    pub fn as_str(self) -> &'static str {
        match self {
            Grain::Hour => "hour",
            Grain::Day => "day",
        }
    }

    pub fn duration(self) -> chrono::Duration {
        match self {
            Grain::Hour => chrono::Duration::hours(1),
            Grain::Day => chrono::Duration::days(1),
        }
    }

    /// The start of the bucket holding `t`.
    pub fn truncate(self, t: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        use chrono::{DurationRound, TimeDelta};
        let step = match self {
            Grain::Hour => TimeDelta::hours(1),
            Grain::Day => TimeDelta::days(1),
        };
        t.duration_trunc(step).unwrap_or(t)
    }
}

impl FromStr for Grain {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hour" => Ok(Self::Hour),
            "day" => Ok(Self::Day),
            other => Err(format!("grain '{other}' is not one of hour, day")),
        }
    }
}

/// A parsed, valid definition file.
#[derive(Debug, Clone)]
pub struct MetricDefinition {
    pub id: MetricId,
    pub title: String,
    pub kind: MetricKind,
    pub grain: Grain,
    pub description: String,
    /// The query, trailing semicolon removed.
    pub query: String,
    /// Line of the file where the query starts (1-based), to map SQL error
    /// positions back to file lines.
    pub query_line: usize,
    /// sha256 of the whole file: a changed definition recomputes its history.
    pub hash: String,
    pub path: PathBuf,
}

impl MetricDefinition {
    /// The file line holding character `position` (1-based, as PostgreSQL reports
    /// it) of the query.
    pub fn line_of(&self, position: usize) -> usize {
        let before: String = self
            .query
            .chars()
            .take(position.saturating_sub(1))
            .collect();
        self.query_line + before.matches('\n').count()
    }
}

/// A definition file that cannot be used, by file name and line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefinitionError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for DefinitionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// The metrics directory under the definitions directory.
pub fn metrics_dir(definitions_dir: &Path) -> PathBuf {
    definitions_dir.join("metrics")
}

/// Every `*.sql` file in the metrics directory, parsed; bad files are returned
/// separately so the good ones still compute. A missing directory is no metrics.
pub fn load_dir(dir: &Path) -> (Vec<MetricDefinition>, Vec<DefinitionError>) {
    let mut defs = Vec::new();
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (defs, errors);
    };
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    paths.sort();
    for path in paths {
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match std::fs::read_to_string(&path) {
            Ok(text) => match parse(&path, &text) {
                Ok(def) => defs.push(def),
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(DefinitionError {
                file,
                line: 0,
                message: format!("cannot read: {e}"),
            }),
        }
    }
    (defs, errors)
}

/// Parses one file's text; `path`'s stem is the metric id.
pub fn parse(path: &Path, text: &str) -> Result<MetricDefinition, DefinitionError> {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let err = |line: usize, message: String| DefinitionError {
        file: file.clone(),
        line,
        message,
    };
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let id = MetricId::parse(&stem).map_err(|m| err(1, m))?;

    let (mut title, mut kind, mut grain, mut description) = (None, None, None, String::new());
    let mut query_line = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        let Some(comment) = trimmed.strip_prefix("--") else {
            query_line = Some(n);
            break;
        };
        let Some((key, value)) = comment.split_once(':') else {
            continue; // a plain comment
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "title" if value.is_empty() => return Err(err(n, "title is empty".into())),
            "title" => title = Some((n, value.to_string())),
            "kind" => kind = Some(value.parse::<MetricKind>().map_err(|m| err(n, m))?),
            "grain" => grain = Some(value.parse::<Grain>().map_err(|m| err(n, m))?),
            "description" => description = value.to_string(),
            _ if key.contains(' ') => {} // prose in a comment, not a header key
            other => {
                return Err(err(
                    n,
                    format!(
                        "unknown header key '{other}' (expected title, kind, grain, description)"
                    ),
                ))
            }
        }
    }
    let header_end = query_line.unwrap_or(text.lines().count().max(1));
    let title = title.ok_or_else(|| err(1, "header has no '-- title:' line".into()))?;
    let kind = kind.ok_or_else(|| err(1, "header has no '-- kind:' line".into()))?;
    let grain = grain.ok_or_else(|| err(1, "header has no '-- grain:' line".into()))?;
    let query_line =
        query_line.ok_or_else(|| err(header_end, "no query after the header".into()))?;
    let query: String = text
        .lines()
        .skip(query_line - 1)
        .collect::<Vec<_>>()
        .join("\n");
    let query = query
        .trim_end()
        .trim_end_matches(';')
        .trim_end()
        .to_string();
    Ok(MetricDefinition {
        id,
        title: title.1,
        kind,
        grain,
        description,
        query,
        query_line,
        hash: hex::encode(Sha256::digest(text.as_bytes())),
        path: path.to_path_buf(),
    })
}

/// The metric ids deployed, known without reading the directory per request: the
/// stems of `<definitions_dir>/metrics/*.sql` that are metric ids (a file that does
/// not parse still names a metric, which its job then reports).
///
/// Loaded at start and replaced whenever a recompute loads the definitions. An id
/// it does not hold triggers one re-scan before it is called unknown, so a metric
/// file deployed since the last load is accepted at once. Cheap to clone: clones
/// share the set.
#[derive(Clone)]
pub struct MetricCatalog {
    dir: PathBuf,
    /// Read on every recompute request, written on a load: a read-mostly lock.
    ids: Arc<RwLock<BTreeSet<String>>>,
}

impl MetricCatalog {
    /// Scans `<definitions_dir>/metrics` once.
    pub fn load(definitions_dir: &Path) -> Self {
        let catalog = Self {
            dir: metrics_dir(definitions_dir),
            ids: Arc::default(),
        };
        catalog.rescan();
        catalog
    }

    /// Reads the directory again.
    pub fn rescan(&self) {
        let ids = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(".sql")?;
                MetricId::parse(stem).ok().map(|id| id.0)
            })
            .collect();
        self.replace(ids);
    }

    /// Every deployed metric id (after a re-scan, so a file added since the last
    /// load counts).
    pub fn ids(&self) -> BTreeSet<String> {
        self.rescan();
        self.ids.read().unwrap().clone()
    }

    /// Takes the ids a load of the directory just found.
    pub fn replace(&self, ids: BTreeSet<String>) {
        *self.ids.write().unwrap() = ids;
    }

    /// The ids of `wanted` that name no deployed metric, in order, after one
    /// re-scan if the cached set lacks any.
    pub fn unknown<'a>(&self, wanted: &'a BTreeSet<String>) -> Vec<&'a str> {
        let missing = |ids: &BTreeSet<String>| -> Vec<&'a str> {
            wanted
                .iter()
                .filter(|id| !ids.contains(*id))
                .map(String::as_str)
                .collect()
        };
        if missing(&self.ids.read().unwrap()).is_empty() {
            return Vec::new();
        }
        self.rescan();
        let ids = self.ids.read().unwrap();
        missing(&ids)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn metric_ids_are_lowercase_words() {
        assert!(MetricId::parse("orders_per_hour").is_ok());
        assert!(MetricId::parse("../etc").is_err());
        assert!(MetricId::parse("Orders").is_err());
        assert!(MetricId::parse("").is_err());
    }

    #[test]
    fn the_catalog_rescans_once_for_an_id_it_does_not_hold() {
        let defs = tempfile::tempdir().unwrap();
        std::fs::create_dir(defs.path().join("metrics")).unwrap();
        std::fs::write(defs.path().join("metrics/a.sql"), "-- a").unwrap();
        let catalog = MetricCatalog::load(defs.path());
        let wanted: BTreeSet<String> = ["a", "b"].map(String::from).into();
        assert_eq!(catalog.unknown(&wanted), ["b"]);
        std::fs::write(defs.path().join("metrics/b.sql"), "-- b").unwrap();
        assert!(catalog.unknown(&wanted).is_empty());
    }

    use super::*;

    const GOOD: &str = "-- title: Orders\n-- kind: counter\n-- grain: hour\n\nSELECT $1::timestamptz AS bucket, 1.0 AS value;\n";

    #[test]
    fn a_good_file_parses_with_its_stem_as_id() {
        let def = parse(Path::new("sql/metrics/orders.sql"), GOOD).unwrap();
        assert_eq!(def.id.as_str(), "orders");
        assert_eq!(def.kind, MetricKind::Counter);
        assert_eq!(def.grain, Grain::Hour);
        assert_eq!(def.query_line, 5);
        assert!(!def.query.ends_with(';'));
    }

    #[test]
    fn a_bad_kind_is_reported_with_its_line() {
        let text = GOOD.replace("counter", "histogram");
        let e = parse(Path::new("orders.sql"), &text).unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("orders.sql", 2));
        assert!(e.message.contains("histogram"), "{e}");
    }

    #[test]
    fn a_missing_header_key_is_reported() {
        let text = GOOD.replace("-- grain: hour\n", "");
        let e = parse(Path::new("orders.sql"), &text).unwrap_err();
        assert!(e.message.contains("grain"), "{e}");
    }

    #[test]
    fn an_id_outside_the_naming_rule_is_rejected_by_name() {
        let e = parse(Path::new("Orders-Per-Hour.sql"), GOOD).unwrap_err();
        assert!(e.message.contains("Orders-Per-Hour"), "{e}");
        assert!(MetricId::parse(&"a".repeat(65)).is_err());
        assert!(MetricId::parse("ok_1").is_ok());
    }

    #[test]
    fn sql_error_positions_map_to_file_lines() {
        let text = "-- title: T\n-- kind: gauge\n-- grain: day\nSELECT 1\nFROM nowhere\n";
        let def = parse(Path::new("t.sql"), text).unwrap();
        let position = def.query.find("nowhere").unwrap() + 1;
        assert_eq!(def.line_of(position), 5);
    }
}
