//! Keeps secrets out of the logs, whoever writes the log line.
//!
//! Two nets, both applied to every formatted log line by [`Redacting`], the writer
//! the log subscriber writes through:
//! - **known secrets**: values the daemon knows are secret are replaced wherever
//!   they appear: the admin key and the database password (registered once with
//!   [`register_secret`]) and webhook secrets (registered as webhooks are created or
//!   loaded with [`register_webhook_secret`], dropped with
//!   [`forget_webhook_secret`] when their webhook is deleted, and resynced from the
//!   webhook table with [`replace_webhook_secrets`]);
//! - **shapes**: a password in a connection URL (`postgres://user:PASSWORD@host`),
//!   a `password=...` key-value pair, and an `Authorization: Bearer ...` value are
//!   masked even if nobody registered them.
//!
//! Handlers should still log [`dsn`]-redacted strings on purpose; the writer is
//! the net under that.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};
use std::sync::RwLock;

use tracing_subscriber::fmt::MakeWriter;

/// What a secret is replaced with.
pub const MASK: &str = "***";

/// Secrets shorter than this are not registered: masking "a" everywhere would
/// wreck the log and protect nothing.
const MIN_SECRET_LEN: usize = 6;

/// The secrets the writer masks.
///
/// Bound: the configuration's secrets (two at most) plus the secrets of the
/// webhooks that exist. A deleted webhook's secret is forgotten by the node that
/// deletes it, and every node resyncs the webhook half from the table
/// (`monitor::delivery` does it every few minutes), so deletions elsewhere are
/// forgotten too and the list never outgrows the webhook table.
///
/// Webhook secrets are kept per database (the `scope`, its connection string):
/// a daemon has one, but a test process runs many daemons on as many databases,
/// and one database's resync must not drop another's secrets.
struct Registry {
    /// From the configuration; kept for the whole process.
    config: BTreeSet<String>,
    /// Webhook secrets per database, as its webhook table last held them, each
    /// with the [`Registry::seq`] at which it was last registered: a resync drops
    /// only secrets registered before its query started, so a webhook created
    /// during a resync stays masked.
    webhooks: BTreeMap<String, BTreeMap<String, u64>>,
    /// Bumped by every registration and every resync mark.
    seq: u64,
    /// Both sets, longest first, so a secret that contains another is masked whole.
    masked: Vec<String>,
}

impl Registry {
    fn rebuild(&mut self) {
        let all: BTreeSet<&String> = self
            .config
            .iter()
            .chain(self.webhooks.values().flat_map(|s| s.keys()))
            .collect();
        let mut all: Vec<String> = all.into_iter().cloned().collect();
        all.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self.masked = all;
    }
}

/// Process-wide because the log subscriber is process-wide.
static SECRETS: RwLock<Registry> = RwLock::new(Registry {
    config: BTreeSet::new(),
    webhooks: BTreeMap::new(),
    seq: 0,
    masked: Vec::new(),
});

/// The trimmed secret, if long enough to be worth masking.
fn maskable(secret: &str) -> Option<&str> {
    let secret = secret.trim();
    (secret.len() >= MIN_SECRET_LEN).then_some(secret)
}

/// Masks `secret` in every log line for the rest of the process (configuration
/// secrets: the admin key, the database password).
pub fn register_secret(secret: &str) {
    let Some(secret) = maskable(secret) else {
        return;
    };
    let mut reg = SECRETS.write().unwrap();
    if reg.config.insert(secret.to_string()) {
        reg.rebuild();
    }
}

/// Masks the `secret` of a webhook in the `scope` database in every log line
/// until its webhook is deleted.
pub fn register_webhook_secret(scope: &str, secret: &str) {
    let Some(secret) = maskable(secret) else {
        return;
    };
    let mut reg = SECRETS.write().unwrap();
    reg.seq += 1;
    let seq = reg.seq;
    if reg
        .webhooks
        .entry(scope.to_string())
        .or_default()
        .insert(secret.to_string(), seq)
        .is_none()
    {
        reg.rebuild();
    }
}

/// Stops masking a deleted webhook's `secret` (unless the configuration or
/// another database's webhook holds the same value).
pub fn forget_webhook_secret(scope: &str, secret: &str) {
    let Some(secret) = maskable(secret) else {
        return;
    };
    let mut reg = SECRETS.write().unwrap();
    let removed = reg
        .webhooks
        .get_mut(scope)
        .is_some_and(|s| s.remove(secret).is_some());
    if removed {
        reg.webhooks.retain(|_, s| !s.is_empty());
        reg.rebuild();
    }
}

/// Taken before reading the webhook table for [`replace_webhook_secrets`].
pub fn resync_mark() -> u64 {
    let mut reg = SECRETS.write().unwrap();
    reg.seq += 1;
    reg.seq
}

/// Makes the `scope` database's webhook secrets `secrets` (what its webhook
/// table held when read after `mark` was taken), keeping any registered since.
pub fn replace_webhook_secrets<'a>(
    scope: &str,
    mark: u64,
    secrets: impl IntoIterator<Item = &'a str>,
) {
    let mut reg = SECRETS.write().unwrap();
    let seq = reg.seq;
    let mut next: BTreeMap<String, u64> = reg
        .webhooks
        .get(scope)
        .map(|s| {
            s.iter()
                .filter(|(_, at)| **at > mark)
                .map(|(k, at)| (k.clone(), *at))
                .collect()
        })
        .unwrap_or_default();
    for secret in secrets.into_iter().filter_map(maskable) {
        next.entry(secret.to_string()).or_insert(seq);
    }
    let unchanged = reg
        .webhooks
        .get(scope)
        .is_some_and(|s| s.keys().eq(next.keys()));
    if next.is_empty() {
        reg.webhooks.remove(scope);
    } else {
        reg.webhooks.insert(scope.to_string(), next);
    }
    if !unchanged {
        reg.rebuild();
    }
}

/// How many secrets are masked (configuration and webhooks).
pub fn secret_count() -> usize {
    SECRETS.read().unwrap().masked.len()
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
        for secret in secrets.masked.iter() {
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
    fn a_forgotten_webhook_secret_is_no_longer_masked_but_config_secrets_stay() {
        register_webhook_secret("db1", "whsec_forget_me_0001");
        register_secret("config-secret-0002");
        assert_eq!(scrub("a whsec_forget_me_0001 b"), "a *** b");
        forget_webhook_secret("db1", "whsec_forget_me_0001");
        assert_eq!(
            scrub("a whsec_forget_me_0001 b"),
            "a whsec_forget_me_0001 b"
        );
        forget_webhook_secret("db1", "config-secret-0002");
        assert_eq!(scrub("x config-secret-0002"), "x ***");
    }

    #[test]
    fn a_resync_drops_webhook_secrets_the_table_no_longer_holds() {
        register_webhook_secret("db2", "whsec_resync_gone_03");
        register_webhook_secret("db3", "whsec_other_db_05");
        let mark = resync_mark();
        // Created while the resync read the table: kept.
        register_webhook_secret("db2", "whsec_created_during_06");
        replace_webhook_secrets("db2", mark, ["whsec_resync_kept_04"]);
        assert_eq!(scrub("whsec_created_during_06"), "***");
        assert_eq!(scrub("whsec_resync_gone_03"), "whsec_resync_gone_03");
        assert_eq!(scrub("whsec_resync_kept_04"), "***");
        assert_eq!(scrub("whsec_other_db_05"), "***", "another database's stay");
    }

    #[test]
    fn short_values_are_not_registered() {
        register_secret("ab");
        assert_eq!(scrub("a cab ab"), "a cab ab");
    }
}
