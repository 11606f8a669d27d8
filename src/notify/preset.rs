//! Presets: a service's public API written once as `http` request templates, so a
//! user gives a token or a webhook URL instead of a template. Each preset here
//! follows the service's published request format (docs/notifications.md has
//! one section per preset); `config.url` overrides the service's base URL, for
//! self-hosted instances and for local receivers in tests.

use serde_json::Value;

use super::event::EventKind;
use super::template::{RequestSpec, RequestTemplate, Vars, PUBLIC_PLACEHOLDERS};

/// A service with a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    Slack,
    Discord,
    Teams,
    Mattermost,
    GoogleChat,
    Ntfy,
    Gotify,
    Telegram,
    Pagerduty,
    Opsgenie,
    Github,
    Gitea,
}

impl Preset {
    pub const ALL: &'static [Preset] = &[
        Preset::Slack,
        Preset::Discord,
        Preset::Teams,
        Preset::Mattermost,
        Preset::GoogleChat,
        Preset::Ntfy,
        Preset::Gotify,
        Preset::Telegram,
        Preset::Pagerduty,
        Preset::Opsgenie,
        Preset::Github,
        Preset::Gitea,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Slack => "slack",
            Preset::Discord => "discord",
            Preset::Teams => "teams",
            Preset::Mattermost => "mattermost",
            Preset::GoogleChat => "google_chat",
            Preset::Ntfy => "ntfy",
            Preset::Gotify => "gotify",
            Preset::Telegram => "telegram",
            Preset::Pagerduty => "pagerduty",
            Preset::Opsgenie => "opsgenie",
            Preset::Github => "github",
            Preset::Gitea => "gitea",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|p| p.as_str() == name)
    }

    /// Config fields that are secrets: masked in the API, redacted in logs.
    pub fn secret_fields(self) -> &'static [&'static str] {
        match self {
            // The webhook URL itself is the credential.
            Preset::Slack
            | Preset::Discord
            | Preset::Teams
            | Preset::Mattermost
            | Preset::GoogleChat => &["url"],
            Preset::Ntfy | Preset::Gotify | Preset::Github | Preset::Gitea => &["token"],
            Preset::Telegram => &["bot_token"],
            Preset::Pagerduty => &["routing_key"],
            Preset::Opsgenie => &["api_key"],
        }
    }

    /// Whether a digest makes sense here: a message service takes one; an
    /// incident or issue tracker would open an incident per digest.
    pub fn takes_digest(self) -> bool {
        !matches!(
            self,
            Preset::Pagerduty | Preset::Opsgenie | Preset::Github | Preset::Gitea
        )
    }

    /// The service's base URL when `config.url` is not given; None when the user
    /// must give one (a webhook URL, or a self-hosted server).
    fn default_url(self) -> Option<&'static str> {
        match self {
            Preset::Ntfy => Some("https://ntfy.sh"),
            Preset::Telegram => Some("https://api.telegram.org"),
            Preset::Pagerduty => Some("https://events.pagerduty.com"),
            Preset::Opsgenie => Some("https://api.opsgenie.com"),
            Preset::Github => Some("https://api.github.com"),
            _ => None,
        }
    }
}

/// One request of a delivery. `capture`: the response's JSON `number` is the
/// issue the later events of this heartbeat comment on and close.
#[derive(Debug, Clone)]
pub struct Step {
    pub request: RequestTemplate,
    pub capture_issue: bool,
}

/// Placeholders presets use beyond the public ones: values from the channel's
/// config and the message lines.
const PRESET_PLACEHOLDERS: &[&str] = &[
    "BASE_URL", "KEY", "TG_TOKEN", "CHAT_ID", "TOPIC", "OWNER", "REPO", "ISSUE", "TITLE", "TEXT",
];

/// Why a preset's config was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config.{field}: {message}")]
pub struct PresetConfigError {
    pub field: &'static str,
    pub message: String,
}

fn missing(field: &'static str) -> PresetConfigError {
    PresetConfigError {
        field,
        message: "required".into(),
    }
}

fn text(config: &Value, field: &'static str) -> Result<Option<String>, PresetConfigError> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        // Telegram chat ids are numbers; kept as text.
        Some(Value::Number(n)) if field == "chat_id" => Ok(Some(n.to_string())),
        _ => Err(PresetConfigError {
            field,
            message: "must be a non-empty string".into(),
        }),
    }
}

fn required(config: &Value, field: &'static str) -> Result<String, PresetConfigError> {
    text(config, field)?.ok_or_else(|| missing(field))
}

/// The config fields each preset reads; any other field is refused so a typo
/// does not go unnoticed.
fn known_fields(preset: Preset) -> &'static [&'static str] {
    match preset {
        Preset::Slack
        | Preset::Discord
        | Preset::Teams
        | Preset::Mattermost
        | Preset::GoogleChat => &["url"],
        Preset::Ntfy => &["url", "topic", "token"],
        Preset::Gotify => &["url", "token"],
        Preset::Telegram => &["url", "bot_token", "chat_id"],
        Preset::Pagerduty => &["url", "routing_key"],
        Preset::Opsgenie => &["url", "api_key"],
        Preset::Github | Preset::Gitea => &["url", "token", "repo"],
    }
}

/// The preset's config values as placeholder values, checked.
pub fn vars(preset: Preset, config: &Value) -> Result<Vars, PresetConfigError> {
    let Some(object) = config.as_object() else {
        return Err(PresetConfigError {
            field: "config",
            message: "must be an object".into(),
        });
    };
    let known = known_fields(preset);
    if let Some(unknown) = object.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(PresetConfigError {
            field: "config",
            message: format!("unknown field '{unknown}' for {}", preset.as_str()),
        });
    }
    let mut vars = Vars::new();
    let url = match text(config, "url")? {
        Some(u) => u,
        None => preset
            .default_url()
            .ok_or_else(|| missing("url"))?
            .to_string(),
    };
    let parsed = reqwest::Url::parse(&url).ok();
    if !parsed.is_some_and(|u| matches!(u.scheme(), "http" | "https")) {
        return Err(PresetConfigError {
            field: "url",
            message: "must be an http or https URL".into(),
        });
    }
    vars.insert("BASE_URL".into(), url);
    let mut put = |name: &str, value: &str| {
        vars.insert(name.into(), value.to_string());
    };
    match preset {
        Preset::Slack
        | Preset::Discord
        | Preset::Teams
        | Preset::Mattermost
        | Preset::GoogleChat => {}
        Preset::Ntfy => {
            put("TOPIC", &required(config, "topic")?);
            if let Some(token) = text(config, "token")? {
                put("KEY", &token);
            }
        }
        Preset::Gotify => put("KEY", &required(config, "token")?),
        Preset::Telegram => {
            let token = required(config, "bot_token")?;
            // Goes into the URL's path as it is: only the shape Telegram issues.
            let ok = token.split_once(':').is_some_and(|(id, rest)| {
                !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && !rest.is_empty()
                    && rest
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
            if !ok {
                return Err(PresetConfigError {
                    field: "bot_token",
                    message: "must look like 123456:ABC-DEF (the token BotFather gives)".into(),
                });
            }
            put("TG_TOKEN", &token);
            put("CHAT_ID", &required(config, "chat_id")?);
        }
        Preset::Pagerduty => put("KEY", &required(config, "routing_key")?),
        Preset::Opsgenie => put("KEY", &required(config, "api_key")?),
        Preset::Github | Preset::Gitea => {
            put("KEY", &required(config, "token")?);
            let repo = required(config, "repo")?;
            let Some((owner, name)) = repo
                .split_once('/')
                .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
            else {
                return Err(PresetConfigError {
                    field: "repo",
                    message: "must be owner/name".into(),
                });
            };
            put("OWNER", owner);
            put("REPO", name);
        }
    }
    Ok(vars)
}

fn json_post(url: &str, headers: &[(&str, &str)], body: &str) -> RequestSpec {
    request("POST", url, headers, body)
}

fn request(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> RequestSpec {
    let mut h: std::collections::BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    h.entry("Content-Type".into())
        .or_insert_with(|| "application/json".into());
    RequestSpec {
        method: method.into(),
        url: url.into(),
        headers: h,
        body: Some(body.into()),
    }
}

fn step(spec: RequestSpec) -> Step {
    let mut allowed: Vec<&str> = PUBLIC_PLACEHOLDERS.to_vec();
    allowed.extend_from_slice(PRESET_PLACEHOLDERS);
    Step {
        request: RequestTemplate::parse(&spec, &allowed).expect("preset templates parse"),
        capture_issue: false,
    }
}

fn capturing(spec: RequestSpec) -> Step {
    Step {
        capture_issue: true,
        ..step(spec)
    }
}

/// The requests `preset` sends for `event`; `vars` (from [`vars`]) tells
/// whether optional auth (ntfy's token) is configured.
pub fn steps(preset: Preset, event: EventKind, vars: &Vars) -> Vec<Step> {
    use EventKind::{Digest, Down, Reminder, Test, Up};
    match preset {
        Preset::Slack | Preset::Mattermost => {
            vec![step(json_post("$BASE_URL", &[], r#"{"text": "$TEXT"}"#))]
        }
        Preset::Discord => vec![step(json_post("$BASE_URL", &[], r#"{"content": "$TEXT"}"#))],
        Preset::GoogleChat => vec![step(json_post(
            "$BASE_URL",
            &[("Content-Type", "application/json; charset=UTF-8")],
            r#"{"text": "$TEXT"}"#,
        ))],
        Preset::Teams => vec![step(json_post(
            "$BASE_URL",
            &[],
            r#"{"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": null, "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "$TITLE", "weight": "Bolder", "size": "Medium", "wrap": true}, {"type": "TextBlock", "text": "$TEXT", "wrap": true}]}}]}"#,
        ))],
        Preset::Ntfy => {
            let (priority, tag) = match event {
                Down => (5, "rotating_light"),
                Reminder => (4, "rotating_light"),
                Up => (3, "white_check_mark"),
                Test => (3, "test_tube"),
                Digest => (2, "clipboard"),
            };
            let body = format!(
                r#"{{"topic": "$TOPIC", "title": "$TITLE", "message": "$TEXT", "priority": {priority}, "tags": ["{tag}"], "click": "$DETAILS_URL"}}"#
            );
            let auth: &[(&str, &str)] = if vars.contains_key("KEY") {
                &[("Authorization", "Bearer $KEY")]
            } else {
                &[]
            };
            vec![step(json_post("$BASE_URL", auth, &body))]
        }
        Preset::Gotify => {
            let priority = match event {
                Down | Reminder => 8,
                Up | Test => 5,
                Digest => 2,
            };
            vec![step(json_post(
                "$BASE_URL/message",
                &[("X-Gotify-Key", "$KEY")],
                &format!(r#"{{"title": "$TITLE", "message": "$TEXT", "priority": {priority}}}"#),
            ))]
        }
        Preset::Telegram => vec![step(json_post(
            "$BASE_URL/bot$TG_TOKEN/sendMessage",
            &[],
            r#"{"chat_id": "$CHAT_ID", "text": "$TEXT"}"#,
        ))],
        Preset::Pagerduty => {
            let url = "$BASE_URL/v2/enqueue";
            match event {
                // Incidents, not messages: channels of this kind take no digest.
                Digest => Vec::new(),
                Up => vec![step(json_post(
                    url,
                    &[],
                    r#"{"routing_key": "$KEY", "event_action": "resolve", "dedup_key": "heartbeat-$HEARTBEAT_ID"}"#,
                ))],
                Down | Reminder | Test => {
                    let severity = if event == Test { "info" } else { "critical" };
                    vec![step(json_post(
                        url,
                        &[],
                        &format!(
                            r#"{{"routing_key": "$KEY", "event_action": "trigger", "dedup_key": "heartbeat-$HEARTBEAT_ID", "payload": {{"summary": "$TITLE", "source": "heartbeat", "severity": "{severity}", "timestamp": "$AT", "custom_details": $JSON}}, "links": [{{"href": "$DETAILS_URL", "text": "Heartbeat"}}]}}"#
                        ),
                    ))]
                }
            }
        }
        Preset::Opsgenie => {
            let auth: &[(&str, &str)] = &[("Authorization", "GenieKey $KEY")];
            match event {
                Digest => Vec::new(),
                Down | Test => {
                    let priority = if event == Test { "P5" } else { "P1" };
                    vec![step(json_post(
                        "$BASE_URL/v2/alerts",
                        auth,
                        &format!(
                            r#"{{"message": "$TITLE", "alias": "heartbeat-$HEARTBEAT_ID", "description": "$TEXT", "source": "heartbeat", "priority": "{priority}"}}"#
                        ),
                    ))]
                }
                Reminder => vec![step(json_post(
                    "$BASE_URL/v2/alerts/heartbeat-$HEARTBEAT_ID/notes?identifierType=alias",
                    auth,
                    r#"{"note": "$TEXT", "source": "heartbeat"}"#,
                ))],
                Up => vec![step(json_post(
                    "$BASE_URL/v2/alerts/heartbeat-$HEARTBEAT_ID/close?identifierType=alias",
                    auth,
                    r#"{"note": "$TEXT", "source": "heartbeat"}"#,
                ))],
            }
        }
        Preset::Github | Preset::Gitea => {
            let (issues, auth): (&str, &[(&str, &str)]) = if preset == Preset::Github {
                (
                    "$BASE_URL/repos/$OWNER/$REPO/issues",
                    &[
                        ("Accept", "application/vnd.github+json"),
                        ("Authorization", "Bearer $KEY"),
                        ("X-GitHub-Api-Version", "2022-11-28"),
                    ],
                )
            } else {
                (
                    "$BASE_URL/api/v1/repos/$OWNER/$REPO/issues",
                    &[
                        ("Accept", "application/json"),
                        ("Authorization", "token $KEY"),
                    ],
                )
            };
            let open = json_post(issues, auth, r#"{"title": "$TITLE", "body": "$TEXT"}"#);
            let comment = json_post(
                &format!("{issues}/$ISSUE/comments"),
                auth,
                r#"{"body": "$TEXT"}"#,
            );
            let close = request(
                "PATCH",
                &format!("{issues}/$ISSUE"),
                auth,
                r#"{"state": "closed"}"#,
            );
            match event {
                Down => vec![capturing(open)],
                Reminder => vec![step(comment)],
                Up => vec![step(comment), step(close)],
                // Opened and closed at once, so a test leaves nothing open.
                Test => vec![capturing(open), step(close)],
                Digest => Vec::new(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_preset_renders_every_event_and_json_bodies_parse() {
        let configs = [
            (Preset::Slack, json!({"url": "https://hooks.slack.test/x"})),
            (
                Preset::Discord,
                json!({"url": "https://discord.test/api/webhooks/1/t"}),
            ),
            (Preset::Teams, json!({"url": "https://teams.test/wf"})),
            (
                Preset::Mattermost,
                json!({"url": "https://mm.test/hooks/x"}),
            ),
            (
                Preset::GoogleChat,
                json!({"url": "https://chat.test/v1/spaces/x"}),
            ),
            (Preset::Ntfy, json!({"topic": "t", "token": "tk_1"})),
            (
                Preset::Gotify,
                json!({"url": "https://gotify.test", "token": "A"}),
            ),
            (
                Preset::Telegram,
                json!({"bot_token": "123:ABC-d_e", "chat_id": 42}),
            ),
            (Preset::Pagerduty, json!({"routing_key": "R"})),
            (Preset::Opsgenie, json!({"api_key": "K"})),
            (Preset::Github, json!({"token": "T", "repo": "o/r"})),
            (
                Preset::Gitea,
                json!({"url": "https://gitea.test", "token": "T", "repo": "o/r"}),
            ),
        ];
        assert_eq!(configs.len(), Preset::ALL.len());
        for (preset, config) in configs {
            let mut v = vars(preset, &config).unwrap();
            v.insert("NAME".into(), "a \"q\"\n&#%é".into());
            v.insert("TEXT".into(), "a \"q\"\n&#%é".into());
            v.insert("JSON".into(), "{}".into());
            v.insert("ISSUE".into(), "7".into());
            for event in EventKind::ALL {
                for s in steps(preset, *event, &v) {
                    let r = s.request.render(&v);
                    assert!(r.url.starts_with("https://"), "{preset:?} {}", r.url);
                    let body = r.body.unwrap();
                    serde_json::from_str::<Value>(&body)
                        .unwrap_or_else(|e| panic!("{preset:?} {event:?}: {e}: {body}"));
                }
            }
        }
    }

    #[test]
    fn bad_configs_are_refused_naming_the_field() {
        let e = vars(Preset::Pagerduty, &json!({})).unwrap_err();
        assert_eq!(e.field, "routing_key");
        let e = vars(Preset::Slack, &json!({})).unwrap_err();
        assert_eq!(e.field, "url");
        let e = vars(Preset::Github, &json!({"token": "t", "repo": "norepo"})).unwrap_err();
        assert_eq!(e.field, "repo");
        let e = vars(Preset::Telegram, &json!({"bot_token": "x/y", "chat_id": 1})).unwrap_err();
        assert_eq!(e.field, "bot_token");
        assert!(vars(Preset::Slack, &json!({"url": "https://x", "typo": 1})).is_err());
    }
}
