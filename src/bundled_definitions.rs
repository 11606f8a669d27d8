//! The definition files the daemon ships with, embedded in the binary: the demo's
//! metrics and audit cuts, and the commented examples `heartbeat init` writes.
//!
//! Metric compute and the audit job read definition files from directories (an
//! operator edits and deploys files, not the binary). So that the embedded default
//! shows its demo wherever the binary runs — a systemd unit, a container, a copy
//! in an empty directory — the demo files are compiled in and, when no
//! `definitions_dir` is configured, written under the daemon's `data_dir` at start
//! ([`write_demo`]); they are never looked for in the working directory.
//!
//! This file imports nothing of the crate, so the configuration can name
//! [`demo_dir`] without an import cycle.

use std::path::{Path, PathBuf};

/// The demo's metric files (`sql/metrics` in the source tree), by file name.
pub const DEMO_METRICS: &[(&str, &str)] = &[
    (
        "active_clients.sql",
        include_str!("../sql/metrics/active_clients.sql"),
    ),
    (
        "conversion_rate.sql",
        include_str!("../sql/metrics/conversion_rate.sql"),
    ),
    (
        "daily_signups.sql",
        include_str!("../sql/metrics/daily_signups.sql"),
    ),
    ("orders.sql", include_str!("../sql/metrics/orders.sql")),
    (
        "page_views.sql",
        include_str!("../sql/metrics/page_views.sql"),
    ),
    (
        "payment_failures.sql",
        include_str!("../sql/metrics/payment_failures.sql"),
    ),
    ("revenue.sql", include_str!("../sql/metrics/revenue.sql")),
];

/// The demo's audit-cut files (`sql/cuts` in the source tree), by file name.
pub const DEMO_CUTS: &[(&str, &str)] = &[
    ("event_mix.sql", include_str!("../sql/cuts/event_mix.sql")),
    (
        "payment_failures.sql",
        include_str!("../sql/cuts/payment_failures.sql"),
    ),
    (
        "top_clients.sql",
        include_str!("../sql/cuts/top_clients.sql"),
    ),
];

/// The example metric `heartbeat init` writes: every header key, commented.
pub const EXAMPLE_METRIC: &str = r#"-- title: Example: events per hour
-- kind: counter
-- grain: hour
-- description: How many events arrived each hour. Copy this file to start a metric.
--
-- This file is a metric definition. Its name without `.sql` is the metric id
-- (1 to 64 of a-z, 0-9 and _). The header is the leading run of comment lines;
-- its keys are:
--   title        what the dashboard shows (required)
--   kind         counter, gauge, ratio or rolling_stat (rolling_stat gets a
--                benchmark band) (required)
--   grain        hour or day: the width of one bucket, in UTC (required)
--   description  one line shown under the title (optional)
--
-- Then one SELECT returning (bucket timestamptz, value double precision), one
-- row per bucket in [$1, $2). A bucket's value must depend only on the events
-- inside that bucket: compute re-runs only the buckets that changed.
SELECT b.bucket, count(e.*)::float8 AS value
FROM generate_series($1, $2 - interval '1 hour', interval '1 hour') AS b(bucket)
LEFT JOIN heartbeat.event e
  ON e.occurred_at >= b.bucket AND e.occurred_at < b.bucket + interval '1 hour'
GROUP BY b.bucket
"#;

/// The example audit cut `heartbeat init` writes. A cut's header accepts only
/// `key: value` lines, so the explanations are SQL comments inside the query.
pub const EXAMPLE_CUT: &str = r#"-- title: Example: busiest clients
-- description: The ten clients with the most events in the window.
-- windows: 24h, 7d
SELECT client_id, count(*) AS events
-- This file is an audit cut. Its name without `.sql` is the cut id. The header
-- (title and windows required, description optional) is followed by one query;
-- the job runs it once per window, with $1 the window's start and $2 its end
-- (both timestamptz), read-only and under audit.statement_timeout_secs, and
-- keeps the rows as a JSON snapshot. Keep the result small: audit.max_rows caps it.
FROM heartbeat.event
WHERE occurred_at >= $1 AND occurred_at < $2
GROUP BY client_id
ORDER BY events DESC, client_id
LIMIT 10
"#;

/// Where the demo definitions are written when no `definitions_dir` is configured.
pub fn demo_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("demo-definitions")
}

/// Writes the demo's files to `dir` (`metrics/` and `cuts/`), replacing files
/// of the same names so they always match this binary, and removing `.sql`
/// files the binary no longer ships. Returns the counts written.
pub fn write_demo(dir: &Path) -> std::io::Result<(usize, usize)> {
    for (sub, files) in [("metrics", DEMO_METRICS), ("cuts", DEMO_CUTS)] {
        let target = dir.join(sub);
        std::fs::create_dir_all(&target)?;
        for entry in std::fs::read_dir(&target)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".sql") && !files.iter().any(|(n, _)| *n == name) {
                std::fs::remove_file(entry.path())?;
            }
        }
        for (name, text) in files {
            let path = target.join(name);
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
                std::fs::write(&path, text)?;
            }
        }
    }
    Ok((DEMO_METRICS.len(), DEMO_CUTS.len()))
}

/// The files `heartbeat init` writes under its directory, relative to it.
pub const EXAMPLE_FILES: [(&str, &str); 2] = [
    ("metrics/example_events.sql", EXAMPLE_METRIC),
    ("cuts/example_busiest_clients.sql", EXAMPLE_CUT),
];

/// Writes [`EXAMPLE_FILES`] under `dir`, never overwriting a file that exists.
/// Returns the paths written.
pub fn write_examples(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for (relative, text) in EXAMPLE_FILES {
        let path = dir.join(relative);
        if path.exists() {
            return Err(format!(
                "{} already exists; nothing was overwritten",
                path.display()
            ));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// How many `*.sql` files `dir` holds; `None` when it cannot be read.
pub fn count_sql_files(dir: &Path) -> Option<usize> {
    let entries = std::fs::read_dir(dir).ok()?;
    Some(
        entries
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "sql"))
            .count(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &str) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_demo_file_in_the_source_tree_is_embedded() {
        let embedded = |files: &[(&str, &str)]| -> Vec<String> {
            files.iter().map(|(n, _)| n.to_string()).collect()
        };
        assert_eq!(embedded(DEMO_METRICS), names("sql/metrics"));
        assert_eq!(embedded(DEMO_CUTS), names("sql/cuts"));
    }

    #[test]
    fn the_demo_files_parse() {
        for (name, text) in DEMO_METRICS {
            crate::refresh::definitions::parse(Path::new(name), text)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        for (name, text) in DEMO_CUTS {
            crate::audit::CutFile::parse(name.trim_end_matches(".sql"), text)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn the_examples_parse_and_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_examples(dir.path()).unwrap();
        assert_eq!(written.len(), 2);
        let metric = std::fs::read_to_string(&written[0]).unwrap();
        let def = crate::refresh::definitions::parse(&written[0], &metric).unwrap();
        assert_eq!(def.id.as_str(), "example_events");
        let cut = std::fs::read_to_string(&written[1]).unwrap();
        crate::audit::CutFile::parse("example_busiest_clients", &cut).unwrap();
        let again = write_examples(dir.path()).unwrap_err();
        assert!(again.contains("already exists"), "{again}");
    }

    #[test]
    fn writing_the_demo_replaces_stale_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("metrics")).unwrap();
        std::fs::write(dir.path().join("metrics/gone.sql"), "-- old").unwrap();
        std::fs::write(dir.path().join("metrics/orders.sql"), "-- edited").unwrap();
        assert_eq!(write_demo(dir.path()).unwrap(), (7, 3));
        assert!(!dir.path().join("metrics/gone.sql").exists());
        let orders = std::fs::read_to_string(dir.path().join("metrics/orders.sql")).unwrap();
        assert!(orders.starts_with("-- title: Orders"), "{orders}");
        assert_eq!(count_sql_files(&dir.path().join("cuts")), Some(3));
    }
}
