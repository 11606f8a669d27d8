//! The HTTP edge of [`crate::auth`]: reading the bearer key from a request, the
//! [`require_key`] layer, the [`Caller`] extractor, and how an [`AuthError`]
//! answers.
//!
//! [`require_key`] is applied as one layer over the whole `/api` nest, so routes
//! from every area are covered: any valid key may read (GET/HEAD); writing needs a
//! read-write project key or the admin key. Handlers that own per-project data take
//! the [`Caller`] extractor and scope their queries by `caller.project_id`.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{AuthError, Caller};
use crate::error::ApiError;
use crate::state::AppState;

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::MissingKey | AuthError::UnknownKey => ApiError::unauthorized(e.to_string()),
            AuthError::ReadOnly | AuthError::NotAdmin => ApiError::forbidden(e.to_string()),
            AuthError::InvalidName => ApiError::unprocessable("invalid_input", e.to_string()),
            AuthError::DuplicateName(_) => ApiError::conflict(e.to_string()),
            AuthError::Pool(e) => ApiError::Pool(e),
            AuthError::Db(e) => ApiError::Db(e),
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

/// The key in an `Authorization: Bearer <key>` header; `None` when there is no
/// such header or the key is blank.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|k| !k.is_empty())
}

/// Who sent a request with these headers, as [`super::identify`] judges it
/// against the daemon's admin key and stored project keys.
pub async fn identify(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let caller = super::identify(
        &state.pool,
        state.config.admin_key.as_deref(),
        bearer(headers),
    )
    .await?;
    Ok(caller)
}

/// Middleware over `/api`: identifies the caller, refuses a missing or unknown key
/// with 401 and a write by a read-only key with 403, and hands the [`Caller`] to
/// handlers through request extensions.
pub async fn require_key(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let caller = match identify(&state, req.headers()).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let reading = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !reading {
        if let Err(e) = caller.require_write() {
            return ApiError::from(e).into_response();
        }
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}
