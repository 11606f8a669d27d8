//! Project keys: how they are made, stored and found. Keys are stored as SHA-256
//! digests (they are 192 random bits, so a slow hash buys nothing) and every
//! comparison is constant time.

use base64::Engine as _;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::{AuthError, Caller, Role};

/// The stored form of a key.
pub(super) fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// A new random key: `hbk_` and 32 URL-safe base64 characters (192 bits).
fn generate() -> String {
    let mut bytes = [0u8; 24];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "hbk_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

const LOOKUP_SQL: &str =
    "SELECT project_id, role, key_hash FROM heartbeat.api_key WHERE key_hash = $1";

/// The project key whose digest is `digest`, as a caller; `None` when unknown.
pub(super) async fn lookup(
    client: &tokio_postgres::Client,
    digest: &[u8; 32],
) -> Result<Option<Caller>, tokio_postgres::Error> {
    let row = client.query_opt(LOOKUP_SQL, &[&digest.as_slice()]).await?;
    // The lookup is by digest; the explicit constant-time check keeps the
    // comparison honest whatever the index does.
    Ok(row.and_then(|r| {
        let stored: Vec<u8> = r.get(2);
        let role: String = r.get(1);
        bool::from(stored.ct_eq(digest.as_slice()))
            .then(|| Role::from_db(&role))
            .flatten()
            .map(|role| Caller {
                project_id: r.get(0),
                role,
            })
    }))
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
    /// The secret half of `/ping/{ping_key}/{slug}` URLs (not a key: it only pings).
    pub ping_key: String,
}

/// Creates a project with one read-write and one read-only key.
pub async fn create_project(
    client: &mut deadpool_postgres::Client,
    name: &str,
) -> Result<CreatedProject, AuthError> {
    // Counted in characters as given, as the OpenAPI document's `maxLength` does.
    let trimmed = name.trim();
    if trimmed.is_empty() || name.chars().count() > 100 {
        return Err(AuthError::InvalidName);
    }
    let name = trimmed;
    let project_id = Uuid::now_v7();
    let read_write_key = generate();
    let read_only_key = generate();
    let tx = client.transaction().await?;
    let inserted = tx
        .query_opt(
            "INSERT INTO heartbeat.project (project_id, name) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
             RETURNING ping_key",
            &[&project_id, &name],
        )
        .await?;
    let Some(inserted) = inserted else {
        return Err(AuthError::DuplicateName(name.to_string()));
    };
    let ping_key: String = inserted.get(0);
    for (key, role) in [
        (&read_write_key, "read_write"),
        (&read_only_key, "read_only"),
    ] {
        tx.execute(
            "INSERT INTO heartbeat.api_key (key_id, project_id, role, key_hash) VALUES ($1, $2, $3, $4)",
            &[&Uuid::now_v7(), &project_id, &role, &digest(key).as_slice()],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(CreatedProject {
        project_id,
        name: name.to_string(),
        read_write_key,
        read_only_key,
        ping_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_distinct() {
        let a = generate();
        assert_eq!(a.len(), 4 + 32);
        assert_ne!(a, generate());
    }
}
