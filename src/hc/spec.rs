//! What a Management API create or update asks for, read from its JSON body
//! the way healthchecks.io reads it (its `Spec`, documented at
//! healthchecks.io/docs/api/): strict types (`"60"` is not a number, `null` is
//! refused), `timeout` and `grace` from 60 s to a year, a `schedule` that must
//! parse in `tz`, `methods` `""` or `"POST"`, `unique` naming fields. Unknown
//! keys (`api_key` among them) are ignored, as healthchecks.io ignores them.
//! The first error wins, phrased as healthchecks.io phrases it.

use serde_json::{Map, Value};

use crate::monitor::heartbeat::Tags;
use crate::monitor::schedule::{parse_tz, HeartbeatSchedule};

/// healthchecks.io's bounds for `timeout` and `grace`: a minute to 365 days.
pub const MIN_SECONDS: i64 = 60;
pub const MAX_SECONDS: i64 = 31_536_000;

/// Fields that are accepted, stored and returned, but change nothing in
/// Heartbeat (e-mail subjects and keyword filters: Heartbeat takes no e-mail
/// pings and reads no bodies). Strings of at most 200 characters.
pub const STORED_STRINGS: &[&str] = &[
    "subject",
    "subject_fail",
    "success_kw",
    "failure_kw",
    "start_kw",
    "req_success_kw",
    "req_failure_kw",
    "req_start_kw",
];
/// Booleans of the same kind.
pub const STORED_BOOLS: &[&str] = &["filter_subject", "filter_body"];

/// Which fields `unique` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueField {
    Name,
    Slug,
    Tags,
    Timeout,
    Grace,
}

/// One create or update; `None` is "not given" (an update keeps the value).
#[derive(Debug, Default, Clone)]
pub struct CheckSpec {
    pub name: Option<String>,
    pub slug: Option<String>,
    /// The space-separated words, as the heartbeat's own tags (sorted, no
    /// duplicates; each a tag `monitor::heartbeat::Tags` accepts).
    pub tags: Option<Vec<String>>,
    pub desc: Option<String>,
    pub timeout: Option<i64>,
    pub grace: Option<i64>,
    pub schedule: Option<String>,
    pub tz: Option<String>,
    pub manual_resume: Option<bool>,
    pub methods: Option<String>,
    pub channels: Option<Channels>,
    pub unique: Option<Vec<UniqueField>>,
    /// The accepted-without-effect fields given ([`STORED_STRINGS`], [`STORED_BOOLS`]).
    pub stored: Map<String, Value>,
}

/// `channels`: which integrations a check notifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channels {
    /// `"*"`: all of the project's.
    All,
    /// `""`: none.
    None,
    /// A comma-separated list of channel ids or names.
    Listed(Vec<String>),
}

/// Why a body was refused: healthchecks.io's message, answered with a 400.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct SpecError(pub String);

fn fail(field: &str, what: &str) -> SpecError {
    SpecError(format!("json validation error: {field} {what}"))
}

fn string(
    obj: &Map<String, Value>,
    key: &str,
    max: Option<usize>,
) -> Result<Option<String>, SpecError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => {
            if max.is_some_and(|m| s.chars().count() > m) {
                return Err(fail(key, "is too long"));
            }
            Ok(Some(s.clone()))
        }
        Some(_) => Err(fail(key, "is not a string")),
    }
}

fn seconds(obj: &Map<String, Value>, key: &str) -> Result<Option<i64>, SpecError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Number(n)) => {
            // Strict: an integer, not 60.0 (healthchecks.io refuses floats too).
            let Some(v) = n.as_i64() else {
                return Err(fail(key, "is not a number"));
            };
            if v < MIN_SECONDS {
                Err(fail(key, "is too small"))
            } else if v > MAX_SECONDS {
                Err(fail(key, "is too large"))
            } else {
                Ok(Some(v))
            }
        }
        Some(_) => Err(fail(key, "is not a number")),
    }
}

/// `tags`: space-separated words, each a Heartbeat tag (1 to 50 letters,
/// digits or `-_.:/`, at most 20), since they are the heartbeat's own tags,
/// which its API, filters and badges share. healthchecks.io takes any text
/// here; Heartbeat answers a 400 naming the word it cannot keep.
fn tags(obj: &Map<String, Value>) -> Result<Option<Vec<String>>, SpecError> {
    let Some(raw) = string(obj, "tags", Some(500))? else {
        return Ok(None);
    };
    let words: Vec<String> = raw.split_whitespace().map(str::to_string).collect();
    Tags::parse(&words)
        .map(|t| Some(t.as_slice().to_vec()))
        .map_err(|e| SpecError(format!("json validation error: tags: {e}")))
}

fn boolean(obj: &Map<String, Value>, key: &str) -> Result<Option<bool>, SpecError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(fail(key, "is not a boolean")),
    }
}

impl CheckSpec {
    /// Reads a request body (already parsed as JSON).
    pub fn parse(body: &Value) -> Result<Self, SpecError> {
        let Value::Object(obj) = body else {
            return Err(SpecError(
                "json validation error: value is not an object".into(),
            ));
        };
        let mut spec = CheckSpec {
            name: string(obj, "name", Some(100))?,
            desc: string(obj, "desc", None)?,
            tags: tags(obj)?,
            timeout: seconds(obj, "timeout")?,
            grace: seconds(obj, "grace")?,
            manual_resume: boolean(obj, "manual_resume")?,
            ..Default::default()
        };
        if let Some(slug) = string(obj, "slug", Some(100))? {
            let ok = slug
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !ok {
                return Err(fail("slug", "does not match pattern"));
            }
            spec.slug = Some(slug);
        }
        spec.tz = string(obj, "tz", None)?;
        if let Some(tz) = &spec.tz {
            parse_tz(tz).map_err(|_| fail("tz", "is not a valid timezone"))?;
        }
        spec.schedule = string(obj, "schedule", Some(100))?;
        if let Some(expr) = &spec.schedule {
            // Checked in UTC here; the check's own zone is checked when stored.
            HeartbeatSchedule::parse(expr, "UTC")
                .map_err(|_| fail("schedule", "is not a valid cron or OnCalendar expression"))?;
        }
        spec.methods = match obj.get("methods") {
            None => None,
            Some(Value::String(m)) if m.is_empty() || m == "POST" => Some(m.clone()),
            Some(_) => return Err(fail("methods", "has unexpected value")),
        };
        spec.channels = string(obj, "channels", None)?.map(|c| match c.as_str() {
            "*" => Channels::All,
            "" => Channels::None,
            list => Channels::Listed(list.split(',').map(str::to_string).collect()),
        });
        spec.unique = match obj.get("unique") {
            None => None,
            Some(Value::Array(items)) => {
                let mut fields = Vec::new();
                for item in items {
                    fields.push(match item.as_str() {
                        Some("name") => UniqueField::Name,
                        Some("slug") => UniqueField::Slug,
                        Some("tags") => UniqueField::Tags,
                        Some("timeout") => UniqueField::Timeout,
                        Some("grace") => UniqueField::Grace,
                        _ => return Err(fail("an item in 'unique'", "has unexpected value")),
                    });
                }
                Some(fields)
            }
            Some(_) => return Err(fail("unique", "is not an array")),
        };
        for key in STORED_STRINGS {
            if let Some(s) = string(obj, key, Some(200))? {
                spec.stored.insert(key.to_string(), Value::String(s));
            }
        }
        for key in STORED_BOOLS {
            if let Some(b) = boolean(obj, key)? {
                spec.stored.insert(key.to_string(), Value::Bool(b));
            }
        }
        Ok(spec)
    }

    /// Whether every field `unique` names was given (healthchecks.io looks for
    /// an existing check only then).
    pub fn unique_fields_given(&self) -> bool {
        let Some(fields) = &self.unique else {
            return false;
        };
        !fields.is_empty()
            && fields.iter().all(|f| match f {
                UniqueField::Name => self.name.is_some(),
                UniqueField::Slug => self.slug.is_some(),
                UniqueField::Tags => self.tags.is_some(),
                UniqueField::Timeout => self.timeout.is_some(),
                UniqueField::Grace => self.grace.is_some(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(body: Value) -> String {
        CheckSpec::parse(&body).unwrap_err().0
    }

    #[test]
    fn types_are_strict_and_null_is_refused() {
        assert_eq!(
            err(json!({"name": 1})),
            "json validation error: name is not a string"
        );
        assert_eq!(
            err(json!({"name": null})),
            "json validation error: name is not a string"
        );
        assert_eq!(
            err(json!({"timeout": "60"})),
            "json validation error: timeout is not a number"
        );
        assert_eq!(
            err(json!({"grace": 60.5})),
            "json validation error: grace is not a number"
        );
        assert_eq!(
            err(json!({"manual_resume": 1})),
            "json validation error: manual_resume is not a boolean"
        );
        assert_eq!(
            err(json!({"methods": "GET"})),
            "json validation error: methods has unexpected value"
        );
        assert_eq!(
            err(json!({"unique": "name"})),
            "json validation error: unique is not an array"
        );
        assert_eq!(
            err(json!({"unique": ["desc"]})),
            "json validation error: an item in 'unique' has unexpected value"
        );
        assert_eq!(
            err(json!([])),
            "json validation error: value is not an object"
        );
    }

    #[test]
    fn bounds_and_formats_are_healthchecks_io_s() {
        assert_eq!(
            err(json!({"grace": 59})),
            "json validation error: grace is too small"
        );
        assert_eq!(
            err(json!({"timeout": 31_536_001})),
            "json validation error: timeout is too large"
        );
        assert!(CheckSpec::parse(&json!({"timeout": 60, "grace": 31_536_000})).is_ok());
        assert_eq!(
            err(json!({"tz": "Mars/Base"})),
            "json validation error: tz is not a valid timezone"
        );
        assert_eq!(
            err(json!({"schedule": "not cron"})),
            "json validation error: schedule is not a valid cron or OnCalendar expression"
        );
        assert_eq!(
            err(json!({"slug": "Upper"})),
            "json validation error: slug does not match pattern"
        );
        assert_eq!(
            err(json!({"name": "x".repeat(101)})),
            "json validation error: name is too long"
        );
    }

    #[test]
    fn fields_are_read_and_unknown_keys_ignored() {
        let s = CheckSpec::parse(&json!({
            "api_key": "k", "name": "backup", "tags": "prod db", "schedule": "0 3 * * *",
            "tz": "Europe/Riga", "channels": "*", "unique": ["name"], "subject": "s",
            "filter_body": true, "methods": "POST"
        }))
        .unwrap();
        assert_eq!(s.name.as_deref(), Some("backup"));
        assert_eq!(s.channels, Some(Channels::All));
        assert!(s.unique_fields_given());
        assert_eq!(s.stored.len(), 2);
        let s = CheckSpec::parse(&json!({"unique": ["name", "grace"], "name": "x"})).unwrap();
        assert!(!s.unique_fields_given());
        let s = CheckSpec::parse(&json!({"channels": "a,b"})).unwrap();
        assert_eq!(
            s.channels,
            Some(Channels::Listed(vec!["a".into(), "b".into()]))
        );
    }
}
