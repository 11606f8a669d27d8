//! Status badges, as healthchecks.io serves them (healthchecks.io/docs/badges/
//! and `GET badges/` at healthchecks.io/docs/api/): one per tag of a project and
//! one (`*`) for the whole project, each as an SVG image, a JSON document and a
//! shields.io endpoint document, in two styles: 2-state (`up`/`down`; a late
//! check still counts as up) and 3-state (`up`/`late`/`down`). A heartbeat also
//! has its own badge (`badge_url` in its check JSON).
//!
//! Badge URLs need no key, so they are unguessable instead: the project's
//! `badge_key` (random) names the project, and each tag's URL carries a
//! signature, an HMAC-SHA256 of the tag under the project's `badge_secret`,
//! which only the database and the daemon hold. Knowing one badge URL gives
//! neither another tag's nor anything that pings or reads a check.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;
use uuid::Uuid;

pub mod routes;

use crate::hc::store::StoreError;
use crate::monitor::heartbeat::{Heartbeat, COLUMNS};
use crate::monitor::status::Status;

/// The label of the whole-project badge.
pub const ALL_LABEL: &str = "all";

/// How long a client or proxy may reuse a badge, in seconds: briefly, so a
/// README shows a change within a minute without every view reaching the
/// database.
pub const MAX_AGE_SECONDS: u32 = 30;

/// What a badge document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Svg,
    Json,
    /// shields.io's endpoint schema (shields.io/badges/endpoint-badge).
    Shields,
}

impl Format {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "svg" => Some(Self::Svg),
            "json" => Some(Self::Json),
            "shields" => Some(Self::Shields),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Svg => "svg",
            Self::Json => "json",
            Self::Shields => "shields",
        }
    }
}

/// A badge's word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadgeStatus {
    Up,
    Late,
    Down,
}

impl BadgeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Late => "late",
            Self::Down => "down",
        }
    }

    /// The SVG badge's colour.
    fn colour(self) -> &'static str {
        match self {
            Self::Up => "#4c1",
            Self::Late => "#fe7d37",
            Self::Down => "#e05d44",
        }
    }

    /// shields.io's named colour.
    fn shields_colour(self) -> &'static str {
        match self {
            Self::Up => "success",
            Self::Late => "important",
            Self::Down => "critical",
        }
    }
}

/// What a badge counts over its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tally {
    #[serde(serialize_with = "status_word")]
    pub status: BadgeStatus,
    pub total: u32,
    /// Checks that are late (healthchecks.io's `grace`).
    pub grace: u32,
    pub down: u32,
}

fn status_word<S: serde::Serializer>(s: &BadgeStatus, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

/// Counts `statuses`: down if any is down; else late if any is late and the
/// badge has three states; else up. A paused or never-pinged check counts
/// as up, as on healthchecks.io.
pub fn tally(statuses: impl IntoIterator<Item = Status>, three_states: bool) -> Tally {
    let mut t = Tally {
        status: BadgeStatus::Up,
        total: 0,
        grace: 0,
        down: 0,
    };
    for s in statuses {
        t.total += 1;
        match s {
            Status::Down => {
                t.down += 1;
                t.status = BadgeStatus::Down;
            }
            Status::Late => {
                t.grace += 1;
                if three_states && t.status == BadgeStatus::Up {
                    t.status = BadgeStatus::Late;
                }
            }
            Status::Up | Status::Pending | Status::Paused => {}
        }
    }
    t
}

/// The document a badge answers with: its body and content type.
pub fn render(format: Format, label: &str, tally: &Tally) -> (String, &'static str) {
    match format {
        Format::Svg => (svg(label, tally.status), "image/svg+xml"),
        Format::Json => (json!(tally).to_string(), "application/json"),
        Format::Shields => (
            json!({
                "schemaVersion": 1,
                "label": label,
                "message": tally.status.as_str(),
                "color": tally.status.shields_colour(),
            })
            .to_string(),
            "application/json",
        ),
    }
}

/// An approximate width in pixels of `s` in 11px Verdana, the badge's font:
/// enough to size the two halves of the badge around their words.
fn text_width(s: &str) -> u32 {
    s.chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | 'I' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 3,
            'f' | 'r' | 't' | 'J' | '-' | ' ' | '(' | ')' | '/' => 4,
            'c' | 'e' | 's' | 'x' | 'z' | 'F' | 'L' | 'P' | '1' => 6,
            'm' | 'M' => 10,
            'w' => 9,
            'W' => 11,
            'A' | 'C' | 'D' | 'H' | 'N' | 'U' | 'V' => 8,
            'G' | 'O' | 'Q' => 9,
            _ => 7,
        })
        .sum()
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A flat two-part badge: the label on grey, the status on its colour.
pub fn svg(label: &str, status: BadgeStatus) -> String {
    let word = status.as_str();
    let left = text_width(label) + 10;
    let right = text_width(word) + 10;
    let width = left + right;
    let label = xml_escape(label);
    let colour = status.colour();
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="{label}: {word}"><title>{label}: {word}</title><linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient><clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/></clipPath><g clip-path="url(#r)"><rect width="{left}" height="20" fill="#555"/><rect x="{left}" width="{right}" height="20" fill="{colour}"/><rect width="{width}" height="20" fill="url(#s)"/></g><g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" font-size="11"><text x="{lx}" y="15" fill="#010101" fill-opacity=".3">{label}</text><text x="{lx}" y="14">{label}</text><text x="{rx}" y="15" fill="#010101" fill-opacity=".3">{word}</text><text x="{rx}" y="14">{word}</text></g></svg>"##,
        lx = f64::from(left) / 2.0,
        rx = f64::from(left) + f64::from(right) / 2.0,
    );
    s
}

/// The signature of `tag`'s badge URLs: 8 URL-safe characters of an
/// HMAC-SHA256 of the tag under the project's secret.
pub fn signature(secret: &str, tag: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(tag.as_bytes());
    let digest = mac.finalize().into_bytes();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)[..8].to_string()
}

/// Reads a URL's signature segment: the tag's signature, then `-2` for a
/// 2-state badge. Returns whether the badge has three states, or None when the
/// signature is not `tag`'s.
pub fn check_signature(secret: &str, tag: &str, given: &str) -> Option<bool> {
    let (sig, three) = match given.strip_suffix("-2") {
        Some(sig) if sig.len() == 8 => (sig, false),
        _ => (given, true),
    };
    (sig == signature(secret, tag)).then_some(three)
}

/// Percent-encodes a tag for a URL path segment (tags may hold `/` and `:`).
fn encode_tag(tag: &str) -> String {
    let mut out = String::new();
    for b in tag.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Every URL of one badge, by healthchecks.io's names.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BadgeUrls {
    pub svg: String,
    pub svg3: String,
    pub json: String,
    pub json3: String,
    pub shields: String,
    pub shields3: String,
}

/// The project a badge key names, with its badge secret.
pub struct BadgeProject {
    pub project_id: Uuid,
    pub badge_key: String,
    pub secret: String,
}

impl BadgeProject {
    /// The URLs of `tag`'s badge (`*`: the whole project) under `base`.
    pub fn urls(&self, base: &str, tag: &str) -> BadgeUrls {
        let sig = signature(&self.secret, tag);
        let url = |format: Format, three: bool| {
            let sig = if three {
                sig.clone()
            } else {
                format!("{sig}-2")
            };
            let ext = format.as_str();
            if tag == "*" {
                format!("{base}/badge/{}/{sig}.{ext}", self.badge_key)
            } else {
                format!(
                    "{base}/badge/{}/{sig}/{}.{ext}",
                    self.badge_key,
                    encode_tag(tag)
                )
            }
        };
        BadgeUrls {
            svg: url(Format::Svg, false),
            svg3: url(Format::Svg, true),
            json: url(Format::Json, false),
            json3: url(Format::Json, true),
            shields: url(Format::Shields, false),
            shields3: url(Format::Shields, true),
        }
    }
}

/// The project whose badge key is `badge_key`.
pub async fn project_by_key(
    pool: &Pool,
    badge_key: &str,
) -> Result<Option<BadgeProject>, StoreError> {
    let client = pool.get().await?;
    let row = client
        .query_opt(
            "SELECT project_id, badge_key, badge_secret FROM heartbeat.project
             WHERE badge_key = $1",
            &[&badge_key],
        )
        .await?;
    Ok(row.map(|r| BadgeProject {
        project_id: r.get(0),
        badge_key: r.get(1),
        secret: r.get(2),
    }))
}

/// The project's badge key and secret, and its tags (sorted), for listing
/// its badges.
pub async fn project_badges(
    pool: &Pool,
    project_id: Uuid,
) -> Result<Option<(BadgeProject, BTreeSet<String>)>, StoreError> {
    let client = pool.get().await?;
    let Some(row) = client
        .query_opt(
            "SELECT badge_key, badge_secret FROM heartbeat.project WHERE project_id = $1",
            &[&project_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let tags = client
        .query(
            "SELECT DISTINCT unnest(tags) FROM heartbeat.heartbeat WHERE project_id = $1",
            &[&project_id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Some((
        BadgeProject {
            project_id,
            badge_key: row.get(0),
            secret: row.get(1),
        },
        tags,
    )))
}

/// The statuses at `now` of the project's heartbeats carrying `tag` (all of
/// them for None).
pub async fn statuses(
    pool: &Pool,
    project_id: Uuid,
    tag: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<Status>, StoreError> {
    let client = pool.get().await?;
    let sql = format!(
        "SELECT {COLUMNS} FROM heartbeat.heartbeat
         WHERE project_id = $1 AND ($2::text IS NULL OR tags @> ARRAY[$2])"
    );
    let rows = client.query(&sql, &[&project_id, &tag]).await?;
    Ok(rows
        .iter()
        .map(|r| Heartbeat::from_row(r).evaluate(now).status)
        .collect())
}

/// The heartbeat whose own badge is `badge_uuid`.
pub async fn heartbeat_by_badge(
    pool: &Pool,
    badge_uuid: Uuid,
) -> Result<Option<Heartbeat>, StoreError> {
    let client = pool.get().await?;
    let sql = format!("SELECT {COLUMNS} FROM heartbeat.heartbeat WHERE badge_uuid = $1");
    Ok(client
        .query_opt(&sql, &[&badge_uuid])
        .await?
        .map(|r| Heartbeat::from_row(&r)))
}

/// A badge's JSON for `GET /api/badges`: its URLs and a Markdown line to
/// paste into a README.
pub fn markdown(label: &str, urls: &BadgeUrls) -> String {
    format!("![{label}]({})", urls.svg)
}

/// The label of a tag's badge.
pub fn label(tag: &str) -> &str {
    if tag == "*" {
        ALL_LABEL
    } else {
        tag
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_badge_is_down_if_any_check_is_and_late_only_with_three_states() {
        use Status::*;
        let t = tally([Up, Late, Pending, Paused], false);
        assert_eq!(
            (t.status, t.total, t.grace, t.down),
            (BadgeStatus::Up, 4, 1, 0)
        );
        assert_eq!(tally([Up, Late], true).status, BadgeStatus::Late);
        let t = tally([Late, Down, Up], true);
        assert_eq!((t.status, t.grace, t.down), (BadgeStatus::Down, 1, 1));
        assert_eq!(tally([], true).status, BadgeStatus::Up);
    }

    #[test]
    fn signatures_are_per_tag_and_secret_and_name_the_style() {
        let s = signature("secret", "db");
        assert_eq!(s.len(), 8);
        assert_ne!(s, signature("secret", "web"));
        assert_ne!(s, signature("other", "db"));
        assert_eq!(check_signature("secret", "db", &s), Some(true));
        assert_eq!(
            check_signature("secret", "db", &format!("{s}-2")),
            Some(false)
        );
        assert_eq!(check_signature("secret", "web", &s), None);
        assert_eq!(check_signature("secret", "db", "AAAAAAAA"), None);
    }

    #[test]
    fn urls_carry_the_key_the_signature_the_style_and_the_escaped_tag() {
        let p = BadgeProject {
            project_id: Uuid::nil(),
            badge_key: "KEY".into(),
            secret: "s".into(),
        };
        let sig = signature("s", "a/b");
        let u = p.urls("http://h", "a/b");
        assert_eq!(u.svg, format!("http://h/badge/KEY/{sig}-2/a%2Fb.svg"));
        assert_eq!(u.json3, format!("http://h/badge/KEY/{sig}/a%2Fb.json"));
        let sig = signature("s", "*");
        let u = p.urls("http://h", "*");
        assert_eq!(u.shields, format!("http://h/badge/KEY/{sig}-2.shields"));
    }

    #[test]
    fn svg_escapes_its_label_and_shields_follows_the_endpoint_schema() {
        let t = tally([Status::Down], false);
        let (body, ct) = render(Format::Svg, "a<b", &t);
        assert_eq!(ct, "image/svg+xml");
        assert!(body.contains("a&lt;b") && body.contains("#e05d44") && !body.contains("a<b"));
        let (body, _) = render(Format::Shields, "db", &t);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            json!({"schemaVersion": 1, "label": "db", "message": "down", "color": "critical"})
        );
        let (body, _) = render(Format::Json, "db", &t);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v,
            json!({"status": "down", "total": 1, "grace": 0, "down": 1})
        );
    }
}
