//! `CronSchedule`: a five-field crontab expression with Vixie cron semantics,
//! parsed once so the rest of the code never sees a bad one.
//!
//! The grammar and the matching rule follow Vixie/ISC cron's `entry.c` and
//! `cron.c` exactly (docs/operations/cron.md): lists, ranges and steps (a step only after `*` or
//! a range), month and day names, day-of-week 0–7 with 0 and 7 both Sunday, the
//! five `@` macros, and the day rule: when both day fields are restricted a day
//! matches if either matches, where a field whose text starts with `*` (such as
//! `*/2`) counts as unrestricted. Croner's grammar is wider than this (seconds,
//! years, `L`, `W`, `#`, `?`) and treats `*/2` as restricted, and its errors do not
//! name the field, so the fields are parsed and evaluated here (decision 2 in
//! `docs/decisions.md`); croner stays as a differential oracle in the tests.
//!
//! Daylight saving time is handled as Vixie does it. An entry is *wildcard* when
//! its minute or hour field starts with `*`, otherwise *fixed-time*. A fixed-time
//! entry whose local time falls in a gap fires once at the first instant after the
//! gap, and in a repeated hour fires on the first pass only. A wildcard entry keeps
//! real-time cadence: it skips minutes that do not exist and fires in both passes.

use std::fmt;
use std::str::FromStr;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset,
    TimeZone, Timelike,
};
use serde::{Deserialize, Serialize};

/// A rejected expression. The message names the field and the value at fault,
/// e.g. `day-of-week: 8 is out of range 0-7`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem}", field.map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct CronError {
    /// `minute`, `hour`, `day-of-month`, `month` or `day-of-week`; `None` when the
    /// expression as a whole is at fault (field count, unknown macro).
    pub field: Option<&'static str>,
    pub problem: String,
}

impl CronError {
    fn whole(problem: impl Into<String>) -> Self {
        Self {
            field: None,
            problem: problem.into(),
        }
    }
}

/// A parsed crontab schedule. Displays and serializes as the text it was parsed
/// from (trimmed), so configs and API answers show what the user wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CronSchedule {
    text: String,
    /// Bit n set: minute n (0–59) matches.
    minutes: u64,
    /// Bit n set: hour n (0–23).
    hours: u32,
    /// Bit n set: day of month n (1–31).
    days: u32,
    /// Bit n set: month n (1–12).
    months: u16,
    /// Bit n set: weekday n (0 = Sunday … 6 = Saturday); 7 is folded into 0.
    weekdays: u8,
    /// Vixie's `DOM_STAR || DOW_STAR`: the day fields are AND-ed (one of them is
    /// unrestricted); otherwise OR-ed.
    day_and: bool,
    /// Minute or hour field starts with `*`: real-time cadence across DST changes.
    wildcard: bool,
}

/// How far (local time) a DST change can move wall-clock time away from real
/// time; candidates this far around the target are examined so a repeated or
/// skipped hour cannot hide the answer.
const DST_SLACK: Duration = Duration::hours(4);

/// How far ahead (or back) to look for a matching day. `0 0 29 2 1`-style
/// expressions AND-ed with a weekday can need decades; nothing valid needs more.
const SEARCH_YEARS: i32 = 30;

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names for min, min+1, ... (three letters, case-insensitive).
    names: &'static [&'static str],
    names_hint: &'static str,
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    names_hint: "",
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    names_hint: "",
};
const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    names_hint: "",
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    names_hint: " or a month name (JAN-DEC)",
};
const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    names_hint: " or a day name (SUN-SAT)",
};

/// The macros Vixie cron knows, with their five-field meaning. `@reboot` is
/// rejected: a daemon's start is not a schedule (catch-up covers restarts).
const MACROS: &[(&str, &str)] = &[
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

impl CronSchedule {
    /// Parses a five-field expression or a macro.
    pub fn parse(text: &str) -> Result<Self, CronError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(CronError::whole(
                "empty expression: expected five fields (minute hour day-of-month month day-of-week) or a macro such as @daily",
            ));
        }
        let expanded = if trimmed.starts_with('@') {
            MACROS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(trimmed))
                .map(|(_, fields)| *fields)
                .ok_or_else(|| {
                    CronError::whole(format!(
                        "{trimmed} is not supported: expected one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly"
                    ))
                })?
        } else {
            trimmed
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(CronError::whole(format!(
                "expected five fields (minute hour day-of-month month day-of-week), found {}",
                fields.len()
            )));
        }
        let minutes = parse_field(fields[0], &MINUTE)?;
        let hours = parse_field(fields[1], &HOUR)? as u32;
        let days = parse_field(fields[2], &DAY_OF_MONTH)? as u32;
        let months = parse_field(fields[3], &MONTH)? as u16;
        let mut weekdays = parse_field(fields[4], &DAY_OF_WEEK)? as u8;
        // entry.c: "make sundays equivalent".
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & 0x7f) | 1;
        }
        let schedule = CronSchedule {
            text: trimmed.to_string(),
            minutes,
            hours,
            days,
            months,
            weekdays,
            day_and: fields[2].starts_with('*') || fields[4].starts_with('*'),
            wildcard: fields[0].starts_with('*') || fields[1].starts_with('*'),
        };
        // Vixie accepts `0 0 30 2 *` and never runs it; a schedule that can never
        // fire is surely a mistake, so say so now.
        let probe = NaiveDate::from_ymd_opt(2000, 1, 1)
            .expect("a valid date")
            .and_time(NaiveTime::MIN);
        if schedule.next_naive(probe, 1).is_none() {
            return Err(CronError {
                field: Some(DAY_OF_MONTH.name),
                problem: format!(
                    "{} never occurs in month {}, so the schedule never fires",
                    fields[2], fields[3]
                ),
            });
        }
        Ok(schedule)
    }

    /// The text the schedule was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the minute or hour field starts with `*` (real-time cadence across
    /// DST changes); otherwise the entry is fixed-time.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The first fire time strictly after `after`, in `after`'s time zone. `None`
    /// only if nothing matches within 30 years.
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.next_after_steady(after)
            .or_else(|| self.next_after_scan(after))
    }

    /// The last fire time strictly before `before`, in `before`'s time zone.
    pub fn prev_before<Tz: TimeZone>(&self, before: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        self.prev_before_steady(before)
            .or_else(|| self.prev_before_scan(before))
    }

    /// The common case, in one step: the first matching local minute after
    /// `after`, when it exists once and no clock change near either end could
    /// reorder wall-clock and real time (only a repeated hour can). `None` means
    /// "ask the scan".
    fn next_after_steady<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let tz = after.timezone();
        let start = floor_minute(after.naive_local()) + Duration::minutes(1);
        let fire = tz
            .from_local_datetime(&self.next_naive(start, 1)?)
            .single()?;
        let steady = steady(after, &(after.clone() + DST_SLACK))
            && steady(&(fire.clone() - DST_SLACK), &fire);
        (fire > *after && steady).then_some(fire)
    }

    /// Mirror of [`Self::next_after_steady`].
    fn prev_before_steady<Tz: TimeZone>(&self, before: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let tz = before.timezone();
        let local = before.naive_local();
        let floor = floor_minute(local);
        let start = if floor == local {
            floor - Duration::minutes(1)
        } else {
            floor
        };
        let fire = tz
            .from_local_datetime(&self.next_naive(start, -1)?)
            .single()?;
        let steady = steady(&(before.clone() - DST_SLACK), before)
            && steady(&fire, &(fire.clone() + DST_SLACK));
        (fire < *before && steady).then_some(fire)
    }

    /// Examines every matching local minute within [`DST_SLACK`] of the answer and
    /// maps each to its real instants by the DST rules.
    fn next_after_scan<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let tz = after.timezone();
        let mut cursor = floor_minute(after.naive_local()) - DST_SLACK;
        let mut best: Option<DateTime<Tz>> = None;
        while let Some(naive) = self.next_naive(cursor, 1) {
            if let Some(b) = &best {
                if naive > b.naive_local() + DST_SLACK {
                    break;
                }
            }
            for instant in self.instants(&tz, naive) {
                if instant > *after && best.as_ref().is_none_or(|b| instant < *b) {
                    best = Some(instant);
                }
            }
            cursor = naive + Duration::minutes(1);
        }
        best
    }

    /// Mirror of [`Self::next_after_scan`].
    fn prev_before_scan<Tz: TimeZone>(&self, before: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let tz = before.timezone();
        let mut cursor = floor_minute(before.naive_local()) + DST_SLACK;
        let mut best: Option<DateTime<Tz>> = None;
        while let Some(naive) = self.next_naive(cursor, -1) {
            if let Some(b) = &best {
                if naive < b.naive_local() - DST_SLACK {
                    break;
                }
            }
            for instant in self.instants(&tz, naive) {
                if instant < *before && best.as_ref().is_none_or(|b| instant > *b) {
                    best = Some(instant);
                }
            }
            cursor = naive - Duration::minutes(1);
        }
        best
    }

    /// The fire times after `after`, in order.
    pub fn iter_after<'a, Tz: TimeZone + 'a>(
        &'a self,
        after: &DateTime<Tz>,
    ) -> impl Iterator<Item = DateTime<Tz>> + 'a {
        let mut last = after.clone();
        std::iter::from_fn(move || {
            let next = self.next_after(&last)?;
            last = next.clone();
            Some(next)
        })
    }

    /// Whether a local wall-clock minute matches every field (cron.c's test).
    fn matches_day(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.day_and {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The real instants a matching local minute stands for (see the module doc).
    fn instants<Tz: TimeZone>(&self, tz: &Tz, naive: NaiveDateTime) -> Vec<DateTime<Tz>> {
        match tz.from_local_datetime(&naive) {
            LocalResult::Single(t) => vec![t],
            LocalResult::Ambiguous(first, second) => {
                if self.wildcard {
                    vec![first, second]
                } else {
                    vec![first]
                }
            }
            LocalResult::None if self.wildcard => Vec::new(),
            LocalResult::None => first_instant_after_gap(tz, naive).into_iter().collect(),
        }
    }

    /// The first matching local minute at or after `from` (`step` 1), or at or
    /// before it (`step` -1), within [`SEARCH_YEARS`].
    fn next_naive(&self, from: NaiveDateTime, step: i64) -> Option<NaiveDateTime> {
        let forward = step > 0;
        let mut date = from.date();
        let limit = date.year() + if forward { SEARCH_YEARS } else { -SEARCH_YEARS };
        let mut first_day = true;
        loop {
            if (forward && date.year() > limit) || (!forward && date.year() < limit) {
                return None;
            }
            if self.matches_day(date) {
                let (hour_from, minute_from) = if first_day {
                    (from.hour(), from.minute())
                } else if forward {
                    (0, 0)
                } else {
                    (23, 59)
                };
                if let Some((h, m)) = self.time_in_day(hour_from, minute_from, forward) {
                    return Some(date.and_hms_opt(h, m, 0).expect("bits hold valid times"));
                }
            }
            first_day = false;
            date = if forward {
                date.succ_opt()?
            } else {
                date.pred_opt()?
            };
        }
    }

    /// The first matching (hour, minute) at or after (at or before, backwards) the
    /// given time of day.
    fn time_in_day(&self, hour: u32, minute: u32, forward: bool) -> Option<(u32, u32)> {
        let hours: Box<dyn Iterator<Item = u32>> = if forward {
            Box::new(hour..24)
        } else {
            Box::new((0..=hour).rev())
        };
        for h in hours {
            if self.hours & (1 << h) == 0 {
                continue;
            }
            let minutes: Box<dyn Iterator<Item = u32>> = match (forward, h == hour) {
                (true, true) => Box::new(minute..60),
                (true, false) => Box::new(0..60),
                (false, true) => Box::new((0..=minute).rev()),
                (false, false) => Box::new((0..60).rev()),
            };
            for m in minutes {
                if self.minutes & (1 << m) != 0 {
                    return Some((h, m));
                }
            }
        }
        None
    }
}

/// Whether the UTC offset is the same at both instants.
fn steady<Tz: TimeZone>(a: &DateTime<Tz>, b: &DateTime<Tz>) -> bool {
    a.offset().fix() == b.offset().fix()
}

fn floor_minute(t: NaiveDateTime) -> NaiveDateTime {
    t.with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .expect("second 0 is valid")
}

/// The first instant whose wall-clock time is past `naive`, which lies in a DST
/// gap: the moment the clocks jumped (03:00 for a 02:00–03:00 gap).
fn first_instant_after_gap<Tz: TimeZone>(tz: &Tz, naive: NaiveDateTime) -> Option<DateTime<Tz>> {
    (1..=48 * 60)
        .map(|m| naive + Duration::minutes(m))
        .find_map(|t| tz.from_local_datetime(&t).earliest())
}

/// Parses one field (a comma list of `*`, `N`, `N-M`, with `/step` after `*` or a
/// range) into a bit set, as entry.c's `get_list` does.
fn parse_field(text: &str, spec: &FieldSpec) -> Result<u64, CronError> {
    let err = |problem: String| CronError {
        field: Some(spec.name),
        problem,
    };
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(err(format!("{text} has an empty list item")));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let (low, high) = if range == "*" {
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (parse_value(a, spec)?, parse_value(b, spec)?);
            if a > b {
                return Err(err(format!("{range} is a backwards range")));
            }
            (a, b)
        } else {
            let value = parse_value(range, spec)?;
            if step.is_some() {
                return Err(err(format!(
                    "{item} steps from a single value; write {range}-{}/{} or */{}",
                    spec.max,
                    step.unwrap_or(""),
                    step.unwrap_or("")
                )));
            }
            (value, value)
        };
        let step = match step {
            None => 1,
            Some(s) => match s.parse::<u32>() {
                Ok(0) => return Err(err(format!("{item} has a step of 0"))),
                Ok(n) => n,
                Err(_) => return Err(err(format!("{item} has a step {s} that is not a number"))),
            },
        };
        let mut v = low;
        while v <= high {
            bits |= 1 << v;
            v = v.saturating_add(step);
        }
    }
    Ok(bits)
}

fn parse_value(text: &str, spec: &FieldSpec) -> Result<u32, CronError> {
    let err = |problem: String| CronError {
        field: Some(spec.name),
        problem,
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(v) if (spec.min..=spec.max).contains(&v) => Ok(v),
            _ => Err(err(format!(
                "{text} is out of range {}-{}",
                spec.min, spec.max
            ))),
        };
    }
    spec.names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
        .map(|i| spec.min + i as u32)
        .ok_or_else(|| {
            if text.is_empty() {
                err("a value is missing".to_string())
            } else {
                err(format!("{text} is not a number{}", spec.names_hint))
            }
        })
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for CronSchedule {
    type Err = CronError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for CronSchedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for CronSchedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        CronSchedule::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use chrono_tz::Tz;

    fn cron(text: &str) -> CronSchedule {
        CronSchedule::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn zoned(tz: Tz, text: &str) -> DateTime<Tz> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&tz)
    }

    /// The next `n` fire times after `start`, as RFC 3339 with offset.
    fn next_n<Tz: TimeZone>(text: &str, start: &DateTime<Tz>, n: usize) -> Vec<String>
    where
        Tz::Offset: fmt::Display,
    {
        cron(text)
            .iter_after(start)
            .take(n)
            .map(|t| t.to_rfc3339())
            .collect()
    }

    fn error(text: &str) -> String {
        CronSchedule::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn an_out_of_range_value_names_the_field_and_the_value() {
        assert_eq!(error("0 0 * * 8"), "day-of-week: 8 is out of range 0-7");
        assert_eq!(error("60 * * * *"), "minute: 60 is out of range 0-59");
        assert_eq!(error("0 24 * * *"), "hour: 24 is out of range 0-23");
        assert_eq!(error("0 0 0 * *"), "day-of-month: 0 is out of range 1-31");
        assert_eq!(error("0 0 1 13 *"), "month: 13 is out of range 1-12");
    }

    #[test]
    fn malformed_expressions_are_rejected_with_the_field_named() {
        assert_eq!(
            error("0 0 * FOO *"),
            "month: FOO is not a number or a month name (JAN-DEC)"
        );
        assert_eq!(error("0 5-2 * * *"), "hour: 5-2 is a backwards range");
        assert_eq!(error("*/0 * * * *"), "minute: */0 has a step of 0");
        assert!(error("5/10 * * * *").starts_with("minute: 5/10 steps from a single value"));
        assert_eq!(error("1,,2 * * * *"), "minute: 1,,2 has an empty list item");
        assert!(error("0 0 * * * *").contains("found 6"));
        assert!(error("0 0 * *").contains("found 4"));
        assert!(error("").starts_with("empty expression"));
        assert!(error("@reboot").starts_with("@reboot is not supported"));
        // Croner's extensions are not crontab.
        assert!(error("0 0 L * *").starts_with("day-of-month: L"));
        assert!(error("0 0 * * 5#3").starts_with("day-of-week: 5#3"));
        assert!(error("0 0 ? * *").starts_with("day-of-month: ?"));
    }

    #[test]
    fn a_schedule_that_can_never_fire_is_rejected() {
        assert_eq!(
            error("0 0 30 2 *"),
            "day-of-month: 30 never occurs in month 2, so the schedule never fires"
        );
        assert!(CronSchedule::parse("0 0 31 4,5 *").is_ok());
    }

    #[test]
    fn display_and_serialize_give_the_original_text() {
        let s = cron("  17 * * * *\t");
        assert_eq!(s.to_string(), "17 * * * *");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"17 * * * *\"");
        assert_eq!(cron("@daily").to_string(), "@daily");
        assert!(serde_json::from_str::<CronSchedule>("\"mon-fri\"").is_err());
        let back: CronSchedule = serde_json::from_str("\"30 4 * * MON-FRI\"").unwrap();
        assert_eq!(back, cron("30 4 * * MON-FRI"));
    }

    #[test]
    fn day_of_week_zero_and_seven_both_mean_sunday() {
        let start = utc("2026-11-23T00:00:00Z"); // a Monday
        let sunday = vec!["2026-11-29T00:00:00+00:00".to_string()];
        assert_eq!(next_n("0 0 * * 0", &start, 1), sunday);
        assert_eq!(next_n("0 0 * * 7", &start, 1), sunday);
        assert_eq!(next_n("0 0 * * SUN", &start, 1), sunday);
        assert_eq!(cron("0 0 * * 7").weekdays, cron("0 0 * * 0").weekdays);
        // 5-7 is Friday through Sunday.
        assert_eq!(
            next_n("0 0 * * 5-7", &start, 3),
            [
                "2026-11-27T00:00:00+00:00",
                "2026-11-28T00:00:00+00:00",
                "2026-11-29T00:00:00+00:00"
            ]
        );
    }

    #[test]
    fn month_and_day_names_are_read_in_any_case() {
        assert_eq!(cron("0 9 * * MON-FRI").weekdays, 0b0111110);
        assert_eq!(cron("0 9 * * mon-fri").weekdays, 0b0111110);
        assert_eq!(cron("0 9 * JAN,jul *").months, (1 << 1) | (1 << 7));
        assert_eq!(cron("0 9 * jan-mar *").months, 0b1110);
        let start = utc("2026-11-27T10:00:00Z"); // a Friday
        assert_eq!(
            next_n("0 9 * * MON-FRI", &start, 2),
            ["2026-11-30T09:00:00+00:00", "2026-12-01T09:00:00+00:00"]
        );
    }

    #[test]
    fn both_day_fields_restricted_means_either_matches() {
        // The 13th, or any Friday (Vixie's OR rule).
        let start = utc("2026-11-01T00:00:00Z");
        assert_eq!(
            next_n("0 0 13 * 5", &start, 4),
            [
                "2026-11-06T00:00:00+00:00",
                "2026-11-13T00:00:00+00:00",
                "2026-11-20T00:00:00+00:00",
                "2026-11-27T00:00:00+00:00"
            ]
        );
        // 30 4 * * 1 runs on Mondays only (the `cron` crate's Quartz numbering would
        // pick Sundays).
        assert_eq!(
            next_n("30 4 * * 1", &start, 1),
            ["2026-11-02T04:30:00+00:00"]
        );
    }

    #[test]
    fn a_day_field_starting_with_a_star_counts_as_unrestricted_for_the_or_rule() {
        // entry.c sets DOM_STAR for `*/2`, so the days are AND-ed: odd days that
        // are Mondays. Croner would OR them (every odd day plus every Monday).
        let start = utc("2026-11-01T00:00:00Z");
        assert_eq!(
            next_n("0 0 */2 * 1", &start, 3),
            [
                "2026-11-09T00:00:00+00:00",
                "2026-11-23T00:00:00+00:00",
                "2026-12-07T00:00:00+00:00"
            ]
        );
        // Same rule on the weekday side: `*/2` in day-of-week (Sun, Tue, Thu, Sat)
        // AND-ed with the 1st.
        assert_eq!(
            next_n("0 0 1 * */2", &start, 2),
            ["2026-12-01T00:00:00+00:00", "2027-04-01T00:00:00+00:00"]
        );
    }

    #[test]
    fn leap_day_schedules_run_only_on_leap_days() {
        let start = utc("2026-11-23T00:00:00Z");
        assert_eq!(
            next_n("0 0 29 2 *", &start, 3),
            [
                "2028-02-29T00:00:00+00:00",
                "2032-02-29T00:00:00+00:00",
                "2036-02-29T00:00:00+00:00"
            ]
        );
        // 2100 is not a leap year.
        assert_eq!(
            next_n("0 0 29 2 *", &utc("2096-03-01T00:00:00Z"), 1),
            ["2104-02-29T00:00:00+00:00"]
        );
    }

    #[test]
    fn macros_mean_their_five_field_forms() {
        let start = utc("2026-11-23T10:30:00Z");
        for (name, fields) in MACROS {
            assert_eq!(next_n(name, &start, 3), next_n(fields, &start, 3), "{name}");
        }
        assert_eq!(next_n("@hourly", &start, 1), ["2026-11-23T11:00:00+00:00"]);
        assert_eq!(next_n("@daily", &start, 1), ["2026-11-24T00:00:00+00:00"]);
        assert_eq!(next_n("@weekly", &start, 1), ["2026-11-29T00:00:00+00:00"]);
        assert_eq!(next_n("@monthly", &start, 1), ["2026-12-01T00:00:00+00:00"]);
        assert_eq!(next_n("@yearly", &start, 1), ["2027-01-01T00:00:00+00:00"]);
        assert_eq!(
            next_n("@ANNUALLY", &start, 1),
            ["2027-01-01T00:00:00+00:00"]
        );
        assert!(cron("@hourly").is_wildcard());
        assert!(!cron("@daily").is_wildcard());
    }

    #[test]
    fn steps_ranges_and_lists_expand_as_in_entry_c() {
        assert_eq!(
            cron("*/15 * * * *").minutes,
            1 | 1 << 15 | 1 << 30 | 1 << 45
        );
        assert_eq!(cron("10-20/5 * * * *").minutes, 1 << 10 | 1 << 15 | 1 << 20);
        assert_eq!(cron("1,2,59 * * * *").minutes, 1 << 1 | 1 << 2 | 1 << 59);
        assert_eq!(
            cron("0 */5 * * *").hours,
            1 | 1 << 5 | 1 << 10 | 1 << 15 | 1 << 20
        );
        // */2 in day-of-month starts at 1: odd days.
        assert_eq!(cron("0 0 */2 * *").days & 0b1111, 0b1010);
    }

    #[test]
    fn the_next_time_is_strictly_after_and_ignores_seconds() {
        let s = cron("17 * * * *");
        assert_eq!(
            s.next_after(&utc("2026-11-23T10:17:00Z")).unwrap(),
            utc("2026-11-23T11:17:00Z")
        );
        assert_eq!(
            s.next_after(&utc("2026-11-23T10:16:59.999Z")).unwrap(),
            utc("2026-11-23T10:17:00Z")
        );
        assert_eq!(
            s.prev_before(&utc("2026-11-23T10:17:00Z")).unwrap(),
            utc("2026-11-23T09:17:00Z")
        );
        assert_eq!(
            s.prev_before(&utc("2026-11-23T10:17:00.001Z")).unwrap(),
            utc("2026-11-23T10:17:00Z")
        );
    }

    #[test]
    fn a_fixed_time_in_the_new_york_spring_gap_fires_once_when_the_clocks_jump() {
        let ny = chrono_tz::America::New_York;
        // 2026-03-08: 02:00 EST becomes 03:00 EDT.
        let start = zoned(ny, "2026-03-07T12:00:00-05:00");
        assert_eq!(
            next_n("30 2 * * *", &start, 3),
            [
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00",
                "2026-03-10T02:30:00-04:00"
            ]
        );
        // Two fixed times inside the gap still fire once.
        assert_eq!(
            next_n("0,30 2 * * *", &start, 2),
            ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"]
        );
        assert_eq!(
            cron("30 2 * * *")
                .prev_before(&zoned(ny, "2026-03-08T12:00:00-04:00"))
                .unwrap()
                .to_rfc3339(),
            "2026-03-08T03:00:00-04:00"
        );
    }

    #[test]
    fn a_wildcard_entry_skips_the_minutes_of_the_new_york_spring_gap() {
        let ny = chrono_tz::America::New_York;
        let start = zoned(ny, "2026-03-08T01:00:00-05:00");
        assert_eq!(
            next_n("*/30 * * * *", &start, 3),
            [
                "2026-03-08T01:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:30:00-04:00"
            ]
        );
        // Real-time cadence: 60 minutes between the hourly runs around the gap.
        assert_eq!(
            next_n("15 * * * *", &start, 2),
            ["2026-03-08T01:15:00-05:00", "2026-03-08T03:15:00-04:00"]
        );
    }

    #[test]
    fn a_fixed_time_in_the_new_york_fall_overlap_fires_on_the_first_pass_only() {
        let ny = chrono_tz::America::New_York;
        // 2026-11-01: 02:00 EDT becomes 01:00 EST.
        let start = zoned(ny, "2026-10-31T12:00:00-04:00");
        assert_eq!(
            next_n("30 1 * * *", &start, 2),
            ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"]
        );
        // Asked from inside the second pass, the next run is tomorrow's.
        assert_eq!(
            next_n("30 1 * * *", &zoned(ny, "2026-11-01T01:10:00-05:00"), 1),
            ["2026-11-02T01:30:00-05:00"]
        );
    }

    #[test]
    fn a_wildcard_entry_runs_in_both_passes_of_the_new_york_fall_overlap() {
        let ny = chrono_tz::America::New_York;
        let start = zoned(ny, "2026-11-01T00:45:00-04:00");
        assert_eq!(
            next_n("*/30 * * * *", &start, 5),
            [
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:30:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T01:30:00-05:00",
                "2026-11-01T02:00:00-05:00"
            ]
        );
        let s = cron("*/30 * * * *");
        assert_eq!(
            s.prev_before(&zoned(ny, "2026-11-01T01:00:00-05:00"))
                .unwrap()
                .to_rfc3339(),
            "2026-11-01T01:30:00-04:00"
        );
    }

    #[test]
    fn the_berlin_gap_and_overlap_follow_the_same_rules() {
        let berlin = chrono_tz::Europe::Berlin;
        // 2026-03-29: 02:00 CET becomes 03:00 CEST.
        let spring = zoned(berlin, "2026-03-29T00:00:00+01:00");
        assert_eq!(
            next_n("30 2 * * *", &spring, 2),
            ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]
        );
        assert_eq!(
            next_n("30 * * * *", &spring, 3),
            [
                "2026-03-29T00:30:00+01:00",
                "2026-03-29T01:30:00+01:00",
                "2026-03-29T03:30:00+02:00"
            ]
        );
        // 2026-10-25: 03:00 CEST becomes 02:00 CET.
        let fall = zoned(berlin, "2026-10-25T00:00:00+02:00");
        assert_eq!(
            next_n("30 2 * * *", &fall, 2),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
        );
        assert_eq!(
            next_n("30 * * * *", &fall, 4),
            [
                "2026-10-25T00:30:00+02:00",
                "2026-10-25T01:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-25T02:30:00+01:00"
            ]
        );
    }

    #[test]
    fn next_and_prev_agree_over_a_dst_year() {
        // Walking forward then back from each fire time returns the previous one,
        // for both entry kinds, through both New York changes.
        let ny = chrono_tz::America::New_York;
        for text in ["*/20 * * * *", "30 1,2 * * *", "0 2 * * *", "45 * * * *"] {
            let s = cron(text);
            let start = zoned(ny, "2026-03-07T00:00:00-05:00");
            let times: Vec<_> = s.iter_after(&start).take(200).collect();
            for pair in times.windows(2) {
                assert!(pair[0] < pair[1], "{text}: strictly increasing");
                assert_eq!(s.prev_before(&pair[1]).as_ref(), Some(&pair[0]), "{text}");
            }
        }
    }

    #[test]
    fn the_one_step_answer_agrees_with_the_full_scan_around_clock_changes() {
        let zones = [
            chrono_tz::America::New_York,
            chrono_tz::Europe::Berlin,
            // A 30-minute change.
            chrono_tz::Australia::Lord_Howe,
        ];
        let texts = [
            "*/20 * * * *",
            "30 2 * * *",
            "0,30 1-3 * * *",
            "45 * * * *",
            "0 0 * * SUN",
        ];
        let days = [
            "2026-03-07T18:00:00Z",
            "2026-03-28T18:00:00Z",
            "2026-04-04T10:00:00Z",
            "2026-10-03T10:00:00Z",
            "2026-10-24T18:00:00Z",
            "2026-10-31T18:00:00Z",
        ];
        for tz in zones {
            for text in texts {
                let s = cron(text);
                for day in days {
                    let mut t = utc(day).with_timezone(&tz);
                    for _ in 0..(36 * 60 / 7) {
                        assert_eq!(s.next_after(&t), s.next_after_scan(&t), "{text} after {t}");
                        assert_eq!(
                            s.prev_before(&t),
                            s.prev_before_scan(&t),
                            "{text} before {t}"
                        );
                        t += Duration::seconds(7 * 60 + 13);
                    }
                }
            }
        }
    }

    #[test]
    fn without_dst_it_agrees_with_croner_where_croner_reads_crontab_the_same_way() {
        // croner as a differential oracle, in UTC, for expressions without a day
        // field starting with `*/` (where the two differ by design).
        let texts = [
            "17 * * * *",
            "23 4 * * *",
            "0 0 13 * 5",
            "*/7 3-9 * JAN,JUN MON-FRI",
            "5,10-20/3 */4 1-15 * 0,7",
            "0 12 29 2 *",
            "59 23 31 * *",
        ];
        let start = utc("2026-11-23T10:30:00Z");
        for text in texts {
            let theirs = croner::Cron::from_str(text).unwrap();
            let ours = cron(text);
            let mut t = start;
            for _ in 0..50 {
                let a = ours.next_after(&t).unwrap();
                let b = theirs.find_next_occurrence(&t, false).unwrap();
                assert_eq!(a, b, "{text} after {t}");
                t = a;
            }
        }
    }
}
