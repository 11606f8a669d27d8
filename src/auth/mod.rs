//! Who is calling, and what they may do: projects, their API keys, and the
//! admin key. The rules are written down in `docs/api.md` (Authentication).
//!
//! Open mode (no admin key configured): every `/api` route works without a key and
//! acts on the project `default` with admin rights; the config layer has already
//! refused any non-loopback bind. Keyed mode: every `/api` route needs
//! `Authorization: Bearer <key>`, either the admin key or a project key.
//!
//! This module is the domain and knows no HTTP; [`routes`] is the edge.
//!
//! - [`keys`]: key generation, hashing and lookup, and project creation.
//! - [`routes`]: the [`Caller`] extractor, the `require_key` layer over `/api`, and
//!   the mapping of [`AuthError`] to the API's error envelope.

pub mod keys;
pub mod routes;

use serde::Serialize;
use subtle::ConstantTimeEq;
use uuid::Uuid;

pub use keys::{create_project, CreatedProject};

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
    /// Refused unless the caller holds the admin key (or the daemon is in open mode).
    pub fn require_admin(&self) -> Result<(), AuthError> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(AuthError::NotAdmin)
        }
    }

    /// Refused when the caller's key may only read.
    pub fn require_write(&self) -> Result<(), AuthError> {
        if self.role.can_write() {
            Ok(())
        } else {
            Err(AuthError::ReadOnly)
        }
    }
}

/// Why a caller was refused, or a project not created. Mapped to HTTP statuses by
/// one `From` impl in [`routes`].
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Keyed mode, and no bearer key was sent.
    #[error("send the key as `Authorization: Bearer <key>`")]
    MissingKey,
    /// The key is neither the admin key nor a stored project key.
    #[error("unknown key")]
    UnknownKey,
    /// A read-only key asked to write.
    #[error("this key is read-only")]
    ReadOnly,
    /// A project key asked for an admin-only action.
    #[error("this route needs the admin key")]
    NotAdmin,
    /// A project name that is empty or too long.
    #[error("name: must be 1 to 100 characters, not only white space")]
    InvalidName,
    /// Project names are unique.
    #[error("a project named '{0}' already exists")]
    DuplicateName(String),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}

/// Who presents `key` (the bearer key, `None` when none was sent) to a daemon
/// whose admin key is `admin_key` (`None`: open mode, everyone is admin).
pub async fn identify(
    pool: &deadpool_postgres::Pool,
    admin_key: Option<&str>,
    key: Option<&str>,
) -> Result<Caller, AuthError> {
    let Some(admin_key) = admin_key else {
        return Ok(OPEN_MODE_CALLER);
    };
    let presented = key.ok_or(AuthError::MissingKey)?;
    let digest = keys::digest(presented);
    if bool::from(digest.ct_eq(&keys::digest(admin_key))) {
        return Ok(Caller {
            project_id: DEFAULT_PROJECT,
            role: Role::Admin,
        });
    }
    let client = pool.get().await?;
    keys::lookup(&client, &digest)
        .await?
        .ok_or(AuthError::UnknownKey)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_keys_cannot_write() {
        assert!(Role::Admin.can_write());
        assert!(Role::ReadWrite.can_write());
        assert!(!Role::ReadOnly.can_write());
        assert!(OPEN_MODE_CALLER.require_write().is_ok());
    }

    #[test]
    fn only_the_admin_passes_require_admin() {
        assert!(OPEN_MODE_CALLER.require_admin().is_ok());
        let project = Caller {
            project_id: DEFAULT_PROJECT,
            role: Role::ReadWrite,
        };
        assert!(matches!(project.require_admin(), Err(AuthError::NotAdmin)));
    }
}
