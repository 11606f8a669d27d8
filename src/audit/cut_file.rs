//! One audit-cut file, parsed: `sql/cuts/<cut_id>.sql` is a comment header
//! followed by one query.
//!
//! ```sql
//! -- title: Most active clients
//! -- description: Clients with the most events in the window.
//! -- windows: 24h, 7d, 30d
//! SELECT client_id, count(*) AS events
//! FROM heartbeat.event
//! WHERE occurred_at >= $1 AND occurred_at < $2
//! GROUP BY client_id ORDER BY events DESC LIMIT 20
//! ```
//!
//! The header is the leading run of `-- key: value` lines (blank lines and bare
//! `--` lines may separate them). `title` and `windows` are required,
//! `description` optional; any other key is an error, so a typo is reported rather
//! than ignored. The query takes the window as `$1` (start, `timestamptz`) and `$2`
//! (end, `timestamptz`, the job's start time); it may use either or both.
//!
//! Parse, don't validate: a [`CutFile`] only exists with a valid [`CutId`], a title
//! and at least one [`CutWindow`], so the rest of the audit code never checks.

use std::fmt;
use std::str::FromStr;

use chrono::Duration;
use sha2::{Digest, Sha256};

/// A cut's id: its file name without `.sql`; lowercase letters, digits, `_` and
/// `-`, starting with a letter or digit, at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CutId(String);

impl CutId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CutId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok_first = s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_rest = s
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if ok_first && ok_rest && s.len() <= 64 {
            Ok(CutId(s.to_string()))
        } else {
            Err(format!(
                "'{s}' is not a cut id: use 1-64 lowercase letters, digits, '_' or '-', starting with a letter or digit"
            ))
        }
    }
}

impl fmt::Display for CutId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A look-back window such as `12h`, `7d` or `4w`: a positive whole number of
/// hours, days or weeks, at most 10 years. Its label is canonical (no leading
/// zeros), so the label is the identity used in the API and the snapshot table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CutWindow {
    amount: u32,
    unit: WindowUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum WindowUnit {
    Hours,
    Days,
    Weeks,
}

impl WindowUnit {
    fn suffix(self) -> char {
        match self {
            WindowUnit::Hours => 'h',
            WindowUnit::Days => 'd',
            WindowUnit::Weeks => 'w',
        }
    }

    fn hours(self) -> i64 {
        match self {
            WindowUnit::Hours => 1,
            WindowUnit::Days => 24,
            WindowUnit::Weeks => 24 * 7,
        }
    }
}

/// The longest window accepted: ten years, in hours.
const MAX_WINDOW_HOURS: i64 = 10 * 366 * 24;

impl CutWindow {
    pub fn duration(self) -> Duration {
        Duration::hours(i64::from(self.amount) * self.unit.hours())
    }

    pub fn label(self) -> String {
        self.to_string()
    }
}

impl FromStr for CutWindow {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("'{s}' is not a window: write a positive number followed by h, d or w, such as 12h, 7d, 30d")
        };
        let unit = match s.chars().last() {
            Some('h') => WindowUnit::Hours,
            Some('d') => WindowUnit::Days,
            Some('w') => WindowUnit::Weeks,
            _ => return Err(bad()),
        };
        let digits = &s[..s.len() - 1];
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || digits.starts_with('0')
        {
            return Err(bad());
        }
        let amount: u32 = digits.parse().map_err(|_| bad())?;
        if i64::from(amount) * unit.hours() > MAX_WINDOW_HOURS {
            return Err(format!("'{s}' is longer than the 10-year limit"));
        }
        Ok(CutWindow { amount, unit })
    }
}

impl fmt::Display for CutWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.amount, self.unit.suffix())
    }
}

/// A parsed cut file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutFile {
    pub cut_id: CutId,
    pub title: String,
    pub description: String,
    /// In header order, without duplicates.
    pub windows: Vec<CutWindow>,
    /// The query, header stripped, trailing `;` removed.
    pub query: String,
    /// sha256 of the whole file, hex: any edit is a change.
    pub content_hash: String,
}

/// Why a cut file was rejected; the sync names the file with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CutFileError {
    #[error("bad file name: {0}")]
    BadName(String),
    #[error("line {line}: {problem}")]
    BadHeader { line: usize, problem: String },
    #[error("header has no '{0}:' line")]
    Missing(&'static str),
    #[error("no query after the header")]
    NoQuery,
}

impl CutFile {
    /// Parses the text of `<file_stem>.sql`.
    pub fn parse(file_stem: &str, text: &str) -> Result<Self, CutFileError> {
        let cut_id: CutId = file_stem.parse().map_err(CutFileError::BadName)?;
        let mut title = None;
        let mut description: Option<String> = None;
        let mut windows: Option<Vec<CutWindow>> = None;
        let mut query_start = text.len();
        let mut offset = 0;
        for (index, raw) in text.split_inclusive('\n').enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() || line == "--" {
                offset += raw.len();
                continue;
            }
            let Some(comment) = line.strip_prefix("--") else {
                query_start = offset;
                break;
            };
            let header_error = |problem: String| CutFileError::BadHeader {
                line: line_no,
                problem,
            };
            let Some((key, value)) = comment.split_once(':') else {
                return Err(header_error(format!(
                    "expected 'key: value' (title, description, windows), found '{line}'"
                )));
            };
            let (key, value) = (key.trim(), value.trim());
            match key {
                "title" => {
                    if value.is_empty() {
                        return Err(header_error("title is empty".into()));
                    }
                    if title.replace(value.to_string()).is_some() {
                        return Err(header_error("title given twice".into()));
                    }
                }
                // Several description lines join into one paragraph.
                "description" => {
                    let joined = match description.take() {
                        Some(before) => format!("{before} {value}"),
                        None => value.to_string(),
                    };
                    description = Some(joined);
                }
                "windows" => {
                    if windows.is_some() {
                        return Err(header_error("windows given twice".into()));
                    }
                    let mut parsed: Vec<CutWindow> = Vec::new();
                    for item in value.split([',', ' ']).filter(|s| !s.is_empty()) {
                        let w: CutWindow = item.parse().map_err(header_error)?;
                        if !parsed.contains(&w) {
                            parsed.push(w);
                        }
                    }
                    if parsed.is_empty() {
                        return Err(header_error(
                            "windows is empty: list at least one, such as 7d".into(),
                        ));
                    }
                    windows = Some(parsed);
                }
                other => {
                    return Err(header_error(format!(
                        "unknown header key '{other}' (expected title, description, windows)"
                    )))
                }
            }
            offset += raw.len();
        }
        let title = title.ok_or(CutFileError::Missing("title"))?;
        let windows = windows.ok_or(CutFileError::Missing("windows"))?;
        let query = text[query_start..]
            .trim()
            .trim_end_matches(';')
            .trim_end()
            .to_string();
        if query.is_empty() {
            return Err(CutFileError::NoQuery);
        }
        Ok(CutFile {
            cut_id,
            title,
            description: description.unwrap_or_default(),
            windows,
            query,
            content_hash: hex::encode(Sha256::digest(text.as_bytes())),
        })
    }

    pub fn window_labels(&self) -> Vec<String> {
        self.windows.iter().map(|w| w.label()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "-- title: Top clients\n\
                        -- description: The busiest clients\n\
                        -- description: in the window.\n\
                        --\n\
                        -- windows: 24h, 7d 30d\n\
                        \n\
                        SELECT 1 AS one WHERE $1::timestamptz < $2;\n";

    #[test]
    fn windows_in_hours_days_and_weeks_parse_to_their_durations() {
        let w: CutWindow = "12h".parse().unwrap();
        assert_eq!(w.duration(), Duration::hours(12));
        let w: CutWindow = "7d".parse().unwrap();
        assert_eq!(w.duration(), Duration::days(7));
        let w: CutWindow = "30d".parse().unwrap();
        assert_eq!(w.duration(), Duration::days(30));
        assert_eq!(w.label(), "30d");
        let w: CutWindow = "2w".parse().unwrap();
        assert_eq!(w.duration(), Duration::days(14));
    }

    #[test]
    fn malformed_windows_are_rejected_with_an_example() {
        for bad in [
            "", "d", "7", "0d", "07d", "-3d", "7x", "7 d", "1.5d", "7D", "99999d",
        ] {
            let err = bad.parse::<CutWindow>().unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn a_good_file_parses_with_joined_description_and_stripped_semicolon() {
        let cut = CutFile::parse("top_clients", GOOD).unwrap();
        assert_eq!(cut.cut_id.as_str(), "top_clients");
        assert_eq!(cut.title, "Top clients");
        assert_eq!(cut.description, "The busiest clients in the window.");
        assert_eq!(cut.window_labels(), ["24h", "7d", "30d"]);
        assert_eq!(cut.query, "SELECT 1 AS one WHERE $1::timestamptz < $2");
        assert_eq!(cut.content_hash.len(), 64);
    }

    #[test]
    fn a_bad_window_in_the_header_names_the_line_and_the_window() {
        let text = "-- title: T\n-- windows: 7d, 3x\nSELECT 1";
        let err = CutFile::parse("c", text).unwrap_err();
        assert_eq!(
            err,
            CutFileError::BadHeader {
                line: 2,
                problem: "'3x' is not a window: write a positive number followed by h, d or w, such as 12h, 7d, 30d".into()
            }
        );
    }

    #[test]
    fn missing_title_windows_or_query_and_unknown_keys_are_errors() {
        assert_eq!(
            CutFile::parse("c", "-- windows: 7d\nSELECT 1").unwrap_err(),
            CutFileError::Missing("title")
        );
        assert_eq!(
            CutFile::parse("c", "-- title: T\nSELECT 1").unwrap_err(),
            CutFileError::Missing("windows")
        );
        assert_eq!(
            CutFile::parse("c", "-- title: T\n-- windows: 7d\n;\n").unwrap_err(),
            CutFileError::NoQuery
        );
        let err = CutFile::parse("c", "-- titel: T\n-- windows: 7d\nSELECT 1").unwrap_err();
        assert!(
            err.to_string().contains("unknown header key 'titel'"),
            "{err}"
        );
    }

    #[test]
    fn bad_file_names_are_rejected() {
        for bad in ["", "Top", "_x", "a b", "a.b", &"x".repeat(65)] {
            assert!(
                matches!(CutFile::parse(bad, GOOD), Err(CutFileError::BadName(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn comments_after_the_query_starts_belong_to_the_query() {
        let text = "-- title: T\n-- windows: 7d\nSELECT 1 -- not: a header\n-- still query\n";
        let cut = CutFile::parse("c", text).unwrap();
        assert_eq!(cut.query, "SELECT 1 -- not: a header\n-- still query");
    }
}
