//! Cron-based expectations: when the next run of a schedule is due, in the
//! heartbeat's time zone.
//!
//! The expression is the scheduler's [`CronSchedule`] (Vixie semantics and DST
//! rules), so a heartbeat expects runs exactly when crontab would start them.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::schedule::cron::CronSchedule;

/// A parsed cron expression plus the zone its fields are read in.
#[derive(Clone)]
pub struct HeartbeatSchedule {
    cron: CronSchedule,
    tz: Tz,
    expr: String,
}

impl fmt::Debug for HeartbeatSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expr, self.tz)
    }
}

impl HeartbeatSchedule {
    /// Parses a five-field crontab expression (or `@hourly`, ...) and an IANA zone.
    pub fn parse(expr: &str, tz: &str) -> Result<Self, String> {
        let tz = parse_tz(tz)?;
        let cron = CronSchedule::parse(expr.trim()).map_err(|e| e.to_string())?;
        Ok(Self {
            cron,
            tz,
            expr: expr.trim().to_string(),
        })
    }

    /// The first fire time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron.next_after(&local).map(|d| d.with_timezone(&Utc))
    }

    /// The last fire time strictly before `t`.
    pub fn prev_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron.prev_before(&local).map(|d| d.with_timezone(&Utc))
    }

    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The zone's IANA name.
    pub fn tz_name(&self) -> &'static str {
        self.tz.name()
    }
}

/// An IANA time zone name such as `Europe/Paris`.
pub fn parse_tz(tz: &str) -> Result<Tz, String> {
    Tz::from_str(tz).map_err(|_| format!("'{tz}' is not an IANA time zone such as Europe/Paris"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn a_daily_schedule_fires_at_local_time() {
        let s = HeartbeatSchedule::parse("30 4 * * *", "Europe/Paris").unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap();
        assert_eq!(
            s.next_after(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 11, 3, 30, 0).unwrap()
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert!(HeartbeatSchedule::parse("61 * * * *", "UTC").is_err());
        assert!(HeartbeatSchedule::parse("* * * * *", "Mars/Base").is_err());
    }
}
