//! Keeps secrets out of the logs, whoever writes the log line.
//!
//! Two nets, both applied to every formatted log line by [`Redacting`], the writer
//! the log subscriber writes through:
//! - **known secrets**: values the daemon knows are secret (the admin key, the
//!   database password, webhook secrets as they are loaded) are registered with
//!   [`register_secret`] and replaced wherever they appear;
//! - **shapes**: a password in a connection URL (`postgres://user:PASSWORD@host`),
//!   a `password=...` key-value pair, and an `Authorization: Bearer ...` value are
//!   masked even if nobody registered them.
//!
//! Handlers should still log [`dsn`]-redacted strings on purpose; the writer is
//! the net under that.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::RwLock;

use tracing_subscriber::fmt::MakeWriter;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Secrets shorter than this are not registered: masking "a" everywhere would
/// wreck the log and protect nothing.
const MIN_SECRET_LEN: usize = 6;

/// Process-wide because the log subscriber is process-wide.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Masks `secret` in every log line from now on.
pub fn register_secret(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = SECRETS.write().unwrap();
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_string());
        // Longest first, so a secret that contains another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// Registers the secrets found in the configuration: the admin key and the
/// database password. Given the two values, not the config struct, so the
/// redactor stays below every area that registers secrets with it.
pub fn register_config_secrets(admin_key: Option<&str>, database_url: Option<&str>) {
    if let Some(key) = admin_key {
        register_secret(key);
    }
    if let Some(url) = database_url {
        if let Ok(parsed) = url.parse::<tokio_postgres::Config>() {
            if let Some(pw) = parsed.get_password() {
                register_secret(&String::from_utf8_lossy(pw));
            }
        }
    }
}

/// A connection string with its password masked, in either form
/// (`postgres://u:pw@h/db` or `host=h password=pw`).
pub fn dsn(s: &str) -> String {
    mask_url_passwords(&mask_key_values(s)).into_owned()
}

/// Everything this module masks, applied to one piece of text.
pub fn scrub(line: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(line);
    {
        let secrets = SECRETS.read().unwrap();
        for secret in secrets.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
    }
    if out.contains("://") {
        out = Cow::Owned(mask_url_passwords(&out).into_owned());
    }
    let lower = out.to_ascii_lowercase();
    if lower.contains("password") || lower.contains("secret") || lower.contains("bearer ") {
        out = Cow::Owned(mask_key_values(&out).into_owned());
    }
    out
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
fn mask_url_passwords(s: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut rest = s;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace, quote or end.
        let end = tail
            .find(|c: char| {
                c == '/' || c == '?' || c == '#' || c.is_whitespace() || c == '"' || c == '\''
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => match authority[..at].find(':') {
                Some(colon) if colon + 1 < at => {
                    out.push_str(&authority[..=colon]);
                    out.push_str(MASK);
                    out.push_str(&authority[at..]);
                    changed = true;
                }
                _ => out.push_str(authority),
            },
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    if !changed {
        return Cow::Borrowed(s);
    }
    out.push_str(rest);
    Cow::Owned(out)
}

/// Keys whose value is masked in `key=value`, `key: value` and `"key":"value"`.
const SECRET_KEYS: [&str; 4] = ["password", "secret", "admin_key", "bearer"];

/// `password=x`, `password='x y'`, `"secret":"x"`, `Bearer x` → value masked.
fn mask_key_values(s: &str) -> Cow<'_, str> {
    let lower = s.to_ascii_lowercase();
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for key in SECRET_KEYS {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(key) {
            let key_end = from + pos + key.len();
            from = key_end;
            if let Some(span) = value_after(s, key_end, key == "bearer") {
                spans.push(span);
            }
        }
    }
    if spans.is_empty() {
        return Cow::Borrowed(s);
    }
    spans.sort();
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for (start, end) in spans {
        if start < at {
            continue;
        }
        out.push_str(&s[at..start]);
        out.push_str(MASK);
        at = end;
    }
    out.push_str(&s[at..]);
    Cow::Owned(out)
}

/// The byte span of the value following a key ending at `i`, if one follows:
/// optional closing quote (or escaped quote), then `=` or `:`, optional spaces and
/// opening quote, then the value up to its closing quote or a separator. For
/// `bearer`, the separator is whitespace.
fn value_after(s: &str, i: usize, bearer: bool) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut j = i;
    // Only whole words: `password_hash` or `secrets_dir` are not secrets.
    if b.get(j)
        .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    {
        return None;
    }
    if bearer {
        if b.get(j) != Some(&b' ') {
            return None;
        }
        while b.get(j) == Some(&b' ') {
            j += 1;
        }
    } else {
        while matches!(b.get(j), Some(b'\\') | Some(b'"') | Some(b'\'')) {
            j += 1;
        }
        if !matches!(b.get(j), Some(b'=') | Some(b':')) {
            return None;
        }
        j += 1;
        while b.get(j) == Some(&b' ') {
            j += 1;
        }
    }
    let mut quote = None;
    while let Some(c @ (b'\\' | b'"' | b'\'')) = b.get(j) {
        if *c != b'\\' {
            quote = Some(*c);
        }
        j += 1;
    }
    let start = j;
    while let Some(&c) = b.get(j) {
        let ends = match quote {
            Some(q) => c == q || c == b'\\',
            None => {
                c.is_ascii_whitespace()
                    || c == b'"'
                    || c == b','
                    || c == b'}'
                    || c == b'\\'
                    || c == b'\''
            }
        };
        if ends {
            break;
        }
        j += 1;
    }
    (j > start).then_some((start, j))
}

/// A [`MakeWriter`] that scrubs each formatted log line before it reaches `M`.
#[derive(Clone)]
pub struct Redacting<M>(pub M);

impl<'a, M> MakeWriter<'a> for Redacting<M>
where
    M: MakeWriter<'a>,
{
    type Writer = ScrubOnFlush<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        ScrubOnFlush {
            buf: Vec::new(),
            inner: self.0.make_writer(),
        }
    }
}

/// Collects one event's output and writes it scrubbed when dropped (the log
/// formatter makes one writer per event, so a secret is never split across
/// writes).
pub struct ScrubOnFlush<W: Write> {
    buf: Vec<u8>,
    inner: W,
}

impl<W: Write> Write for ScrubOnFlush<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ScrubOnFlush<W> {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let _ = self.inner.write_all(scrub(&text).as_bytes());
        let _ = self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_password_is_masked_and_the_rest_kept() {
        assert_eq!(
            dsn("postgres://hb:s3cr3t@db.internal:5432/heartbeat?sslmode=require"),
            "postgres://hb:***@db.internal:5432/heartbeat?sslmode=require"
        );
        assert_eq!(
            dsn("postgres://hb@db/heartbeat"),
            "postgres://hb@db/heartbeat"
        );
    }

    #[test]
    fn a_key_value_password_is_masked_quoted_or_not() {
        assert_eq!(
            dsn("host=db user=hb password=s3cr3t dbname=x"),
            "host=db user=hb password=*** dbname=x"
        );
        assert_eq!(
            dsn("host=db password='a b c' user=hb"),
            "host=db password='***' user=hb"
        );
    }

    #[test]
    fn json_fields_named_secret_or_password_are_masked() {
        let line = r#"{"url":"https://x","secret":"whsec_abc","password_hash":"keep","msg":"Authorization: Bearer hbk_123 sent"}"#;
        let out = scrub(line);
        assert!(!out.contains("whsec_abc"), "{out}");
        assert!(!out.contains("hbk_123"), "{out}");
        assert!(out.contains(r#""password_hash":"keep""#), "{out}");
        assert!(out.contains("https://x"), "{out}");
    }

    #[test]
    fn escaped_json_inside_a_message_is_masked() {
        let line = r#"{"msg":"body {\"secret\":\"whsec_zzz\"}"}"#;
        assert!(!scrub(line).contains("whsec_zzz"));
    }

    #[test]
    fn registered_secrets_are_masked_anywhere() {
        register_secret("the-admin-key-0123456789");
        let out = scrub("token=the-admin-key-0123456789; again the-admin-key-0123456789");
        assert_eq!(out, "token=***; again ***");
    }

    #[test]
    fn short_values_are_not_registered() {
        register_secret("ab");
        assert_eq!(scrub("a cab ab"), "a cab ab");
    }
}
