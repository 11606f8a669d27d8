//! Silences: maintenance windows and snoozes. While a silence covers a heartbeat,
//! its status still changes and every flip is recorded, but no alert goes out;
//! the deadline loop (`super::deadline`) owes the heartbeat one alert if it is
//! still down when the silence ends. A silence covers one heartbeat or every
//! heartbeat of its project carrying a tag, until a time or in a window that
//! recurs on a cron schedule (docs/monitoring.md, "Silences").

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

pub mod routes;

use super::heartbeat::{Heartbeat, Tags};
use super::schedule::{parse_tz, HeartbeatSchedule};

/// Longest recurring window, and how far ahead a recurring window's end is
/// followed through overlapping windows (a minutely cron with an hour's window).
const MAX_WINDOW_SECONDS: i32 = 366 * 86_400;
const MAX_CHAINED_WINDOWS: usize = 10_000;

/// When a silence holds.
#[derive(Debug, Clone)]
pub enum Window {
    /// From its creation until this instant (exclusive).
    Until(DateTime<Utc>),
    /// From each fire time of the schedule, for `duration` (the end exclusive).
    Recurring {
        schedule: Box<HeartbeatSchedule>,
        duration: Duration,
    },
}

/// What a silence covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Heartbeat(Uuid),
    /// Every heartbeat of the project carrying the tag.
    Tag(String),
}

/// One stored silence.
#[derive(Debug, Clone)]
pub struct Silence {
    pub id: Uuid,
    pub project_id: Uuid,
    pub target: Target,
    pub window: Window,
    pub created_at: DateTime<Utc>,
}

/// Why a silence was refused.
#[derive(Debug, thiserror::Error)]
pub enum SilenceError {
    #[error("give either until or cron (with duration_seconds), not both")]
    Both,
    #[error("give until, or cron with duration_seconds")]
    Neither,
    #[error("until: must be in the future")]
    Past,
    #[error("cron: {0}")]
    Cron(String),
    #[error("tz: {0}")]
    Tz(String),
    #[error("duration_seconds: must be between 1 and {MAX_WINDOW_SECONDS}")]
    Duration,
    #[error("tag: {0}")]
    Tag(String),
    #[error("no silence {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// A silence as a client asks for it, before it is checked.
#[derive(Debug, Clone, Default)]
pub struct SilenceSpec {
    pub until: Option<DateTime<Utc>>,
    pub cron: Option<String>,
    pub duration_seconds: Option<i32>,
    pub tz: Option<String>,
}

impl SilenceSpec {
    /// The checked window; `now` decides whether `until` is past.
    pub fn window(&self, now: DateTime<Utc>) -> Result<Window, SilenceError> {
        match (self.until, &self.cron) {
            (Some(_), Some(_)) => Err(SilenceError::Both),
            (Some(_), None) if self.duration_seconds.is_some() || self.tz.is_some() => {
                Err(SilenceError::Both)
            }
            (Some(until), None) if until <= now => Err(SilenceError::Past),
            (Some(until), None) => Ok(Window::Until(until)),
            (None, Some(cron)) => {
                let tz = self.tz.as_deref().unwrap_or("UTC");
                parse_tz(tz).map_err(SilenceError::Tz)?;
                let schedule = HeartbeatSchedule::parse(cron, tz).map_err(SilenceError::Cron)?;
                let seconds = self.duration_seconds.ok_or(SilenceError::Neither)?;
                if !(1..=MAX_WINDOW_SECONDS).contains(&seconds) {
                    return Err(SilenceError::Duration);
                }
                Ok(Window::Recurring {
                    schedule: Box::new(schedule),
                    duration: Duration::seconds(seconds.into()),
                })
            }
            (None, None) => Err(SilenceError::Neither),
        }
    }
}

impl Window {
    /// The end of the silence holding at `now` (following overlapping recurring
    /// windows), or None when it does not hold.
    pub fn holds_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Window::Until(until) => (now < *until).then_some(*until),
            Window::Recurring { schedule, duration } => {
                // The first fire after `now - duration` is the only one whose
                // window can still hold: an earlier one has ended.
                let mut fire = schedule.next_after(now - *duration)?;
                if fire > now {
                    return None;
                }
                let mut end = fire + *duration;
                for _ in 0..MAX_CHAINED_WINDOWS {
                    match schedule.next_after(fire) {
                        Some(next) if next <= end => {
                            end = end.max(next + *duration);
                            fire = next;
                        }
                        _ => break,
                    }
                }
                Some(end)
            }
        }
    }
}

impl Silence {
    pub fn covers(&self, hb: &Heartbeat) -> bool {
        hb.project_id == self.project_id
            && match &self.target {
                Target::Heartbeat(id) => *id == hb.id,
                Target::Tag(tag) => hb.tags.contains(tag),
            }
    }

    fn from_row(row: &Row) -> Self {
        let heartbeat_id: Option<Uuid> = row.get(2);
        let tag: Option<String> = row.get(3);
        let until: Option<DateTime<Utc>> = row.get(4);
        let cron: Option<String> = row.get(5);
        let duration: Option<i32> = row.get(6);
        let tz: Option<String> = row.get(7);
        let window = match (until, cron) {
            (Some(u), _) => Window::Until(u),
            (None, Some(c)) => {
                match HeartbeatSchedule::parse(&c, tz.as_deref().unwrap_or("UTC")) {
                    Ok(s) => Window::Recurring {
                        schedule: Box::new(s),
                        duration: Duration::seconds(duration.unwrap_or(0).into()),
                    },
                    // Checked on the way in; a cron that no longer parses
                    // silences nothing rather than everything.
                    Err(_) => Window::Until(DateTime::<Utc>::MIN_UTC),
                }
            }
            (None, None) => Window::Until(DateTime::<Utc>::MIN_UTC),
        };
        Self {
            id: row.get(0),
            project_id: row.get(1),
            target: match (heartbeat_id, tag) {
                (Some(id), _) => Target::Heartbeat(id),
                (None, t) => Target::Tag(t.unwrap_or_default()),
            },
            window,
            created_at: row.get(8),
        }
    }

    /// The API view at `now`.
    pub fn view(&self, now: DateTime<Utc>) -> SilenceView {
        let (until, cron, duration_seconds, tz) = match &self.window {
            Window::Until(u) => (Some(*u), None, None, None),
            Window::Recurring { schedule, duration } => (
                None,
                Some(schedule.expr().to_string()),
                Some(duration.num_seconds()),
                Some(schedule.tz_name().to_string()),
            ),
        };
        let (heartbeat_id, tag) = match &self.target {
            Target::Heartbeat(id) => (Some(*id), None),
            Target::Tag(t) => (None, Some(t.clone())),
        };
        SilenceView {
            id: self.id,
            heartbeat_id,
            tag,
            until,
            cron,
            duration_seconds,
            tz,
            active_until: self.window.holds_until(now),
            created_at: self.created_at,
        }
    }
}

/// The silences holding at `now`, each with its end: worked out once per
/// batch of heartbeats, since a recurring window costs a cron search.
pub fn holding(silences: &[Silence], now: DateTime<Utc>) -> Vec<(&Silence, DateTime<Utc>)> {
    silences
        .iter()
        .filter_map(|s| s.window.holds_until(now).map(|end| (s, end)))
        .collect()
}

/// The end of the silence holding `hb` (the latest, if several do), out of
/// those [`holding`] found.
pub fn silenced_until(
    holding: &[(&Silence, DateTime<Utc>)],
    hb: &Heartbeat,
) -> Option<DateTime<Utc>> {
    holding
        .iter()
        .filter(|(s, _)| s.covers(hb))
        .map(|(_, end)| *end)
        .max()
}

/// A silence as the API shows it (docs/api.md, "Silences").
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SilenceView {
    pub id: Uuid,
    /// The heartbeat it covers, or null for a tag silence.
    pub heartbeat_id: Option<Uuid>,
    /// The tag whose heartbeats it covers, or null.
    pub tag: Option<String>,
    /// A one-off silence holds until this instant (exclusive).
    pub until: Option<DateTime<Utc>>,
    /// A recurring window opens at each fire time of this cron expression...
    pub cron: Option<String>,
    /// ...and lasts this many seconds.
    pub duration_seconds: Option<i64>,
    /// The zone `cron` is read in.
    pub tz: Option<String>,
    /// When it holds now: the end of the current window (or of `until`).
    pub active_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const SILENCE_COLUMNS: &str =
    "silence_id, project_id, heartbeat_id, tag, until, cron, duration_seconds, tz, created_at";

/// Stores a silence of `project_id` over `target`; a tag is checked here, a
/// heartbeat id by the caller (it must be the caller's).
pub async fn create(
    client: &tokio_postgres::Client,
    project_id: Uuid,
    target: Target,
    spec: &SilenceSpec,
    now: DateTime<Utc>,
) -> Result<Silence, SilenceError> {
    let window = spec.window(now)?;
    let (heartbeat_id, tag) = match &target {
        Target::Heartbeat(id) => (Some(*id), None),
        Target::Tag(t) => (
            None,
            Some(Tags::parse_one(t).map_err(|e| SilenceError::Tag(e.to_string()))?),
        ),
    };
    let (until, cron, duration, tz) = match &window {
        Window::Until(u) => (Some(*u), None, None, None),
        Window::Recurring { schedule, duration } => (
            None,
            Some(schedule.expr().to_string()),
            Some(duration.num_seconds() as i32),
            Some(schedule.tz_name().to_string()),
        ),
    };
    let row = client
        .query_one(
            &format!(
                "INSERT INTO heartbeat.silence (silence_id, project_id, heartbeat_id, tag, until,
                                               cron, duration_seconds, tz)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {SILENCE_COLUMNS}"
            ),
            &[
                &Uuid::now_v7(),
                &project_id,
                &heartbeat_id,
                &tag,
                &until,
                &cron,
                &duration,
                &tz,
            ],
        )
        .await?;
    Ok(Silence::from_row(&row))
}

/// The silences of a project (every project's when `all`), newest first.
pub async fn list(
    client: &tokio_postgres::Client,
    project_id: Uuid,
    all: bool,
) -> Result<Vec<Silence>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT {SILENCE_COLUMNS} FROM heartbeat.silence
                 WHERE project_id = $1 OR $2 ORDER BY created_at DESC, silence_id"
            ),
            &[&project_id, &all],
        )
        .await?;
    Ok(rows.iter().map(Silence::from_row).collect())
}

/// Removes a silence; heartbeats whose alert it held are re-examined by the
/// deadline loop at once, so one still down alerts now.
pub async fn delete(
    client: &tokio_postgres::Client,
    project_id: Uuid,
    all: bool,
    id: Uuid,
) -> Result<(), SilenceError> {
    let row = client
        .query_opt(
            "DELETE FROM heartbeat.silence WHERE silence_id = $1 AND (project_id = $2 OR $3)
             RETURNING project_id",
            &[&id, &project_id, &all],
        )
        .await?;
    let Some(row) = row else {
        return Err(SilenceError::NotFound(id));
    };
    let project: Uuid = row.get(0);
    client
        .execute(
            "UPDATE heartbeat.heartbeat SET deadline = now()
             WHERE project_id = $1 AND held_flip_id IS NOT NULL",
            &[&project],
        )
        .await?;
    Ok(())
}

/// The silences that may cover any of `heartbeats`: theirs, and their
/// projects' tag silences. One query, for a deadline-loop batch or an API list.
pub async fn covering(
    client: &impl tokio_postgres::GenericClient,
    heartbeats: &[&Heartbeat],
) -> Result<Vec<Silence>, tokio_postgres::Error> {
    if heartbeats.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = heartbeats.iter().map(|h| h.id).collect();
    let mut projects: Vec<Uuid> = heartbeats.iter().map(|h| h.project_id).collect();
    projects.sort();
    projects.dedup();
    let rows = client
        .query(
            &format!(
                "SELECT {SILENCE_COLUMNS} FROM heartbeat.silence
                 WHERE heartbeat_id = ANY($1) OR (tag IS NOT NULL AND project_id = ANY($2))"
            ),
            &[&ids, &projects],
        )
        .await?;
    Ok(rows.iter().map(Silence::from_row).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn recurring(cron: &str, seconds: i32, tz: &str) -> Window {
        SilenceSpec {
            cron: Some(cron.into()),
            duration_seconds: Some(seconds),
            tz: Some(tz.into()),
            ..Default::default()
        }
        .window(utc(2026, 1, 1, 0, 0, 0))
        .unwrap()
    }

    #[test]
    fn a_one_off_silence_holds_until_its_end_exclusive() {
        let w = Window::Until(utc(2026, 3, 1, 12, 0, 0));
        assert_eq!(
            w.holds_until(utc(2026, 3, 1, 11, 59, 59)),
            Some(utc(2026, 3, 1, 12, 0, 0))
        );
        assert_eq!(w.holds_until(utc(2026, 3, 1, 12, 0, 0)), None);
    }

    #[test]
    fn a_sunday_window_follows_local_time_across_spring_forward() {
        // Every Sunday 02:00-04:00 in Paris. On 2026-03-22 (CET, UTC+1) that is
        // 01:00-03:00 UTC; on 2026-03-29 02:00 does not exist, so the window
        // opens at the first instant after the gap, 03:00 CEST (01:00 UTC), and
        // lasts its two hours of real time; on 2026-04-05 (CEST, UTC+2) it is
        // 00:00-02:00 UTC.
        let w = recurring("0 2 * * 0", 7200, "Europe/Paris");
        for (open, close) in [
            (utc(2026, 3, 22, 1, 0, 0), utc(2026, 3, 22, 3, 0, 0)),
            (utc(2026, 3, 29, 1, 0, 0), utc(2026, 3, 29, 3, 0, 0)),
            (utc(2026, 4, 5, 0, 0, 0), utc(2026, 4, 5, 2, 0, 0)),
        ] {
            let second = Duration::seconds(1);
            assert_eq!(w.holds_until(open - second), None, "before {open}");
            assert_eq!(w.holds_until(open), Some(close), "at {open}");
            assert_eq!(w.holds_until(close - second), Some(close));
            assert_eq!(w.holds_until(close), None, "at {close}");
        }
    }

    #[test]
    fn a_window_across_fall_back_lasts_its_real_time() {
        // 2026-10-25 Paris falls back at 03:00 CEST -> 02:00 CET: a window at
        // 01:30 local (23:30 UTC the day before) of 2 h ends at 01:30 UTC.
        let w = recurring("30 1 * * *", 7200, "Europe/Paris");
        let open = utc(2026, 10, 24, 23, 30, 0);
        assert_eq!(w.holds_until(open), Some(utc(2026, 10, 25, 1, 30, 0)));
    }

    #[test]
    fn overlapping_windows_chain_into_one() {
        let w = recurring("*/10 * * * *", 900, "UTC");
        assert_eq!(
            w.holds_until(utc(2026, 3, 1, 12, 0, 0))
                .map(|e| e > utc(2026, 3, 2, 0, 0, 0)),
            Some(true)
        );
    }

    #[test]
    fn a_spec_is_either_until_or_a_window() {
        let now = utc(2026, 3, 1, 0, 0, 0);
        let spec = |until: Option<DateTime<Utc>>, cron: Option<&str>, d: Option<i32>| SilenceSpec {
            until,
            cron: cron.map(str::to_string),
            duration_seconds: d,
            tz: None,
        };
        assert!(matches!(
            spec(None, None, None).window(now),
            Err(SilenceError::Neither)
        ));
        assert!(matches!(
            spec(Some(now), Some("* * * * *"), Some(1)).window(now),
            Err(SilenceError::Both)
        ));
        assert!(matches!(
            spec(Some(now), None, None).window(now),
            Err(SilenceError::Past)
        ));
        assert!(matches!(
            spec(None, Some("* * * * *"), None).window(now),
            Err(SilenceError::Neither)
        ));
        assert!(matches!(
            spec(None, Some("* * * * *"), Some(0)).window(now),
            Err(SilenceError::Duration)
        ));
        assert!(matches!(
            spec(None, Some("61 * * * *"), Some(1)).window(now),
            Err(SilenceError::Cron(_))
        ));
    }
}
