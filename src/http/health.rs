//! Liveness and readiness probes, for whatever supervises the daemon (systemd,
//! a load balancer, an orchestrator): `/healthz` says the process serves HTTP;
//! `/readyz` says this daemon can do its work (database reachable, schema at this
//! binary's version, its own start-up done), so a rolling deploy waits for it
//! (docs/api.md, "Probes").

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::db::migrate;
use crate::state::AppState;

/// `GET /healthz`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Healthy {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// `GET /readyz` when ready.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Ready {
    /// Always `ready`.
    #[schema(example = "ready")]
    status: &'static str,
    /// The newest migration applied, which is this binary's.
    schema_version: i32,
}

/// 200 while the process runs and serves HTTP.
#[utoipa::path(get, path = "/healthz", operation_id = "getHealthz", tag = "probes",
    responses((status = 200, description = "The process serves HTTP", body = Healthy)))]
pub async fn healthz() -> Response {
    Json(Healthy { status: "ok" }).into_response()
}

/// 200 only when this daemon has finished starting (migrations applied, ping
/// history fitted to `pings_kept`), the database answers and the schema is at
/// this binary's version;
/// otherwise 503 with the reason.
#[utoipa::path(get, path = "/readyz", operation_id = "getReadyz", tag = "probes",
    responses(
        (status = 200, description = "Database reachable and schema current", body = Ready),
        (status = 503, description = "Not ready; `reason` says why", body = crate::error::ErrorEnvelope),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match check(&state).await {
        Ok(version) => Json(Ready {
            status: "ready",
            schema_version: version,
        })
        .into_response(),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": reason,
                        "error": {"code": "not_ready", "message": reason}})),
        )
            .into_response(),
    }
}

async fn check(state: &AppState) -> Result<i32, String> {
    if state.shutdown.is_cancelled() {
        return Err("shutting down".into());
    }
    let client = state.pool.get().await.map_err(|e| {
        format!(
            "database unreachable: {}",
            crate::db::explain_pool(&e, &state.database_url)
        )
    })?;
    let pending = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        migrate::pending_versions(&client),
    )
    .await
    .map_err(|_| "database did not answer within 3 s".to_string())?
    .map_err(|e| {
        format!(
            "database error: {}",
            crate::db::explain(&e, &state.database_url)
        )
    })?;
    match pending {
        // This daemon's own start-up (migrations, then fitting the ping history
        // to `pings_kept`) must be done too: another daemon may have migrated.
        Some(p) if p.is_empty() && !*state.migrated.borrow() => {
            Err("starting: the ping history is being fitted to pings_kept".into())
        }
        Some(p) if p.is_empty() => Ok(migrate::latest_version()),
        Some(p) => Err(format!("migrations pending: {p:?}")),
        None => Err("migrations pending: schema missing".to_string()),
    }
}
