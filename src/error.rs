//! The one API error type and its mapping to HTTP.
//!
//! Client errors carry a status, a stable machine `code` and a message naming the
//! problem; they are logged at debug. Everything else becomes one 500 (or 503 when
//! the database is unreachable) with a generic body, and the detail is logged once
//! by [`log_internal_errors`], not inside `into_response`, so handlers never log.
//!
//! The envelope is `{"error": {"code": "...", "message": "..."}}` (see docs/api.md).

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;

/// Every way an API call can fail.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The caller's fault: bad input, unknown id, conflict.
    #[error("{message}")]
    Client {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// The database could not be reached; clients should retry.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The daemon is shutting down and takes no new work.
    #[error("shutting down")]
    ShuttingDown,
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    /// Anything else that is our fault.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn client(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Client {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::client(StatusCode::NOT_FOUND, "not_found", message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::client(StatusCode::CONFLICT, "conflict", message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::client(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::client(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// True when the underlying failure is a lost or refused database connection,
    /// which the caller should retry rather than treat as a bug.
    fn is_connection_failure(&self) -> bool {
        match self {
            ApiError::Unavailable(_) => true,
            ApiError::Pool(_) => true,
            ApiError::Db(e) => e.is_closed() || e.as_db_error().is_none(),
            _ => false,
        }
    }
}

/// Marks a response as carrying an internal error, so the logging middleware can
/// log the detail that the body deliberately hides.
#[derive(Clone, Debug)]
pub struct InternalErrorDetail(pub String);

/// Writes the envelope body.
pub fn envelope(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Client {
                status,
                code,
                message,
            } => {
                tracing::debug!(status = status.as_u16(), code, message, "client error");
                envelope(*status, code, message)
            }
            ApiError::ShuttingDown => envelope(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the daemon is shutting down; retry against another node or after restart",
            ),
            _ if self.is_connection_failure() => {
                let mut resp = envelope(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "database_unavailable",
                    "the database is unreachable; retry shortly",
                );
                resp.extensions_mut()
                    .insert(InternalErrorDetail(self.to_string()));
                resp
            }
            _ => {
                let mut resp = envelope(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the daemon's log",
                );
                resp.extensions_mut()
                    .insert(InternalErrorDetail(format!("{self:?}")));
                resp
            }
        }
    }
}

/// Logs the hidden detail of 5xx responses, once, in one place.
pub async fn log_internal_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    // A `Uri` clone shares its bytes; the path is only formatted when logged.
    let uri = req.uri().clone();
    let resp = next.run(req).await;
    if let Some(InternalErrorDetail(detail)) = resp.extensions().get::<InternalErrorDetail>() {
        let path = uri.path();
        tracing::error!(%method, %path, status = resp.status().as_u16(), error = %detail, "request failed");
    }
    resp
}

/// The message of every 405 the envelope carries.
pub const METHOD_NOT_ALLOWED: &str = "this route does not accept that method";

/// Turns any error response that is not already JSON (axum's own rejections for a
/// bad path or query, 405, 413 from the body limit) into the envelope, so no route
/// ever answers an error in plain text.
pub async fn ensure_json_errors(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_input",
        s if s.is_client_error() => "bad_request",
        _ => "internal",
    };
    let message = if status == StatusCode::METHOD_NOT_ALLOWED {
        METHOD_NOT_ALLOWED.to_string()
    } else if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("error")
            .to_ascii_lowercase()
    } else {
        text
    };
    let mut out = envelope(status, code, &message);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

impl From<JsonRejection> for ApiError {
    fn from(rej: JsonRejection) -> Self {
        let status = rej.status();
        let code = match rej {
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            JsonRejection::JsonSyntaxError(_) => "malformed_json",
            JsonRejection::JsonDataError(_) => "invalid_input",
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            _ => "bad_request",
        };
        ApiError::client(status, code, rej.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rej: PathRejection) -> Self {
        ApiError::client(StatusCode::NOT_FOUND, "not_found", rej.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rej: QueryRejection) -> Self {
        ApiError::client(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_query",
            rej.body_text(),
        )
    }
}

/// `Json` that answers a malformed body with our envelope instead of axum's text,
/// and takes only a JSON object at the top level (serde would otherwise read a
/// struct from an array, so `[]` would pass as "all defaults").
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // Checked for syntax as raw text, then read straight into `T`: no
        // intermediate `Value` tree on the request path.
        let axum::Json(raw) =
            axum::Json::<Box<serde_json::value::RawValue>>::from_request(req, state).await?;
        json_object(raw.get()).map(ApiJson)
    }
}

/// Reads a JSON body already checked for syntax into `T`, as every JSON route
/// does: a NUL anywhere is refused naming its field, the top level must be an
/// object, and a field of the wrong shape is 422 `invalid_input`.
pub fn json_object<T: serde::de::DeserializeOwned>(raw: &str) -> ApiResult<T> {
    // PostgreSQL text cannot hold a NUL, and no field of this API needs one.
    // The cheap test on the raw text can also hit an escaped backslash
    // followed by `u0000`; only a real NUL, found in the parsed tree, refuses.
    if raw.contains("\\u0000") {
        if let Some(field) = nul_field(raw) {
            return Err(ApiError::unprocessable(
                "invalid_input",
                format!("{field}: must not contain NUL (\\u0000)"),
            ));
        }
    }
    // serde would read a top-level array as a struct's fields in order, so `[]`
    // would silently mean all defaults.
    if !raw.starts_with('{') {
        return Err(ApiError::unprocessable(
            "invalid_input",
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_str(raw)
        .map_err(|e| ApiError::unprocessable("invalid_input", format!("invalid body: {e}")))
}

/// Where in `json` a string (or a key) holds a NUL: the dotted path of the
/// field, such as `name` or `metric_ids[2]`, or `None` when there is none.
fn nul_field(json: &str) -> Option<String> {
    fn walk(value: &serde_json::Value, path: &str) -> Option<String> {
        match value {
            serde_json::Value::String(s) if s.contains('\0') => Some(path.to_string()),
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, v)| walk(v, &format!("{path}[{i}]"))),
            serde_json::Value::Object(map) => map.iter().find_map(|(k, v)| {
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if k.contains('\0') {
                    Some(format!("{} (a field name)", here.escape_default()))
                } else {
                    walk(v, &here)
                }
            }),
            _ => None,
        }
    }
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    walk(&value, "").map(|p| if p.is_empty() { "body".into() } else { p })
}

/// Field readers for request bodies, used with `#[serde(deserialize_with)]`.
pub mod fields {
    use serde::{Deserialize, Deserializer};

    /// An optional integer that also takes an integral float such as `1046.0`:
    /// JSON Schema (and so the OpenAPI document) counts it as an integer, and
    /// JSON has one number type. `1046.5` and anything outside `i32` are refused.
    /// Use with `#[serde(default)]`; `null` is absent.
    pub fn integral_i32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Number {
            Int(i64),
            Float(f64),
        }
        let out_of_range = || serde::de::Error::custom("expected a whole number within i32");
        match Option::<Number>::deserialize(d)? {
            None => Ok(None),
            Some(Number::Int(n)) => i32::try_from(n).map(Some).map_err(|_| out_of_range()),
            Some(Number::Float(f)) => {
                if f.fract() == 0.0 && f >= f64::from(i32::MIN) && f <= f64::from(i32::MAX) {
                    Ok(Some(f as i32))
                } else {
                    Err(out_of_range())
                }
            }
        }
    }

    /// A string that may be left out but not sent as `null`, for fields where
    /// null means nothing (a name is never null). Use with `#[serde(default)]`.
    pub fn non_null_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        String::deserialize(d).map(Some)
    }
}

/// The pattern, in the OpenAPI document, of a text field the server trims and
/// refuses when nothing is left: at least one character that is not white
/// space as Rust's `str::trim` counts it (the Unicode `White_Space` set,
/// spelled out because regex engines disagree on `\s`), and no NUL anywhere
/// (refused by [`ApiJson`]).
pub const NOT_BLANK_PATTERN: &str = "^[^\\u0000]*[^\\u0000\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000][^\\u0000]*$";

/// The pattern of any other free text field: no NUL (refused by [`ApiJson`]).
pub const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `Query` that answers bad parameters with our envelope (422).
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// The query of a route that takes no parameters: any is refused (422
/// `invalid_query`) rather than ignored, so a mistyped filter is not silently
/// dropped. Use as `_: ApiQuery<NoQuery>`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

/// The error envelope every JSON route answers with on failure
/// ([`envelope`] writes it).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// The inside of [`ErrorEnvelope`].
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_input`.
    #[schema(example = "not_found")]
    pub code: String,
    /// What is wrong, in words naming the problem.
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;
