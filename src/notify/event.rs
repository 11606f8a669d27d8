//! What an alert says: its event, the heartbeat it is about, and the placeholder
//! values every channel kind renders from.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::template::Vars;

/// Why an alert was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Down,
    Up,
    Reminder,
    Test,
    /// The scheduled summary of every heartbeat (`super::digest`).
    Digest,
}

impl EventKind {
    pub const ALL: &'static [EventKind] = &[
        EventKind::Down,
        EventKind::Up,
        EventKind::Reminder,
        EventKind::Test,
        EventKind::Digest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Down => "down",
            EventKind::Up => "up",
            EventKind::Reminder => "reminder",
            EventKind::Test => "test",
            EventKind::Digest => "digest",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|e| e.as_str() == name)
    }
}

/// Longest excerpt of the last ping's body an alert carries.
pub const BODY_EXCERPT_CHARS: usize = 1000;

/// An alert as the delivery worker reads it: the stored payload plus what the
/// heartbeat looks like now.
#[derive(Debug, Clone)]
pub struct AlertEvent {
    pub kind: EventKind,
    /// The outbox row's JSON (`event`, `heartbeat`, `at`, `status`, ...), posted
    /// as it is to `webhook` channels.
    pub payload: Value,
    pub heartbeat_id: Option<Uuid>,
    pub token: Option<String>,
    pub last_ping_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i32>,
    pub body: Option<String>,
    /// The last success, when the last signal was one.
    pub last_success_at: Option<DateTime<Utc>>,
    /// What the heartbeat expects, in words ("every 3600 s", or a schedule).
    pub expected: Option<String>,
    /// The heartbeat's tags, as they are now.
    pub tags: Vec<String>,
}

impl AlertEvent {
    pub fn name(&self) -> String {
        if self.kind == EventKind::Digest {
            return "digest".to_string();
        }
        self.payload["heartbeat"]["name"]
            .as_str()
            .unwrap_or("heartbeat")
            .to_string()
    }

    /// A subject line: short enough for every service's title field.
    pub fn title(&self) -> String {
        let name: String = self.name().chars().take(100).collect();
        match self.kind {
            EventKind::Down => format!("{name} is DOWN"),
            EventKind::Up => format!("{name} is up again"),
            EventKind::Reminder => format!("{name} is still DOWN"),
            EventKind::Test => "Test notification from heartbeat".to_string(),
            // Written with the panel (`super::digest`), as the payload says it.
            EventKind::Digest => self.payload["title"]
                .as_str()
                .unwrap_or("Heartbeat digest")
                .to_string(),
        }
    }

    /// Every placeholder's value; `base_url` is where people reach the daemon.
    pub fn vars(&self, base_url: &str, now: DateTime<Utc>) -> Vars {
        let base = base_url.trim_end_matches('/');
        let mut v = Vars::new();
        let mut put = |k: &str, val: String| {
            v.insert(k.to_string(), val);
        };
        let p = &self.payload;
        let text = |x: &Value| x.as_str().unwrap_or("").to_string();
        let id = self
            .heartbeat_id
            .map(|i| i.to_string())
            .unwrap_or_else(|| text(&p["heartbeat"]["id"]));
        put("EVENT", self.kind.as_str().to_string());
        put("NAME", self.name());
        put("HEARTBEAT_ID", id.clone());
        put("STATUS", text(&p["status"]));
        put("PREVIOUS_STATUS", text(&p["previous_status"]));
        put("NOW", now.to_rfc3339_opts(SecondsFormat::Secs, true));
        put("AT", text(&p["at"]));
        let last = self
            .last_ping_at
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
        put("LAST_PING_AT", last.clone().unwrap_or_default());
        put(
            "EXIT_CODE",
            self.exit_code.map(|c| c.to_string()).unwrap_or_default(),
        );
        let body: String = self
            .body
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(BODY_EXCERPT_CHARS)
            .collect();
        put("BODY", body);
        put(
            "PING_URL",
            self.token
                .as_ref()
                .map(|t| format!("{base}/hb/{t}"))
                .unwrap_or_default(),
        );
        // A digest links the dashboard itself, not one heartbeat.
        let details = if self.kind == EventKind::Digest {
            format!("{base}/")
        } else {
            format!("{base}/?heartbeat={id}")
        };
        put("DETAILS_URL", details.clone());
        // Space-separated, as healthchecks.io's $TAGS.
        put("TAGS", self.tags.join(" "));
        // What took it down (docs/monitoring.md): fail, missed, timeout, early,
        // too_fast; `success` for a recovery.
        put("CAUSE", text(&p["cause"]));
        // A down alert owed after a silence or a down parent held it back:
        // silenced or suppressed; empty otherwise.
        put("WITHHELD_BY", text(&p["released_after"]));
        put("JSON", p.to_string());
        let title = self.title();
        let since = match &last {
            Some(t) => format!("last ping {t}"),
            None => "never pinged".to_string(),
        };
        let text = match self.kind {
            EventKind::Test => format!("{title}: this channel works. {base}"),
            EventKind::Digest => format!("{title}\n\n{}", text(&p["text"])),
            _ => format!(
                "{title} ({} → {} at {}; {since}). {details}",
                text(&p["previous_status"]),
                text(&p["status"]),
                text(&p["at"]),
            ),
        };
        put("TITLE", title);
        put("TEXT", text);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_cause_tags_and_a_late_alerts_reason_are_placeholders() {
        let event = AlertEvent {
            kind: EventKind::Down,
            payload: json!({
                "event": "down", "status": "down", "previous_status": "up",
                "heartbeat": {"id": Uuid::nil(), "name": "backup", "tags": ["db", "prod"]},
                "cause": "timeout", "released_after": "silenced",
            }),
            heartbeat_id: None,
            token: None,
            last_ping_at: None,
            exit_code: None,
            body: None,
            last_success_at: None,
            expected: None,
            tags: vec!["db".into(), "prod".into()],
        };
        let vars = event.vars("http://x", Utc::now());
        assert_eq!(vars["CAUSE"], "timeout");
        assert_eq!(vars["WITHHELD_BY"], "silenced");
        assert_eq!(vars["TAGS"], "db prod");
    }
}
