//! `heartbeat schedule`: the daemon's cron table with next fire times and last
//! successes; `heartbeat schedule next "<expr>"`: fire times of any expression,
//! computed locally with the same parser the daemon uses;
//! `heartbeat schedule pause|resume|trigger ENTRY`: the operator's controls.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use serde_json::Value;

use crate::schedule::table::parse_tz;
use crate::schedule::CronSchedule;

/// Exit codes, part of the CLI contract (docs/operations/cron.md).
pub mod exit {
    pub const OK: u8 = crate::cli::exit::SUCCESS;
    /// Unreachable daemon, a refused key or request; a bad expression, time
    /// zone or option.
    pub const USAGE: u8 = crate::cli::exit::USAGE_OR_CONNECTION;
}

/// The next `count` fire times of `expr` after `after` (default now) in `tz`
/// (default UTC), one RFC 3339 line each with the zone's UTC offset. Errors are
/// the parser's message, e.g. `day-of-week: 8 is out of range 0-7`.
pub fn next(
    expr: &str,
    tz: Option<&str>,
    after: Option<&str>,
    count: usize,
) -> Result<Vec<String>, String> {
    let schedule = CronSchedule::parse(expr).map_err(|e| e.to_string())?;
    let tz: Tz = match tz {
        Some(name) => parse_tz(name)?,
        None => Tz::UTC,
    };
    let after = match after {
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map_err(|_| {
                format!("--after: '{text}' is not an RFC 3339 time such as 2026-03-08T00:00:00Z")
            })?
            .with_timezone(&tz),
        None => Utc::now().with_timezone(&tz),
    };
    Ok(schedule
        .iter_after(&after)
        .take(count)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, false))
        .collect())
}

/// Prints the daemon's table (`GET /api/schedule`); returns the exit code.
pub async fn show(url: &str, key: Option<&str>, json: bool) -> u8 {
    match fetch(url, key).await {
        Ok(view) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&view).unwrap_or_default()
            );
            exit::OK
        }
        Ok(view) => {
            print!("{}", render(&view));
            exit::OK
        }
        Err(msg) => {
            eprintln!("heartbeat schedule: {msg}");
            exit::USAGE
        }
    }
}

/// One of the operator's controls over an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    Trigger,
}

impl Control {
    fn verb(self) -> &'static str {
        match self {
            Control::Pause => "pause",
            Control::Resume => "resume",
            Control::Trigger => "trigger",
        }
    }
}

/// `POST /api/schedule/{entry}/{verb}`; prints one line saying what happened and
/// returns the exit code (an unknown entry or refused key exits 1 with the
/// daemon's message).
pub async fn control(
    url: &str,
    key: Option<&str>,
    verb: Control,
    entry: &str,
    until: Option<&str>,
) -> u8 {
    match post_control(url, key, verb, entry, until).await {
        Ok(body) => {
            println!("{}", describe(verb, entry, &body));
            exit::OK
        }
        Err(msg) => {
            eprintln!("heartbeat schedule {}: {msg}", verb.verb());
            exit::USAGE
        }
    }
}

/// The line `control` prints for the daemon's answer.
fn describe(verb: Control, entry: &str, body: &Value) -> String {
    match verb {
        Control::Pause => match body["paused_until"].as_str() {
            Some(until) => format!("{entry} paused on every node until {until}"),
            None => format!("{entry} paused on every node until resumed"),
        },
        Control::Resume => {
            format!("{entry} resumed; it catches up once within its window if it missed a run")
        }
        Control::Trigger => format!(
            "{entry} triggered: job {}{}",
            body["job_id"].as_str().unwrap_or("?"),
            if body["coalesced"].as_bool() == Some(true) {
                " (already running; coalesced)"
            } else {
                ""
            }
        ),
    }
}

async fn post_control(
    url: &str,
    key: Option<&str>,
    verb: Control,
    entry: &str,
    until: Option<&str>,
) -> Result<Value, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let endpoint = format!(
        "{}/api/schedule/{}/{}",
        url.trim_end_matches('/'),
        urlencoding_segment(entry),
        verb.verb()
    );
    let mut req = client.post(&endpoint);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(until) = until {
        req = req.json(&serde_json::json!({ "until": until }));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("cannot reach the daemon at {url}: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let msg = body["error"]["message"]
            .as_str()
            .unwrap_or("request failed");
        return Err(format!("{status}: {msg}"));
    }
    Ok(body)
}

/// An entry name as one URL path segment (names are config keys, but a stray
/// `/` or space must not change the route).
fn urlencoding_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn fetch(url: &str, key: Option<&str>) -> Result<Value, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let endpoint = format!("{}/api/schedule", url.trim_end_matches('/'));
    let mut req = client.get(&endpoint);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("cannot reach the daemon at {url}: {e}"))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .map_err(|e| format!("unreadable answer from {endpoint}: {e}"))?;
    if !status.is_success() {
        let msg = body["error"]["message"]
            .as_str()
            .unwrap_or("request failed");
        return Err(format!("{endpoint}: {status}: {msg}"));
    }
    Ok(body)
}

/// The table as text: one line per entry, times in the table's zone.
pub fn render(view: &Value) -> String {
    let tz: Tz = view["timezone"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(Tz::UTC);
    let mut out = String::new();
    let state = if view["running"].as_bool() == Some(true) {
        "running"
    } else {
        "off (--no-scheduler): nothing fires by itself"
    };
    let _ = writeln!(out, "cron table {state}; times in {}", tz.name());
    let header = [
        "ENTRY",
        "JOB",
        "CRON",
        "ENABLED",
        "NEXT FIRE",
        "LAST SUCCESS",
        "FIRED",
        "ABSORBED",
        "MISSED",
        "CAUGHT UP",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    for e in view["entries"].as_array().into_iter().flatten() {
        let time = |v: &Value| {
            v.as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .map(|t| {
                    t.with_timezone(&tz)
                        .to_rfc3339_opts(SecondsFormat::Secs, false)
                })
                .unwrap_or_else(|| "-".into())
        };
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        };
        let c = &e["counters"];
        rows.push(vec![
            text(&e["name"]),
            text(&e["job"]),
            text(&e["cron"]),
            if e["enabled"].as_bool() == Some(true) {
                "yes".into()
            } else {
                "no".into()
            },
            time(&e["next_fire_at"]),
            if e["last_success_at"].is_null() {
                "never".into()
            } else {
                time(&e["last_success_at"])
            },
            text(&c["fired"]),
            text(&c["absorbed"]),
            text(&c["missed"]),
            text(&c["caught_up"]),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn next_prints_fire_times_with_the_zones_offset() {
        let lines = next(
            "30 2 * * *",
            Some("America/New_York"),
            Some("2026-03-07T12:00:00-05:00"),
            3,
        )
        .unwrap();
        assert_eq!(
            lines,
            [
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00",
                "2026-03-10T02:30:00-04:00"
            ]
        );
    }

    #[test]
    fn next_reports_bad_input_with_the_parsers_message() {
        assert_eq!(
            next("0 0 * * 8", None, None, 1).unwrap_err(),
            "day-of-week: 8 is out of range 0-7"
        );
        assert!(next("@daily", Some("Nowhere/Land"), None, 1)
            .unwrap_err()
            .contains("not an IANA time zone"));
        assert!(next("@daily", None, Some("yesterday"), 1)
            .unwrap_err()
            .starts_with("--after"));
    }

    #[test]
    fn the_table_shows_each_entry_in_the_tables_zone() {
        let view = json!({
            "running": true,
            "timezone": "Europe/Berlin",
            "entries": [{
                "name": "recompute", "job": "recompute", "cron": "17 * * * *",
                "enabled": true, "catch_up_window": "6h",
                "next_fire_at": "2026-11-23T20:17:00Z", "last_success_at": null,
                "last_tick_at": null,
                "counters": {"fired": 3, "absorbed": 1, "missed": 0, "caught_up": 0}
            }]
        });
        let text = render(&view);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "cron table running; times in Europe/Berlin");
        assert!(lines[1].starts_with("ENTRY"), "{text}");
        assert!(
            lines[2].contains("17 * * * *")
                && lines[2].contains("2026-11-23T21:17:00+01:00")
                && lines[2].contains("never"),
            "{text}"
        );
    }
}
