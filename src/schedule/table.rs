//! The cron table: the `[schedule]` configuration section and the validated
//! entries the tick loop runs.
//!
//! Entries are keyed by name and merged over the five seed entries (docs/operations/cron.md), so
//! switching one off or moving it is a two-line config change:
//!
//! ```toml
//! [schedule]
//! timezone = "Europe/Berlin"
//!
//! [schedule.entries.benchmarks]
//! enabled = false
//!
//! [schedule.entries.recompute]
//! cron = "*/20 * * * *"
//! catch_up_window = "2h"
//!
//! [schedule.entries.evening-recompute]   # a new entry: job and cron required
//! job = "recompute"
//! cron = "0 18 * * MON-FRI"
//! ```

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

use super::cron::CronSchedule;
use crate::config::error::ConfigError;
use crate::jobs::JobKind;

/// The seed table: (entry name, job, cron).
pub const SEED_ENTRIES: [(&str, JobKind, &str); 5] = [
    ("recompute", JobKind::Recompute, "17 * * * *"),
    ("benchmarks", JobKind::Benchmarks, "23 4 * * *"),
    ("segments", JobKind::Segments, "30 4 * * *"),
    ("audit", JobKind::Audit, "45 4 * * *"),
    // Retention before the daily jobs, in the night's quietest hour.
    ("maintenance", JobKind::Maintenance, "10 3 * * *"),
];

/// Default catch-up window for entries that fire more than once a day.
pub const SUB_DAILY_CATCH_UP: Duration = Duration::hours(6);
/// Default catch-up window for daily (or rarer) entries: a day plus slack for a
/// slow start, so a daemon down across one 04:23 run still catches it up.
pub const DAILY_CATCH_UP: Duration = Duration::hours(26);

/// `[schedule]`: the internal cron table. Switched off entirely by `no_scheduler`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleConfig {
    /// IANA time zone the expressions are read in, e.g. `Europe/Berlin`. Default
    /// `UTC`. DST changes follow Vixie cron (docs/operations/cron.md).
    #[serde(deserialize_with = "deserialize_tz")]
    pub timezone: Tz,
    /// Entries by name, merged over the seed entries `recompute`, `benchmarks`,
    /// `segments`, `audit` and `maintenance`. Naming a seed overrides only the fields given.
    pub entries: BTreeMap<String, EntryConfig>,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            timezone: Tz::UTC,
            entries: BTreeMap::new(),
        }
    }
}

/// One `[schedule.entries.<name>]` table; every field optional for a seed entry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryConfig {
    /// Which lane it asks for: `recompute` (scope all), `benchmarks`, `segments`,
    /// `audit`, `maintenance`. Default: the entry's name, when that names a lane.
    pub job: Option<JobKind>,
    /// Five-field crontab expression or macro (`@hourly`, `@daily`, ...).
    pub cron: Option<CronSchedule>,
    /// `false` keeps the entry in the table (and in `heartbeat schedule`) but never
    /// fires it. Default true.
    pub enabled: Option<bool>,
    /// How long a missed run stays worth catching up, as `30m`, `6h`, `2d`; `0`
    /// turns catch-up off. Default 6h for entries firing more than daily, else 26h.
    pub catch_up_window: Option<String>,
}

/// A validated entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub name: String,
    pub kind: JobKind,
    pub schedule: CronSchedule,
    pub enabled: bool,
    /// A missed run is caught up only while the oldest missed fire time is at most
    /// this old; zero means never.
    pub catch_up_window: Duration,
}

/// The validated table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub timezone: Tz,
    /// Seeds first in their fixed order, then added entries by name.
    pub entries: Vec<Entry>,
}

impl Table {
    /// The fire time after `now` of every enabled entry, earliest first.
    pub fn next_fire(&self, entry: &Entry, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        entry
            .schedule
            .next_after(&now.with_timezone(&self.timezone))
            .map(|t| t.with_timezone(&Utc))
    }

    /// The last fire time strictly before `now`.
    pub fn prev_fire(&self, entry: &Entry, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        entry
            .schedule
            .prev_before(&now.with_timezone(&self.timezone))
            .map(|t| t.with_timezone(&Utc))
    }
}

impl ScheduleConfig {
    /// Merges the configured entries over the seeds and validates them; errors
    /// name the field as `schedule.entries.<name>.<field>`.
    pub fn table(&self) -> Result<Table, ConfigError> {
        let mut entries = Vec::new();
        for (name, kind, cron) in SEED_ENTRIES {
            let over = self.entries.get(name).cloned().unwrap_or_default();
            let schedule = match over.cron.clone() {
                Some(s) => s,
                None => CronSchedule::parse(cron).expect("seed expressions parse"),
            };
            entries.push(self.entry(name, over.job.unwrap_or(kind), schedule, &over)?);
        }
        for (name, over) in &self.entries {
            if SEED_ENTRIES.iter().any(|(seed, _, _)| seed == name) {
                continue;
            }
            let field = |f: &str| format!("schedule.entries.{name}.{f}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            {
                return Err(ConfigError::new(
                    format!("schedule.entries.{name}"),
                    "entry names use a-z, 0-9, '-' and '_'",
                ));
            }
            let kind = match over.job {
                Some(kind) => kind,
                None => name.parse().map_err(|_| {
                    ConfigError::new(
                        field("job"),
                        "missing: say which lane the entry runs (recompute, benchmarks, segments, audit)",
                    )
                })?,
            };
            let schedule = over.cron.clone().ok_or_else(|| {
                ConfigError::new(field("cron"), "missing: a new entry needs an expression")
            })?;
            entries.push(self.entry(name, kind, schedule, over)?);
        }
        Ok(Table {
            timezone: self.timezone,
            entries,
        })
    }

    fn entry(
        &self,
        name: &str,
        kind: JobKind,
        schedule: CronSchedule,
        over: &EntryConfig,
    ) -> Result<Entry, ConfigError> {
        let catch_up_window = match &over.catch_up_window {
            Some(text) => parse_window(text).map_err(|problem| {
                ConfigError::new(format!("schedule.entries.{name}.catch_up_window"), problem)
            })?,
            None => default_catch_up_window(&schedule),
        };
        Ok(Entry {
            name: name.to_string(),
            kind,
            schedule,
            enabled: over.enabled.unwrap_or(true),
            catch_up_window,
        })
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.table().map(|_| ())
    }
}

/// 6 h for entries that fire more than once a day, 26 h for the rest, judged by
/// the shortest gap between consecutive fire times over a sample week.
pub fn default_catch_up_window(schedule: &CronSchedule) -> Duration {
    let start = Utc
        .with_ymd_and_hms(2026, 1, 5, 0, 0, 0)
        .single()
        .expect("a valid date");
    let times: Vec<_> = schedule.iter_after(&start).take(8).collect();
    let shortest = times.windows(2).map(|w| w[1] - w[0]).min();
    match shortest {
        Some(gap) if gap < Duration::hours(24) => SUB_DAILY_CATCH_UP,
        _ => DAILY_CATCH_UP,
    }
}

/// `0`, or a number with a unit: `90s`, `30m`, `6h`, `2d`.
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::zero());
    }
    let bad = || format!("'{text}' is not a duration such as 30m, 6h or 2d (0 turns catch-up off)");
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (num, unit) = text.split_at(split);
    let n: i64 = num.parse().map_err(|_| bad())?;
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    // Checked: a long run of digits must be an error, not an overflow panic
    // (found by the property tests in tests/api/reliability_fuzz.rs).
    n.checked_mul(unit_seconds)
        .and_then(Duration::try_seconds)
        .ok_or_else(|| format!("'{text}' is too long a window"))
}

/// Formats a window the way it is configured (`6h`, `26h`, `90m`, `0`).
pub fn format_window(window: Duration) -> String {
    let s = window.num_seconds();
    match s {
        0 => "0".into(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn deserialize_tz<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    let text = String::deserialize(d)?;
    parse_tz(&text).map_err(serde::de::Error::custom)
}

/// An IANA zone name such as `Europe/Berlin` (or `UTC`).
pub fn parse_tz(text: &str) -> Result<Tz, String> {
    text.parse::<Tz>()
        .map_err(|_| format!("'{text}' is not an IANA time zone such as UTC or Europe/Berlin"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn table(toml: &str) -> Result<Table, ConfigError> {
        Config::from_toml(toml)?.schedule.table()
    }

    #[test]
    fn the_default_table_is_the_five_seed_lines_in_utc() {
        let t = table("").unwrap();
        assert_eq!(t.timezone, Tz::UTC);
        let lines: Vec<_> = t
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.kind, e.schedule.to_string(), e.enabled))
            .collect();
        assert_eq!(
            lines,
            [
                ("recompute", JobKind::Recompute, "17 * * * *".into(), true),
                ("benchmarks", JobKind::Benchmarks, "23 4 * * *".into(), true),
                ("segments", JobKind::Segments, "30 4 * * *".into(), true),
                ("audit", JobKind::Audit, "45 4 * * *".into(), true),
                (
                    "maintenance",
                    JobKind::Maintenance,
                    "10 3 * * *".into(),
                    true
                ),
            ]
        );
        assert_eq!(t.entries[0].catch_up_window, Duration::hours(6));
        assert_eq!(t.entries[1].catch_up_window, Duration::hours(26));
        assert_eq!(t.entries[4].catch_up_window, Duration::hours(26));
    }

    #[test]
    fn an_entry_can_be_switched_off_moved_or_added() {
        let t = table(
            r#"
[schedule]
timezone = "Europe/Berlin"
[schedule.entries.benchmarks]
enabled = false
[schedule.entries.recompute]
cron = "*/20 * * * *"
catch_up_window = "2h"
[schedule.entries.evening]
job = "recompute"
cron = "0 18 * * MON-FRI"
"#,
        )
        .unwrap();
        assert_eq!(t.timezone, chrono_tz::Europe::Berlin);
        assert!(!t.entries[1].enabled);
        assert_eq!(t.entries[0].schedule.to_string(), "*/20 * * * *");
        assert_eq!(t.entries[0].catch_up_window, Duration::hours(2));
        assert_eq!(t.entries[5].name, "evening");
        assert_eq!(t.entries[5].kind, JobKind::Recompute);
    }

    #[test]
    fn bad_schedule_settings_name_the_field() {
        let err = table("[schedule]\ntimezone = \"Mars/Olympus\"").unwrap_err();
        assert_eq!(err.field, "schedule.timezone");
        assert!(err.problem.contains("Mars/Olympus"), "{err}");
        assert!(err.problem.contains("not an IANA time zone"), "{err}");

        let err = table("[schedule.entries.audit]\ncron = \"0 0 * * 8\"").unwrap_err();
        assert_eq!(err.field, "schedule.entries.audit.cron");
        assert!(
            err.problem.contains("day-of-week: 8 is out of range 0-7"),
            "{err}"
        );

        let err = table("[schedule.entries.nightly]\ncron = \"0 1 * * *\"").unwrap_err();
        assert_eq!(err.field, "schedule.entries.nightly.job");

        let err = table("[schedule.entries.recompute]\ncatch_up_window = \"soon\"").unwrap_err();
        assert_eq!(err.field, "schedule.entries.recompute.catch_up_window");
    }

    #[test]
    fn catch_up_windows_read_and_print_the_same_way() {
        for text in ["0", "90s", "30m", "6h", "26h"] {
            assert_eq!(format_window(parse_window(text).unwrap()), text);
        }
        assert_eq!(parse_window("2d").unwrap(), Duration::hours(48));
        assert!(parse_window("6").is_err());
    }
}
