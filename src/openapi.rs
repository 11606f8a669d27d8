//! The OpenAPI 3.1 document served at `GET /api/openapi.json`.
//!
//! Each area declares its own `#[derive(OpenApi)]` struct next to its routes,
//! listing its `#[utoipa::path]`-annotated handlers, and [`document`] merges them.
//! The annotations sit on the handlers, so a changed route or body type changes
//! the spec; `tests/api/ops_openapi.rs` fails when a route in the router has no
//! operation in the spec, or an operation names a route the router lacks.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::openapi::OpenApi as Document;
use utoipa::{OpenApi, ToSchema};

use crate::error::ApiQuery;
use crate::state::AppState;

/// The top level of the document `GET /api/openapi.json` serves, for the spec
/// only: the handler returns utoipa's own type, whose parts the OpenAPI 3.1
/// specification defines.
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(as = OpenApiDocument)]
struct DocumentShape {
    /// `3.1.x`.
    openapi: String,
    /// Title, description and this daemon's version.
    #[schema(value_type = Object)]
    info: (),
    /// Every operation, by path and method.
    #[schema(value_type = Object)]
    paths: (),
    /// Schemas and the `bearer` security scheme.
    #[schema(value_type = Object)]
    components: (),
}

/// The parts that are not an area's: info, the envelope, probes, `/metrics`, and
/// this document itself.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Heartbeat",
        description = "Keeps a metrics dashboard fresh on a clock and makes silent cron failures impossible. \
            Errors are JSON `{\"error\": {\"code\", \"message\"}}` with a 4xx for the caller's fault. \
            In keyed mode every /api route needs `Authorization: Bearer <key>`."
    ),
    paths(
        crate::http::health::healthz,
        crate::http::health::readyz,
        metrics_doc,
        openapi_json,
    ),
    components(schemas(crate::error::ErrorEnvelope, crate::error::ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "probes", description = "Liveness, readiness and Prometheus metrics; never need a key."),
        (name = "jobs", description = "The single-flight jobs engine."),
    )
)]
struct CoreApi;

/// Declares the `bearer` security scheme keyed routes use.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole document: the core plus every area's part.
pub fn document() -> Document {
    let mut doc = CoreApi::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.merge(crate::jobs::routes::JobsApi::openapi());
    doc.merge(crate::schedule::routes::ScheduleApi::openapi());
    doc.merge(crate::monitor::routes::MonitorApi::openapi());
    doc.merge(crate::notify::routes::NotifyApi::openapi());
    doc.merge(crate::monitor::ping_routes::PingApi::openapi());
    doc.merge(crate::refresh::routes::CockpitApi::openapi());
    doc.merge(crate::segments::routes::SegmentsApi::openapi());
    doc.merge(crate::audit::routes::AuditApi::openapi());
    doc
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi_json))
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "probes",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = DocumentShape, content_type = "application/json"))
)]
async fn openapi_json(_: ApiQuery<crate::error::NoQuery>) -> Json<Document> {
    Json(document())
}

/// `GET /metrics` is served by [`crate::ops::routes::metrics_route`]; this
/// function only carries its annotation (the handler takes `State`, which the
/// annotation cannot describe any better).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "probes",
    responses((status = 200, description = "Prometheus text exposition format (version 0.0.4)", body = String, content_type = "text/plain"))
)]
#[allow(dead_code)]
fn metrics_doc() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1() {
        let json = serde_json::to_value(document()).unwrap();
        assert!(
            json["openapi"].as_str().unwrap().starts_with("3.1"),
            "{json}"
        );
    }

    #[tokio::test]
    async fn the_envelope_schema_matches_what_errors_write() {
        let resp = crate::error::envelope(axum::http::StatusCode::NOT_FOUND, "not_found", "x");
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let typed = serde_json::to_value(crate::error::ErrorEnvelope {
            error: crate::error::ErrorBody {
                code: "not_found".into(),
                message: "x".into(),
            },
        })
        .unwrap();
        assert_eq!(value, typed);
    }
}
