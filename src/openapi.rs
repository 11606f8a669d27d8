//! The OpenAPI 3.1 document served at `GET /api/openapi.json`.
//!
//! The document comes from the router: every area's `routes()` returns a
//! [`utoipa_axum::router::OpenApiRouter`] whose routes are registered with
//! `routes!(handler, ...)`, which takes each path and method from the handler's
//! `#[utoipa::path]`. `crate::http` merges them onto [`base`] and splits router and
//! document once, so no route can exist without its operation, and the document
//! served is that split's. What is not an area's lives here: info, the bearer
//! security scheme, the error envelope schemas, the tag descriptions, and the
//! route serving the document itself.

use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};
use utoipa::openapi::OpenApi as Document;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{ApiError, ApiQuery, NoQuery};
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

/// The parts that are not an area's: info, the envelope and the tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Heartbeat",
        description = "Keeps a metrics dashboard fresh on a clock and makes silent cron failures impossible. \
            Errors are JSON `{\"error\": {\"code\", \"message\"}}` with a 4xx for the caller's fault. \
            In keyed mode every /api route needs `Authorization: Bearer <key>`."
    ),
    components(schemas(crate::error::ErrorEnvelope, crate::error::ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "probes", description = "Liveness, readiness and Prometheus metrics; never need a key."),
        (name = "jobs", description = "The single-flight jobs engine."),
        (name = "schedule", description = "The internal cron table."),
        (name = "heartbeats", description = "Dead man's switch: heartbeats, their pings and flips."),
        (name = "silences", description = "Maintenance windows and snoozes: status changes are recorded, alerts withheld."),
        (name = "channels", description = "Where alerts go: webhooks, HTTP templates, presets, email."),
        (name = "webhooks", description = "Signed JSON webhooks (channels of kind webhook)."),
        (name = "projects", description = "Projects and their keys."),
        (name = "pings", description = "Public ping URLs (no key); plain-text answers for cron clients."),
        (name = "healthchecks.io pings", description = "healthchecks.io-compatible ping URLs (no key; plain-text answers). See docs/healthchecks-compat.md."),
        (name = "healthchecks.io management API", description = "healthchecks.io's Management API (X-Api-Key), answering in its `{\"error\": \"...\"}` format. See docs/healthchecks-compat.md."),
    )
)]
struct BaseApi;

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

/// The router every area's routes are merged onto: it carries the base
/// document, which the areas' operations are added to.
pub fn base<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    let mut doc = BaseApi::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    OpenApiRouter::with_openapi(doc)
}

/// The document as served, filled in once the router is split from it (the
/// route serving it is part of that router, so it cannot hold it at creation).
#[derive(Clone, Default)]
pub struct ServedDocument(Arc<OnceLock<Bytes>>);

impl ServedDocument {
    /// Serializes `doc` once; later requests only clone the bytes.
    pub fn set(&self, doc: &Document) {
        let json = serde_json::to_vec(&exact(doc)).expect("the OpenAPI document serializes");
        let _ = self.0.set(Bytes::from(json));
    }
}

/// The answers every operation of a family can give whatever its handler does,
/// added to each operation here so that no annotation can forget one: the edge
/// (auth layer, `ApiQuery`, `ApiJson`, the body limit, the pool) answers them
/// before or around the handler. An annotation's own entry for a status wins
/// (its description is more precise). Also: operation ids unique per method, and
/// the links a stateful client (or fuzzer) follows from a created resource to
/// the operations on it.
pub fn exact(doc: &Document) -> Value {
    let mut doc = serde_json::to_value(doc).expect("the OpenAPI document serializes");
    let Some(paths) = doc["paths"].as_object_mut() else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        let methods: Vec<String> = item.keys().cloned().collect();
        let shared_id = methods.len() > 1 && {
            let ids: Vec<_> = methods.iter().map(|m| &item[m]["operationId"]).collect();
            ids.windows(2).any(|w| w[0] == w[1])
        };
        for method in methods {
            let op = &mut item[&method];
            if shared_id {
                // `method(get, post, head)` shares one operation; ids must be unique.
                if let Some(id) = op["operationId"].as_str() {
                    let mut m = method.clone();
                    m[..1].make_ascii_uppercase();
                    op["operationId"] = Value::String(format!("{id}{m}"));
                }
            }
            if OPTIONAL_BODY.contains(&op["operationId"].as_str().unwrap_or_default()) {
                op["requestBody"]["required"] = Value::Bool(false);
            }
            let json_body = op["requestBody"]["content"]
                .get("application/json")
                .is_some();
            let keyed = op["security"].to_string().contains("bearer");
            // healthchecks.io's Management API answers its own errors, in its
            // own format, before any of the edge's (crate::hc::api_routes).
            let hc = path.starts_with("/api/{version}/");
            let mut add = |status: &str, description: &str| {
                let responses = op["responses"].as_object_mut().expect("responses");
                responses
                    .entry(status)
                    .or_insert_with(|| envelope(description));
            };
            if path.starts_with("/api/") && !hc {
                if keyed {
                    add(
                        "401",
                        "Keyed mode: no key, or an unknown or revoked one (`unauthorized`)",
                    );
                }
                if method != "get" && method != "head" || path == "/api/projects" {
                    add("403", "Keyed mode: the key may not do this: a read-only key writing, or a project key on an admin route (`forbidden`)");
                }
                add("422", "An unknown or malformed query parameter (`invalid_query`) or field (`invalid_input`), named in the message");
                add("503", "The database is unreachable or the daemon is shutting down; retry (`database_unavailable`, `shutting_down`)");
            }
            if path == "/metrics" {
                add(
                    "422",
                    "A query string: this route takes none (`invalid_query`)",
                );
            }
            if json_body && !hc {
                add("400", "The body is not JSON (`malformed_json`)");
                add(
                    "413",
                    "The body is larger than the daemon's body limit (`payload_too_large`)",
                );
                add(
                    "415",
                    "No `Content-Type: application/json` (`unsupported_media_type`)",
                );
                add("422", "A field is missing, unknown, of the wrong type or invalid (`invalid_input`), named in the message");
            }
        }
    }
    for (path, method, status, links) in LINKS {
        let Some(response) = doc["paths"][*path][*method]["responses"].get_mut(*status) else {
            panic!("a link starts at {method} {path} {status}, which the document lacks");
        };
        let mut map = serde_json::Map::new();
        for (operation_id, params) in *links {
            let parameters: serde_json::Map<String, Value> = params
                .iter()
                .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
                .collect();
            map.insert(
                operation_id.to_string(),
                json!({"operationId": operation_id, "parameters": parameters}),
            );
        }
        response["links"] = Value::Object(map);
    }
    doc
}

/// Operations whose JSON body may be left out (no body means the defaults); the
/// annotation cannot say so without also allowing a JSON `null`, which is refused.
const OPTIONAL_BODY: &[&str] = &["submitJob", "submitRecompute", "pauseScheduleEntry"];

/// The envelope answer for `description`.
fn envelope(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}
    })
}

type Link = (&'static str, &'static [(&'static str, &'static str)]);

/// From a created resource (or a submitted job) to the operations on it:
/// (path, method, status, [(operationId, [(parameter, runtime expression)])]).
const LINKS: &[(&str, &str, &str, &[Link])] = &[
    (
        "/api/heartbeats",
        "post",
        "201",
        &[
            ("getHeartbeat", &[("id", "$response.body#/id")]),
            ("updateHeartbeat", &[("id", "$response.body#/id")]),
            ("deleteHeartbeat", &[("id", "$response.body#/id")]),
            ("listHeartbeatPings", &[("id", "$response.body#/id")]),
            ("listHeartbeatFlips", &[("id", "$response.body#/id")]),
            ("listHeartbeatEvents", &[("id", "$response.body#/id")]),
        ],
    ),
    (
        "/api/webhooks",
        "post",
        "201",
        &[("deleteWebhook", &[("id", "$response.body#/id")])],
    ),
    (
        "/api/metrics/recompute",
        "post",
        "202",
        &[
            ("getRecompute", &[("id", "$response.body#/job_id")]),
            ("getJob", &[("key", "$response.body#/job_id")]),
            ("cancelJob", &[("id", "$response.body#/job_id")]),
        ],
    ),
    (
        "/api/jobs/{key}",
        "post",
        "202",
        &[
            ("getJob", &[("key", "$response.body#/job_id")]),
            ("cancelJob", &[("id", "$response.body#/job_id")]),
        ],
    ),
];

/// `GET /api/openapi.json`, serving `served`.
pub fn routes(served: ServedDocument) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .layer(Extension(served))
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/openapi.json", operation_id = "getOpenApiDocument",
    tag = "probes",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = DocumentShape, content_type = "application/json"))
)]
async fn openapi_json(
    Extension(served): Extension<ServedDocument>,
    _: ApiQuery<NoQuery>,
) -> Response {
    match served.0.get() {
        Some(json) => ([(header::CONTENT_TYPE, "application/json")], json.clone()).into_response(),
        None => ApiError::Internal("the OpenAPI document was never set".into()).into_response(),
    }
}

#[cfg(test)]
mod tests {
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
