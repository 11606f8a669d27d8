//! What a healthchecks.io ping URL names, and how it is resolved to the
//! heartbeat whose token the group-commit writer (`crate::monitor::ping`) keys
//! its batches by.
//!
//! A UUID is resolved through [`UuidTokens`], an in-memory map filled on first
//! use: a heartbeat's `ping_uuid` and token never change, so a known UUID costs
//! no database round trip on top of the ping's own batch, and `/ping/<uuid>`
//! keeps the throughput of `/hb/<token>` (docs/decisions.md §23). A stale entry
//! (the heartbeat was deleted) only names a token the writer no longer finds,
//! which answers 404 and drops the entry. Slug URLs are looked up per ping: a
//! rename changes the slug.

use std::collections::HashMap;
use std::sync::RwLock;

use deadpool_postgres::Pool;
use uuid::Uuid;

use crate::monitor::heartbeat::{self, CreateError, HeartbeatToken, NewHeartbeat};
use crate::monitor::ping::{parse_suffix, PingKind, PingUrlError};

/// A `/ping/...` URL, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PingAddress {
    /// `/ping/<uuid>[/<suffix>]`.
    Uuid(Uuid),
    /// `/ping/<hb_token>[/<suffix>]`, the `/hb/` alias.
    Token(HeartbeatToken),
    /// `/ping/<ping_key>/<slug>[/<suffix>]`.
    Slug { ping_key: String, slug: String },
}

/// The URL's path after the prefix, split at `/`, read as an address and the
/// kind of ping (with its exit status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedPing {
    pub address: PingAddress,
    pub kind: PingKind,
    pub exit_code: Option<i32>,
}

/// Why a ping URL names no ping, in healthchecks.io's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HcUrlError {
    /// An exit status above 255, or a slug with characters outside a-z, 0-9,
    /// `-`, `_` (an uppercase slug).
    #[error("invalid url format")]
    InvalidFormat,
    /// A malformed `?rid=`.
    #[error("invalid uuid format")]
    InvalidRid,
    /// A path no ping URL has (an unknown suffix, too many segments).
    #[error("not found")]
    NotFound,
}

impl From<PingUrlError> for HcUrlError {
    fn from(e: PingUrlError) -> Self {
        match e {
            PingUrlError::BadSuffix => HcUrlError::InvalidFormat,
            PingUrlError::BadRid => HcUrlError::InvalidRid,
        }
    }
}

/// `s` as a UUID in the one form healthchecks.io's URLs take: 36 characters,
/// lowercase hex with hyphens (its `<uuid:...>` routes and its rid check).
/// Other forms `Uuid::try_parse` reads (no hyphens, uppercase, braces) name
/// no check there: a URL with one is a 404, a rid a 400.
pub fn canonical_uuid(s: &str) -> Option<Uuid> {
    let b = s.as_bytes();
    let shaped = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        });
    shaped.then(|| Uuid::try_parse(s).ok()).flatten()
}

/// The `rid` query parameter of a healthchecks.io ping URL, if any; one not in
/// the canonical form ([`canonical_uuid`]) is `invalid uuid format`.
pub fn parse_hc_rid(query: Option<&str>) -> Result<Option<Uuid>, HcUrlError> {
    let Some(query) = query else { return Ok(None) };
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix("rid=") {
            return canonical_uuid(value)
                .map(Some)
                .ok_or(HcUrlError::InvalidRid);
        }
    }
    Ok(None)
}

/// A ping key is the project's 22 URL-safe characters; a slug is a-z, 0-9,
/// `-` and `_` (healthchecks.io's slug pattern).
fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// An exit status or a named suffix. An all-digit suffix above 255 is
/// healthchecks.io's 400 `invalid url format`; any other unknown word is a
/// path it does not serve (404).
fn suffix(s: Option<&str>) -> Result<(PingKind, Option<i32>), HcUrlError> {
    match s {
        None | Some("") => Ok((PingKind::Success, None)),
        Some(w) if w.bytes().all(|b| b.is_ascii_digit()) => {
            parse_suffix(Some(w)).map_err(HcUrlError::from)
        }
        Some(w) => parse_suffix(Some(w)).map_err(|_| HcUrlError::NotFound),
    }
}

/// Reads the segments after the prefix (`["<uuid>", "start"]`, ...). A trailing
/// slash gives an empty last segment, which means a success.
pub fn parse_path(segments: &[&str]) -> Result<ParsedPing, HcUrlError> {
    let (address, rest) = match segments {
        [first, rest @ ..] => {
            if let Some(uuid) = canonical_uuid(first) {
                (PingAddress::Uuid(uuid), rest)
            } else if let Some(token) = HeartbeatToken::parse(first) {
                (PingAddress::Token(token), rest)
            } else {
                match rest {
                    [slug, rest @ ..] if !slug.is_empty() => {
                        if !is_slug(slug) {
                            return Err(HcUrlError::InvalidFormat);
                        }
                        let address = PingAddress::Slug {
                            ping_key: first.to_string(),
                            slug: slug.to_string(),
                        };
                        (address, rest)
                    }
                    _ => return Err(HcUrlError::NotFound),
                }
            }
        }
        [] => return Err(HcUrlError::NotFound),
    };
    let (kind, exit_code) = match rest {
        [] => suffix(None)?,
        [s] => suffix(Some(s))?,
        [s, ""] if !s.is_empty() => suffix(Some(s))?,
        _ => return Err(HcUrlError::NotFound),
    };
    Ok(ParsedPing {
        address,
        kind,
        exit_code,
    })
}

/// Whether the query asks a slug URL to create its missing check (`create=1`).
pub fn wants_create(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|p| p == "create=1"))
}

/// Most UUIDs remembered; past it the map starts afresh (each entry is then
/// looked up once more).
const UUIDS_KEPT: usize = 100_000;

/// `ping_uuid` → token, filled on first use (see the module docs).
#[derive(Default)]
pub struct UuidTokens {
    /// Read on every `/ping/<uuid>`, written once per UUID: a read-write lock
    /// keeps readers from queueing behind each other.
    map: RwLock<HashMap<Uuid, HeartbeatToken>>,
}

impl UuidTokens {
    /// The token of the heartbeat whose `ping_uuid` is `uuid`; None when none.
    pub async fn resolve(
        &self,
        pool: &Pool,
        uuid: Uuid,
    ) -> Result<Option<HeartbeatToken>, LookupError> {
        if let Some(t) = self.map.read().expect("not poisoned").get(&uuid) {
            return Ok(Some(t.clone()));
        }
        let client = pool.get().await?;
        let row = client
            .query_opt(
                "SELECT token FROM heartbeat.heartbeat WHERE ping_uuid = $1",
                &[&uuid],
            )
            .await?;
        let Some(token) = row.and_then(|r| HeartbeatToken::parse(r.get(0))) else {
            return Ok(None);
        };
        let mut map = self.map.write().expect("not poisoned");
        if map.len() >= UUIDS_KEPT {
            map.clear();
        }
        map.insert(uuid, token.clone());
        Ok(Some(token))
    }

    /// Drops `uuid`, whose token the writer no longer found.
    pub fn forget(&self, uuid: Uuid) {
        self.map.write().expect("not poisoned").remove(&uuid);
    }
}

/// The database could not answer a lookup.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// What a slug URL names.
#[derive(Debug)]
pub enum SlugTarget {
    /// One heartbeat has the slug.
    Found(HeartbeatToken),
    /// Created by `?create=1`.
    Created(HeartbeatToken),
    /// No project has the ping key, or (without `create`) no heartbeat the slug,
    /// or the project is past twice its limit.
    NotFound,
    /// Two or more heartbeats share the slug.
    Ambiguous,
}

/// Resolves `ping_key` + `slug`, creating a missing heartbeat when `create`.
///
/// A created heartbeat is named after its slug, with healthchecks.io's
/// defaults (a period of a day, an hour's grace). As healthchecks.io documents
/// for auto-provisioning, creation may go past the project's limit up to twice
/// it; past that the URL answers like a missing check.
pub async fn resolve_slug(
    pool: &Pool,
    ping_key: &str,
    slug: &str,
    create: bool,
    limit: i64,
) -> Result<SlugTarget, LookupError> {
    let mut client = pool.get().await?;
    let rows = client
        .query(
            "SELECT h.token FROM heartbeat.heartbeat h
             JOIN heartbeat.project p ON p.project_id = h.project_id
             WHERE p.ping_key = $1 AND h.slug = $2 LIMIT 2",
            &[&ping_key, &slug],
        )
        .await?;
    match rows.as_slice() {
        [one] => {
            return Ok(HeartbeatToken::parse(one.get(0))
                .map(SlugTarget::Found)
                .unwrap_or(SlugTarget::NotFound))
        }
        [_, _, ..] => return Ok(SlugTarget::Ambiguous),
        [] if !create => return Ok(SlugTarget::NotFound),
        [] => {}
    }
    let Some(project) = client
        .query_opt(
            "SELECT project_id FROM heartbeat.project WHERE ping_key = $1",
            &[&ping_key],
        )
        .await?
    else {
        return Ok(SlugTarget::NotFound);
    };
    let project_id: Uuid = project.get(0);
    let new = NewHeartbeat {
        name: slug.to_string(),
        slug: Some(slug.to_string()),
        period_seconds: Some(86_400),
        schedule: None,
        tz: "UTC".into(),
        grace_seconds: 3_600,
        paused: false,
        channels: None,
        thresholds: Default::default(),
        tags: Vec::new(),
        limits: Default::default(),
        parents: Vec::new(),
    };
    let id = match heartbeat::create(&mut client, project_id, &new, limit.saturating_mul(2)).await {
        Ok(id) => id,
        Err(CreateError::Limit { .. }) => return Ok(SlugTarget::NotFound),
        // A heartbeat already holds the name but has another slug: the slug URL
        // cannot tell which one the caller means.
        Err(CreateError::NameTaken(_)) => return Ok(SlugTarget::Ambiguous),
        Err(CreateError::Db(e)) => return Err(e.into()),
    };
    let row = client
        .query_one(
            "SELECT token FROM heartbeat.heartbeat WHERE heartbeat_id = $1",
            &[&id],
        )
        .await?;
    Ok(HeartbeatToken::parse(row.get(0))
        .map(SlugTarget::Created)
        .unwrap_or(SlugTarget::NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278";

    #[test]
    fn uuid_urls_take_every_suffix_and_a_trailing_slash() {
        let uuid = Uuid::parse_str(U).unwrap();
        let p = parse_path(&[U]).unwrap();
        assert_eq!(p.address, PingAddress::Uuid(uuid));
        assert_eq!(p.kind, PingKind::Success);
        assert_eq!(parse_path(&[U, ""]).unwrap().kind, PingKind::Success);
        assert_eq!(parse_path(&[U, "start"]).unwrap().kind, PingKind::Start);
        assert_eq!(parse_path(&[U, "fail"]).unwrap().kind, PingKind::Fail);
        assert_eq!(parse_path(&[U, "log"]).unwrap().kind, PingKind::Log);
        let p = parse_path(&[U, "0"]).unwrap();
        assert_eq!((p.kind, p.exit_code), (PingKind::Success, Some(0)));
        let p = parse_path(&[U, "255"]).unwrap();
        assert_eq!((p.kind, p.exit_code), (PingKind::Fail, Some(255)));
        assert_eq!(parse_path(&[U, "256"]), Err(HcUrlError::InvalidFormat));
        assert_eq!(parse_path(&[U, "nope"]), Err(HcUrlError::NotFound));
    }

    #[test]
    fn slug_urls_need_a_lowercase_slug() {
        let p = parse_path(&["abcdefghijklmnopqrstuv", "db-backup_1", "start"]).unwrap();
        assert_eq!(
            p.address,
            PingAddress::Slug {
                ping_key: "abcdefghijklmnopqrstuv".into(),
                slug: "db-backup_1".into()
            }
        );
        assert_eq!(p.kind, PingKind::Start);
        assert_eq!(
            parse_path(&["abcdefghijklmnopqrstuv", "Backup"]),
            Err(HcUrlError::InvalidFormat)
        );
        assert_eq!(
            parse_path(&["abcdefghijklmnopqrstuv"]),
            Err(HcUrlError::NotFound)
        );
    }

    #[test]
    fn only_the_canonical_uuid_form_names_a_check_or_a_run() {
        assert!(canonical_uuid(U).is_some());
        for other in [
            "5bf66975d4c74bf5bcc8b8d8a82ea278",
            "5BF66975-D4C7-4BF5-BCC8-B8D8A82EA278",
            "{5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278}",
            "urn:uuid:5bf66975-d4c7-4bf5-bcc8-b8d8a82ea278",
            "684e2e73-017e-465f-8149-d70b7c5aaa490",
            "12345",
        ] {
            assert_eq!(canonical_uuid(other), None, "{other}");
            assert_eq!(
                parse_hc_rid(Some(&format!("rid={other}"))),
                Err(HcUrlError::InvalidRid),
                "{other}"
            );
        }
        // Not a UUID in the canonical form, so not a check: a path it does not serve.
        assert_eq!(
            parse_path(&["5bf66975d4c74bf5bcc8b8d8a82ea278"]),
            Err(HcUrlError::NotFound)
        );
        assert_eq!(
            parse_hc_rid(Some(&format!("rid={U}")))
                .unwrap()
                .unwrap()
                .to_string(),
            U
        );
        assert_eq!(parse_hc_rid(None), Ok(None));
    }

    #[test]
    fn create_is_asked_with_create_1_only() {
        assert!(wants_create(Some("create=1")));
        assert!(wants_create(Some("rid=x&create=1")));
        assert!(!wants_create(Some("create=0")));
        assert!(!wants_create(None));
    }
}
