//! Projects, API keys and who is calling (DESIGN §7).
//!
//! Open mode (no admin key configured): every `/api` route works without a key and
//! acts on the project `default` with admin rights; the config layer has already
//! refused any non-loopback bind. Keyed mode: every `/api` route needs
//! `Authorization: Bearer <key>`, either the admin key or a project key. Project
//! keys are stored as SHA-256 digests (they are 192 random bits, so a slow hash
//! buys nothing) and every comparison is constant time.
//!
//! [`require_key`] is applied as one layer over the whole `/api` nest, so routes
//! from every area are covered: any valid key may read (GET/HEAD); writing needs a
//! read-write project key or the admin key. Handlers that own per-project data take
//! the [`Caller`] extractor and scope their queries by `caller.project_id`.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// The project every route acts on in open mode (created by migration 0001).
pub const DEFAULT_PROJECT: Uuid = Uuid::from_u128(1);

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The configured admin key, or anyone in open mode: manages projects.
    Admin,
    ReadWrite,
    ReadOnly,
}

impl Role {
    fn from_db(s: &str) -> Option<Self> {
        match s {
            "read_write" => Some(Role::ReadWrite),
            "read_only" => Some(Role::ReadOnly),
            _ => None,
        }
    }

    pub fn can_write(self) -> bool {
        !matches!(self, Role::ReadOnly)
    }
}

/// The authenticated caller: the project its key belongs to, and its role. The
/// admin key acts on `default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub project_id: Uuid,
    pub role: Role,
}

/// Who every caller is when no admin key is configured (loopback-only open mode).
pub const OPEN_MODE_CALLER: Caller = Caller {
    project_id: DEFAULT_PROJECT,
    role: Role::Admin,
};

impl Caller {
    /// 403 unless the caller holds the admin key (or the daemon is in open mode).
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("this route needs the admin key"))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().copied().ok_or_else(|| {
            ApiError::Internal("Caller extractor used on a route outside the auth layer".into())
        })
    }
}

/// Middleware over `/api` (and `/mcp`): identifies the caller, refuses a missing or
/// unknown key with 401 and a write by a read-only key with 403, and hands the
/// [`Caller`] to handlers through request extensions.
pub async fn require_key(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let caller = match identify(&state, presented.as_deref()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let reading = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !reading && !caller.role.can_write() {
        return ApiError::forbidden("this key is read-only").into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

pub async fn identify(state: &AppState, authorization: Option<&str>) -> Result<Caller, ApiError> {
    let Some(admin_key) = state.config.admin_key.as_deref() else {
        return Ok(OPEN_MODE_CALLER);
    };
    let presented = authorization
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| ApiError::unauthorized("send the key as `Authorization: Bearer <key>`"))?;
    let digest = key_digest(presented);
    if bool::from(digest.ct_eq(&key_digest(admin_key))) {
        return Ok(Caller {
            project_id: DEFAULT_PROJECT,
            role: Role::Admin,
        });
    }
    let client = state.pool.get().await?;
    let row = client
        .query_opt(
            "SELECT project_id, role, key_hash FROM heartbeat.api_key WHERE key_hash = $1",
            &[&digest.as_slice()],
        )
        .await?;
    // The lookup is by digest; the explicit constant-time check keeps the
    // comparison honest whatever the index does.
    let found = row.and_then(|r| {
        let stored: Vec<u8> = r.get(2);
        let role: String = r.get(1);
        bool::from(stored.ct_eq(digest.as_slice()))
            .then(|| Role::from_db(&role))
            .flatten()
            .map(|role| Caller {
                project_id: r.get(0),
                role,
            })
    });
    found.ok_or_else(|| ApiError::unauthorized("unknown key"))
}

fn key_digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new random key: `hbk_` and 32 URL-safe base64 characters (192 bits).
fn generate_key() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "hbk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// A freshly created project with its keys, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedProject {
    pub project_id: Uuid,
    pub name: String,
    /// Bearer key that may read and write the project (stored hashed; shown once).
    pub read_write_key: String,
    /// Bearer key that may only read the project (stored hashed; shown once).
    pub read_only_key: String,
}

/// Creates a project with one read-write and one read-only key.
pub async fn create_project(
    client: &mut deadpool_postgres::Client,
    name: &str,
) -> Result<CreatedProject, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(ApiError::unprocessable(
            "invalid_input",
            "name: must be 1 to 100 characters",
        ));
    }
    let project_id = Uuid::now_v7();
    let read_write_key = generate_key();
    let read_only_key = generate_key();
    let tx = client.transaction().await?;
    let inserted = tx
        .execute(
            "INSERT INTO heartbeat.project (project_id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&project_id, &name],
        )
        .await?;
    if inserted == 0 {
        return Err(ApiError::conflict(format!(
            "a project named '{name}' already exists"
        )));
    }
    for (key, role) in [
        (&read_write_key, "read_write"),
        (&read_only_key, "read_only"),
    ] {
        tx.execute(
            "INSERT INTO heartbeat.api_key (key_id, project_id, role, key_hash) VALUES ($1, $2, $3, $4)",
            &[&Uuid::now_v7(), &project_id, &role, &key_digest(key).as_slice()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(CreatedProject {
        project_id,
        name: name.to_string(),
        read_write_key,
        read_only_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_distinct() {
        let a = generate_key();
        assert_eq!(a.len(), 4 + 32);
        assert_ne!(a, generate_key());
    }

    #[test]
    fn only_read_only_keys_cannot_write() {
        assert!(Role::Admin.can_write());
        assert!(Role::ReadWrite.can_write());
        assert!(!Role::ReadOnly.can_write());
    }
}
