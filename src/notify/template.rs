//! Request templates with `$PLACEHOLDER`s, and the escaping that keeps a value
//! where it stands: percent-encoded in a URL, JSON-escaped in a JSON body, and
//! stripped of line breaks in a header, so no heartbeat name can add a query
//! parameter, break a JSON document or inject a header.
//!
//! A placeholder is `$` followed by capitals, digits and `_` (`$NAME`); `$$` is a
//! literal `$`, and a `$` before anything else stays as it is (`$schema`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The placeholders a user's `http` template may use.
pub const PUBLIC_PLACEHOLDERS: &[&str] = &[
    "EVENT",
    "NAME",
    "HEARTBEAT_ID",
    "STATUS",
    "PREVIOUS_STATUS",
    "NOW",
    "AT",
    "LAST_PING_AT",
    "EXIT_CODE",
    "BODY",
    "PING_URL",
    "DETAILS_URL",
    "TAGS",
    "CAUSE",
    "WITHHELD_BY",
    "JSON",
];

/// Inserted as they are, never escaped: a base URL the channel's own config
/// gave (validated as an http(s) URL), a Telegram bot token (validated to its
/// `digits:letters` shape, whose `:` must stay), and the event as a JSON document.
const RAW_IN_URL: &[&str] = &["BASE_URL", "TG_TOKEN"];
const RAW_IN_JSON: &[&str] = &["JSON"];

/// One piece of a parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(String),
}

/// A parsed template string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

/// A placeholder the template may not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown placeholder ${0}")]
pub struct UnknownPlaceholder(pub String);

impl Template {
    /// Parses `text`; every placeholder must be in `allowed`.
    pub fn parse(text: &str, allowed: &[&str]) -> Result<Self, UnknownPlaceholder> {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c != '$' {
                literal.push(c);
                continue;
            }
            match chars.peek() {
                Some((_, '$')) => {
                    chars.next();
                    literal.push('$');
                }
                Some((_, n)) if n.is_ascii_uppercase() => {
                    let start = i + 1;
                    let mut end = start;
                    while let Some((j, n)) = chars.peek() {
                        if n.is_ascii_uppercase() || n.is_ascii_digit() || *n == '_' {
                            end = j + 1;
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    let name = &text[start..end];
                    if !allowed.contains(&name) {
                        return Err(UnknownPlaceholder(name.to_string()));
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Var(name.to_string()));
                }
                _ => literal.push('$'),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Self(pieces))
    }

    /// Whether the template uses the placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|p| matches!(p, Piece::Var(v) if v == name))
    }

    /// The template with each placeholder's value escaped for `place`. A value
    /// missing from `vars` renders empty.
    pub fn render(&self, vars: &Vars, place: Place) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(name) => {
                    let value = vars.get(name).map(String::as_str).unwrap_or("");
                    out.push_str(&escape(name, value, place));
                }
            }
        }
        out
    }
}

/// Where a value stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Url,
    Header,
    JsonBody,
    TextBody,
}

/// Placeholder values by name.
pub type Vars = BTreeMap<String, String>;

fn escape(name: &str, value: &str, place: Place) -> String {
    match place {
        Place::Url if RAW_IN_URL.contains(&name) => value.trim_end_matches('/').to_string(),
        Place::Url => percent_encode(value),
        // Line breaks and other controls could end the header; a space keeps the
        // words apart.
        Place::Header => value
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
        Place::JsonBody if RAW_IN_JSON.contains(&name) => value.to_string(),
        Place::JsonBody => {
            let quoted = serde_json::to_string(value).expect("a string serializes");
            quoted[1..quoted.len() - 1].to_string()
        }
        Place::TextBody => value.to_string(),
    }
}

/// RFC 3986: everything but unreserved characters is encoded, so a value is one
/// path segment or one query value whatever it holds.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// One HTTP request as a user (or a preset) writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE` (default `POST`).
    #[serde(default = "default_method")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
}

fn default_method() -> String {
    "POST".into()
}

/// A [`RequestSpec`] parsed and checked.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    pub method: reqwest::Method,
    pub url: Template,
    pub headers: Vec<(reqwest::header::HeaderName, Template)>,
    pub body: Option<Template>,
    /// A JSON `Content-Type`: body values are JSON-escaped.
    pub json: bool,
}

/// Why a request template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}")]
    Placeholder(#[from] UnknownPlaceholder),
    #[error("method: {0} is not one of GET, POST, PUT, PATCH, DELETE")]
    Method(String),
    #[error("headers: '{0}' is not a valid header name")]
    HeaderName(String),
    #[error("url: must start with http:// or https://")]
    Url,
}

/// A rendered request, ready to send.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub method: reqwest::Method,
    pub url: String,
    pub headers: Vec<(reqwest::header::HeaderName, String)>,
    pub body: Option<String>,
}

impl RequestTemplate {
    pub fn parse(spec: &RequestSpec, allowed: &[&str]) -> Result<Self, TemplateError> {
        let method = match spec.method.to_ascii_uppercase().as_str() {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "PATCH" => reqwest::Method::PATCH,
            "DELETE" => reqwest::Method::DELETE,
            other => return Err(TemplateError::Method(other.to_string())),
        };
        let url = spec.url.trim();
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("http://")
            || lower.starts_with("https://")
            || url.starts_with("$BASE_URL"))
        {
            return Err(TemplateError::Url);
        }
        let mut headers = Vec::new();
        let mut json = false;
        for (name, value) in &spec.headers {
            let header = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| TemplateError::HeaderName(name.clone()))?;
            if header == reqwest::header::CONTENT_TYPE
                && value.to_ascii_lowercase().contains("json")
            {
                json = true;
            }
            headers.push((header, Template::parse(value, allowed)?));
        }
        Ok(Self {
            method,
            url: Template::parse(url, allowed)?,
            headers,
            body: spec
                .body
                .as_deref()
                .map(|b| Template::parse(b, allowed))
                .transpose()?,
            json,
        })
    }

    /// Whether any part of the request uses the placeholder `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.url.uses(name)
            || self.headers.iter().any(|(_, t)| t.uses(name))
            || self.body.as_ref().is_some_and(|b| b.uses(name))
    }

    pub fn render(&self, vars: &Vars) -> Rendered {
        let place = if self.json {
            Place::JsonBody
        } else {
            Place::TextBody
        };
        Rendered {
            method: self.method.clone(),
            url: self.url.render(vars, Place::Url),
            headers: self
                .headers
                .iter()
                .map(|(n, t)| (n.clone(), t.render(vars, Place::Header)))
                .collect(),
            body: self.body.as_ref().map(|b| b.render(vars, place)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const NASTY: &str = "a \"b\"\n& #c %d/é?x=1";

    #[test]
    fn placeholders_are_parsed_and_unknown_ones_refused() {
        let t = Template::parse("$NAME is $STATUS, $$5 and $schema", PUBLIC_PLACEHOLDERS).unwrap();
        let out = t.render(
            &vars(&[("NAME", "db"), ("STATUS", "down")]),
            Place::TextBody,
        );
        assert_eq!(out, "db is down, $5 and $schema");
        assert_eq!(
            Template::parse("$NAMES", PUBLIC_PLACEHOLDERS),
            Err(UnknownPlaceholder("NAMES".into()))
        );
    }

    #[test]
    fn values_are_escaped_for_where_they_stand() {
        let spec = RequestSpec {
            method: "post".into(),
            url: "https://x.test/hook/$NAME?q=$NAME".into(),
            headers: [
                ("Content-Type".to_string(), "application/json".to_string()),
                ("X-Name".to_string(), "$NAME".to_string()),
            ]
            .into(),
            body: Some(r#"{"text": "$NAME", "event": $JSON}"#.into()),
        };
        let t = RequestTemplate::parse(&spec, PUBLIC_PLACEHOLDERS).unwrap();
        let r = t.render(&vars(&[("NAME", NASTY), ("JSON", r#"{"a":1}"#)]));
        assert_eq!(
            r.url,
            "https://x.test/hook/a%20%22b%22%0A%26%20%23c%20%25d%2F%C3%A9%3Fx%3D1?q=a%20%22b%22%0A%26%20%23c%20%25d%2F%C3%A9%3Fx%3D1"
        );
        let body: serde_json::Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
        assert_eq!(body["text"], NASTY);
        assert_eq!(body["event"]["a"], 1);
        let header = &r.headers.iter().find(|(n, _)| n == "x-name").unwrap().1;
        assert!(!header.contains('\n'), "{header}");
    }

    #[test]
    fn bad_methods_urls_and_header_names_are_refused() {
        let base = RequestSpec {
            method: "POST".into(),
            url: "https://x.test".into(),
            headers: BTreeMap::new(),
            body: None,
        };
        let bad_method = RequestSpec {
            method: "TRACE".into(),
            ..base.clone()
        };
        assert!(RequestTemplate::parse(&bad_method, PUBLIC_PLACEHOLDERS).is_err());
        let bad_url = RequestSpec {
            url: "ftp://x".into(),
            ..base.clone()
        };
        assert_eq!(
            RequestTemplate::parse(&bad_url, PUBLIC_PLACEHOLDERS).unwrap_err(),
            TemplateError::Url
        );
        let bad_header = RequestSpec {
            headers: [("bad name".to_string(), "x".to_string())].into(),
            ..base
        };
        assert!(RequestTemplate::parse(&bad_header, PUBLIC_PLACEHOLDERS).is_err());
    }
}
