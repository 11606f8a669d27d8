//! Phase `sync`: make `heartbeat.audit_cut_registry` mirror the cut files on disk.
//!
//! A readable, valid file is upserted (added or changed by content hash, else
//! unchanged). A row whose file is gone is deleted, its snapshots with it (FK
//! cascade). A file that is present but invalid is reported by name and left
//! alone: its earlier row and snapshots survive, because a typo in a deploy should
//! not erase yesterday's data, and it is not recomputed until it parses again.
//! The whole sync is one transaction, so readers never see half a sync.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Serialize;
use tokio_postgres::Client;

use super::cut_file::CutFile;

/// A cut (or one window of it) that failed, named with its error.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CutFailure {
    /// The cut id, or the file name when the name itself is not a valid id.
    pub cut_id: String,
    /// Set when one window of the cut failed in the snapshot phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    pub error: String,
}

impl std::fmt::Display for CutFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.window {
            Some(w) => write!(f, "{}/{} ({})", self.cut_id, w, self.error),
            None => write!(f, "{} ({})", self.cut_id, self.error),
        }
    }
}

/// What the cuts directory holds right now.
#[derive(Debug, Default)]
pub struct CutsOnDisk {
    /// Files that parsed, sorted by cut id.
    pub cuts: Vec<CutFile>,
    /// Files that did not, named.
    pub failed: Vec<CutFailure>,
    /// The stem of every `*.sql` file, valid or not: rows for these survive.
    pub present: BTreeSet<String>,
}

impl CutsOnDisk {
    pub fn file_count(&self) -> usize {
        self.present.len()
    }
}

/// Reads every `*.sql` file in `dir` (not in subdirectories, not dotfiles). A missing or unreadable directory is an
/// error (not an empty set), so a misconfigured path never deletes the registry.
pub fn scan(dir: &Path) -> Result<CutsOnDisk, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read the cuts directory {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = entry.path();
        // Dotfiles are editors' lock and swap files, not cuts.
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && path.extension().is_some_and(|ext| ext == "sql") && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut out = CutsOnDisk::default();
    for path in paths {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file_name = path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.present.insert(stem.clone());
        let parsed = std::fs::read_to_string(&path)
            .map_err(|e| format!("{file_name}: cannot read: {e}"))
            .and_then(|text| CutFile::parse(&stem, &text).map_err(|e| format!("{file_name}: {e}")));
        match parsed {
            Ok(cut) => out.cuts.push(cut),
            Err(error) => out.failed.push(CutFailure {
                cut_id: stem,
                window: None,
                error,
            }),
        }
    }
    Ok(out)
}

/// What a sync did, shown as the `sync` phase detail and in the job result.
#[derive(Debug, Default, Clone, Serialize)]
pub struct SyncReport {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    pub failed: Vec<CutFailure>,
}

const UPSERT_CUT: &str = "
INSERT INTO heartbeat.audit_cut_registry
    (cut_id, title, description, windows, query, content_hash)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (cut_id) DO UPDATE SET
    title = excluded.title,
    description = excluded.description,
    windows = excluded.windows,
    query = excluded.query,
    content_hash = excluded.content_hash,
    updated_at = CASE WHEN audit_cut_registry.content_hash = excluded.content_hash
                      THEN audit_cut_registry.updated_at ELSE now() END,
    synced_at = now()";

/// Snapshots of windows a changed header no longer lists.
const DELETE_DROPPED_WINDOWS: &str = "
DELETE FROM heartbeat.audit_cut_snapshot
WHERE cut_id = $1 AND NOT (window_label = ANY($2))";

const DELETE_REMOVED_CUTS: &str = "
DELETE FROM heartbeat.audit_cut_registry
WHERE NOT (cut_id = ANY($1))
RETURNING cut_id";

/// Applies `disk` to the registry in one transaction.
pub async fn sync(
    client: &mut Client,
    disk: &CutsOnDisk,
) -> Result<SyncReport, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    // The lane runs one audit job per cluster, but a lock keeps two syncs from
    // interleaving even when driven from elsewhere (a CLI one-shot).
    tx.execute(
        "LOCK TABLE heartbeat.audit_cut_registry IN SHARE ROW EXCLUSIVE MODE",
        &[],
    )
    .await?;
    let before: BTreeMap<String, String> = tx
        .query(
            "SELECT cut_id, content_hash FROM heartbeat.audit_cut_registry",
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let upsert = tx.prepare(UPSERT_CUT).await?;
    let mut report = SyncReport {
        failed: disk.failed.clone(),
        ..SyncReport::default()
    };
    for cut in &disk.cuts {
        let windows = cut.window_labels();
        tx.execute(
            &upsert,
            &[
                &cut.cut_id.as_str(),
                &cut.title,
                &cut.description,
                &windows,
                &cut.query,
                &cut.content_hash,
            ],
        )
        .await?;
        let id = cut.cut_id.to_string();
        match before.get(&id) {
            None => report.added.push(id),
            Some(hash) if *hash != cut.content_hash => {
                tx.execute(DELETE_DROPPED_WINDOWS, &[&cut.cut_id.as_str(), &windows])
                    .await?;
                report.changed.push(id);
            }
            Some(_) => report.unchanged.push(id),
        }
    }
    let present: Vec<&str> = disk.present.iter().map(String::as_str).collect();
    report.removed = tx
        .query(DELETE_REMOVED_CUTS, &[&present])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    report.removed.sort();
    tx.commit().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_parses_sql_files_names_bad_ones_and_skips_dotfiles_and_others() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("good.sql", "-- title: Good\n-- windows: 7d\nSELECT 1");
        write("bad.sql", "-- title: Bad\nSELECT 1");
        write(".#good.sql", "lock file");
        write("notes.txt", "not a cut");
        std::fs::create_dir(dir.path().join("sub.sql")).unwrap();

        let disk = scan(dir.path()).unwrap();
        assert_eq!(disk.cuts.len(), 1);
        assert_eq!(disk.cuts[0].cut_id.as_str(), "good");
        assert_eq!(
            disk.failed,
            [CutFailure {
                cut_id: "bad".into(),
                window: None,
                error: "bad.sql: header has no 'windows:' line".into(),
            }]
        );
        assert_eq!(disk.file_count(), 2);
    }

    #[test]
    fn a_missing_directory_is_an_error_not_an_empty_set() {
        let err = scan(Path::new("/nonexistent/cuts")).unwrap_err();
        assert!(err.contains("/nonexistent/cuts"), "{err}");
    }
}
