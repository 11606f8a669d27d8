//! Digests: a scheduled summary, per channel, of every heartbeat of its
//! project, so a team reads one panel each morning instead of learning a job's
//! state only when it breaks. The same panel answers `GET /api/digest` and
//! `heartbeat status --digest`.
//!
//! A channel with `digest_schedule` (a crontab expression read in `digest_tz`)
//! owes one digest per fire time. The pass here writes it to the outbox like any
//! alert, so delivery, retries and history are the outbox's. Exactly once: the
//! channel's `digest_done_at` is moved forward to the fire time in the same
//! transaction as the digest row is written, so two nodes racing for one fire
//! time write one row (the second's update finds nothing to move), and a daemon
//! that was stopped over a fire time writes it when it comes back. Only the
//! latest fire time is owed: a daemon stopped for a week sends one digest, not
//! seven. A muted channel's fire times pass without a digest.

use chrono::{DateTime, SecondsFormat, Utc};
use deadpool_postgres::Pool;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::channel::NotifyError;
use crate::monitor::heartbeat::{Heartbeat, COLUMNS};
use crate::monitor::schedule::HeartbeatSchedule;
use crate::monitor::status::{Expectation, Status};

/// One heartbeat's line in the panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PanelRow {
    pub id: Uuid,
    pub name: String,
    /// `down`, `late`, `pending`, `up` or `paused`, at the time of the panel.
    pub status: String,
    /// The last successful signal; null when none is known (never succeeded,
    /// or every success has left the kept ping history).
    pub last_success_at: Option<DateTime<Utc>>,
    /// Seconds since the last success.
    pub age_seconds: Option<i64>,
    /// Seconds between expected runs: the period, or the gap between the
    /// schedule's next two fire times.
    pub interval_seconds: Option<i64>,
    /// age ÷ interval, two decimals: above 1, a run was missed.
    pub age_ratio: Option<f64>,
}

/// `GET /api/digest`: the panel, down ones first.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Panel {
    pub generated_at: DateTime<Utc>,
    /// Down first, then late, pending, up and paused; within each, the largest
    /// age ÷ interval first, then by name.
    pub heartbeats: Vec<PanelRow>,
}

/// Every heartbeat of a project with its last success: the last signal when it
/// succeeded, else the newest success the kept ping history holds.
const PANEL: &str = "
SELECT {COLUMNS},
       COALESCE(CASE WHEN NOT h.last_signal_failed THEN h.last_signal_at END,
                (SELECT max(p.at) FROM heartbeat.ping p
                 WHERE p.heartbeat_id = h.heartbeat_id AND p.kind = 'success'))
FROM heartbeat.heartbeat h
WHERE (h.project_id = $1 OR $2) AND ($3::text IS NULL OR h.tags @> ARRAY[$3::text])";

/// The panel of `project` (of every project when `all`), optionally only the
/// heartbeats tagged `tag`, as of `now`.
pub async fn panel(
    client: &tokio_postgres::Client,
    project: Uuid,
    all: bool,
    tag: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Panel, tokio_postgres::Error> {
    let sql = PANEL.replace("{COLUMNS}", COLUMNS);
    let rows = client.query(&sql, &[&project, &all, &tag]).await?;
    let mut heartbeats: Vec<PanelRow> = rows
        .iter()
        .map(|r| {
            let hb = Heartbeat::from_row(r);
            let last_success: Option<DateTime<Utc>> = r.get(column_count());
            row(&hb, last_success, now)
        })
        .collect();
    sort(&mut heartbeats);
    Ok(Panel {
        generated_at: now,
        heartbeats,
    })
}

/// How many columns [`COLUMNS`] names: the last success comes after them.
/// Counted, not written down, so a column added to the heartbeat row cannot
/// shift it.
fn column_count() -> usize {
    COLUMNS.split(',').count()
}

fn row(hb: &Heartbeat, last_success_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> PanelRow {
    let status = hb.evaluate(now).status;
    let interval_seconds = match hb.expectation() {
        Expectation::Period(d) => Some(d.num_seconds()),
        Expectation::Schedule(s) => schedule_gap(&s, now),
    };
    let age_seconds = last_success_at.map(|t| (now - t).num_seconds().max(0));
    let age_ratio = match (age_seconds, interval_seconds) {
        (Some(a), Some(i)) if i > 0 => Some((a as f64 / i as f64 * 100.0).round() / 100.0),
        _ => None,
    };
    PanelRow {
        id: hb.id,
        name: hb.name.clone(),
        status: status.as_str().to_string(),
        last_success_at,
        age_seconds,
        interval_seconds,
        age_ratio,
    }
}

/// The gap between the schedule's next two fire times after `now`.
fn schedule_gap(s: &HeartbeatSchedule, now: DateTime<Utc>) -> Option<i64> {
    let a = s.next_after(now)?;
    let b = s.next_after(a)?;
    Some((b - a).num_seconds())
}

fn rank(status: &str) -> u8 {
    match status {
        s if s == Status::Down.as_str() => 0,
        s if s == Status::Late.as_str() => 1,
        s if s == Status::Pending.as_str() => 2,
        s if s == Status::Up.as_str() => 3,
        _ => 4,
    }
}

/// Down first, then late, pending, up, paused; the largest age ÷ interval
/// first within each; then by name.
pub fn sort(rows: &mut [PanelRow]) {
    rows.sort_by(|a, b| {
        rank(&a.status)
            .cmp(&rank(&b.status))
            .then_with(|| {
                let r = |x: &PanelRow| x.age_ratio.unwrap_or(f64::NEG_INFINITY);
                r(b).total_cmp(&r(a))
            })
            .then_with(|| a.name.cmp(&b.name))
    });
}

/// "3 h 12 min": a duration in words, as alerts and the panel show it.
pub fn words(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 && s % 60 == 0 => format!("{} min", s / 60),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s if s < 86_400 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A name on one line, at most `max` characters (an ellipsis when cut).
fn one_line(name: &str, max: usize) -> String {
    let flat: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let mut cut: String = flat.chars().take(max - 1).collect();
        cut.push('…');
        cut
    }
}

/// The cells of one row, as text.
pub fn cells(r: &PanelRow) -> [String; 6] {
    let dash = || "-".to_string();
    [
        r.status.clone(),
        one_line(&r.name, 60),
        r.last_success_at
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_else(dash),
        r.age_seconds.map(words).unwrap_or_else(dash),
        r.interval_seconds.map(words).unwrap_or_else(dash),
        r.age_ratio.map(|x| format!("{x:.2}")).unwrap_or_else(dash),
    ]
}

/// The column titles of the panel (and of `heartbeat status`'s added columns).
pub const HEADERS: [&str; 6] = [
    "STATUS",
    "NAME",
    "LAST SUCCESS",
    "AGE",
    "INTERVAL",
    "AGE/INTERVAL",
];

/// The panel as an aligned text table, one heartbeat per line.
pub fn render_text(rows: &[PanelRow]) -> String {
    let table: Vec<[String; 6]> = rows.iter().map(cells).collect();
    let mut width = HEADERS.map(|h| h.chars().count());
    for line in &table {
        for (w, cell) in width.iter_mut().zip(line) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: &[String]| {
        let mut line = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = width[i] - cell.chars().count() + 1;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push(&HEADERS.map(String::from));
    for line in &table {
        push(line);
    }
    out
}

/// The rows a digest alert's payload carries.
pub fn rows_of_payload(payload: &Value) -> Vec<PanelRow> {
    serde_json::from_value(payload["heartbeats"].clone()).unwrap_or_default()
}

/// How many heartbeats have each status, for the title: "2 down, 1 late, 5 up".
fn counts(rows: &[PanelRow]) -> String {
    let mut parts = Vec::new();
    for status in ["down", "late", "pending", "up", "paused"] {
        let n = rows.iter().filter(|r| r.status == status).count();
        if n > 0 {
            parts.push(format!("{n} {status}"));
        }
    }
    if parts.is_empty() {
        "no heartbeats".to_string()
    } else {
        parts.join(", ")
    }
}

/// The alert payload for the digest due at `fire`: the rows, and the title and
/// text table every channel kind renders (`$TITLE`, `$TEXT`).
pub fn payload(project: Uuid, fire: DateTime<Utc>, panel: &Panel) -> Value {
    json!({
        "event": "digest",
        "project_id": project,
        "at": fire,
        "detected_at": panel.generated_at,
        "title": format!("Heartbeat digest: {}", counts(&panel.heartbeats)),
        "text": render_text(&panel.heartbeats),
        "heartbeats": panel.heartbeats,
    })
}

/// The latest fire time at or before `now`.
pub fn last_fire(schedule: &HeartbeatSchedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule.prev_before(now + chrono::Duration::seconds(1))
}

const CHANNELS_WITH_DIGEST: &str = "
SELECT channel_id, project_id, digest_schedule, digest_tz, digest_done_at, muted
FROM heartbeat.channel WHERE digest_schedule IS NOT NULL";

/// Moves the channel's handled fire time forward; no row: another pass did.
const TAKE_FIRE: &str = "
UPDATE heartbeat.channel SET digest_done_at = $2
WHERE channel_id = $1 AND digest_done_at < $2";

const INSERT_DIGEST: &str = "
INSERT INTO heartbeat.alert (channel_id, event, payload, created_at, next_attempt_at, digest_at)
VALUES ($1, 'digest', $2, $3, $3, $4)
ON CONFLICT DO NOTHING";

/// Writes the digests due at `now` to the outbox; returns how many were new.
pub async fn run_once(pool: &Pool, now: DateTime<Utc>) -> Result<u64, NotifyError> {
    let mut client = pool.get().await?;
    let channels = client.query(CHANNELS_WITH_DIGEST, &[]).await?;
    let mut written = 0;
    for c in channels {
        let (channel, project): (Uuid, Uuid) = (c.get(0), c.get(1));
        let (expr, tz): (String, String) = (c.get(2), c.get(3));
        let (done, muted): (DateTime<Utc>, bool) = (c.get(4), c.get(5));
        // Checked when the channel was saved; one that no longer parses (a
        // zone database change) is skipped, not fatal to the others.
        let Ok(schedule) = HeartbeatSchedule::parse(&expr, &tz) else {
            continue;
        };
        let Some(fire) = last_fire(&schedule, now).filter(|f| *f > done) else {
            continue;
        };
        // Read before the transaction: a pass that loses the race has only
        // read. The panel is as of now, labelled with the fire time.
        let panel = if muted {
            None
        } else {
            Some(panel(&client, project, false, None, now).await?)
        };
        let tx = client.transaction().await?;
        if tx.execute(TAKE_FIRE, &[&channel, &fire]).await? == 1 {
            if let Some(panel) = &panel {
                written += tx
                    .execute(
                        INSERT_DIGEST,
                        &[&channel, &payload(project, fire, panel), &now, &fire],
                    )
                    .await?;
            }
        }
        tx.commit().await?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn r(name: &str, status: &str, ratio: Option<f64>) -> PanelRow {
        PanelRow {
            id: Uuid::nil(),
            name: name.into(),
            status: status.into(),
            last_success_at: None,
            age_seconds: None,
            interval_seconds: None,
            age_ratio: ratio,
        }
    }

    #[test]
    fn down_ones_come_first_then_the_most_overdue() {
        let mut rows = vec![
            r("a", "up", Some(0.5)),
            r("b", "down", Some(1.5)),
            r("c", "late", Some(1.1)),
            r("d", "down", Some(9.0)),
            r("e", "paused", None),
            r("f", "pending", None),
        ];
        sort(&mut rows);
        let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["d", "b", "c", "f", "a", "e"]);
    }

    #[test]
    fn the_text_panel_is_aligned_and_names_stay_on_one_line() {
        let t = Utc.with_ymd_and_hms(2026, 11, 30, 7, 0, 0).unwrap();
        let rows = vec![
            PanelRow {
                last_success_at: Some(t),
                age_seconds: Some(3 * 3600 + 720),
                interval_seconds: Some(3600),
                age_ratio: Some(3.2),
                ..r("nightly\nbackup", "down", None)
            },
            r("x", "pending", None),
        ];
        let text = render_text(&rows);
        assert_eq!(
            text,
            "STATUS  NAME           LAST SUCCESS         AGE        INTERVAL AGE/INTERVAL\n\
             down    nightly backup 2026-11-30T07:00:00Z 3 h 12 min 1 h      3.20\n\
             pending x              -                    -          -        -\n"
        );
    }

    #[test]
    fn durations_read_in_words() {
        assert_eq!(words(45), "45 s");
        assert_eq!(words(300), "5 min");
        assert_eq!(words(90), "1 min 30 s");
        assert_eq!(words(3600), "1 h");
        assert_eq!(words(86_400 * 2 + 3600), "2 d 1 h");
    }

    #[test]
    fn the_last_fire_time_is_at_or_before_now_in_the_zone() {
        let s = HeartbeatSchedule::parse("0 7 * * *", "Europe/Paris").unwrap();
        let at = Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap();
        assert_eq!(last_fire(&s, at), Some(at));
        let later = at + chrono::Duration::minutes(59);
        assert_eq!(last_fire(&s, later), Some(at));
        let before = at - chrono::Duration::seconds(1);
        assert_eq!(last_fire(&s, before), Some(at - chrono::Duration::days(1)));
    }
}
