//! The OpenAPI document covers the router, both ways:
//! - documented routes are registered with `routes!(handler, ...)` on an
//!   `OpenApiRouter`, which takes path and methods from the handler's
//!   `#[utoipa::path]`, so they are in the document by construction; every other
//!   route is a plain `.route("path", method(...))`, and each of those declared
//!   anywhere under `src/` must have an operation in `/api/openapi.json` or be
//!   listed, with its reason, in `NOT_IN_SPEC`;
//! - every operation in the document reaches a handler in the running router
//!   (not the "no such route" fallback, not 405).
//!
//! The first direction reads the plain route declarations from the source because
//! an axum `Router` cannot list its routes; every such route in this crate is
//! declared with `.route(` and a string literal, and the area routers are mounted
//! either at the root or under `/api`, so a declared path `p` is covered by `p` or
//! `/api{p}`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::helpers::spawn_app;

/// Routes deliberately left out of the document, with the reason.
const NOT_IN_SPEC: &[(&str, &str)] = &[
    // The dashboard is an HTML page for people, not an API.
    ("GET", "/"),
    // Its scripts and stylesheet, embedded in the binary.
    ("GET", "/assets/app.js"),
    ("GET", "/assets/schedule.js"),
    ("GET", "/assets/badges.js"),
    ("GET", "/assets/channels.js"),
    ("GET", "/assets/segments.js"),
    ("GET", "/assets/heartbeat_detail.js"),
    ("GET", "/assets/job_stream.js"),
    ("GET", "/assets/detection.js"),
    ("GET", "/assets/tags.js"),
    ("GET", "/assets/style.css"),
];

const METHODS: [&str; 6] = ["get", "post", "put", "patch", "delete", "head"];

/// (METHOD, path) of every `.route(...)` call in the crate's source.
fn declared_routes() -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (method, route) in routes_in(&text) {
                    found.insert((method, route));
                }
            }
        }
    }
    found
}

/// Parses `.route("path", get(a).post(b))` calls, across lines.
fn routes_in(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(".route(") {
        let args_start = i + ".route(".len();
        let args = &rest[args_start..];
        // The call's arguments end at the matching close paren.
        let mut depth = 1;
        let mut end = args.len();
        for (j, c) in args.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let call = &args[..end];
        rest = &args[end..];
        let Some(open) = call.find('"') else { continue };
        let Some(close) = call[open + 1..].find('"') else {
            continue;
        };
        let path = &call[open + 1..open + 1 + close];
        let handlers = &call[open + 2 + close..];
        for method in METHODS {
            let needle = format!("{method}(");
            let mut from = 0;
            while let Some(k) = handlers[from..].find(&needle) {
                let at = from + k;
                let before = handlers[..at].chars().last();
                if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    out.push((method.to_uppercase(), path.to_string()));
                }
                from = at + needle.len();
            }
        }
    }
    out
}

fn spec_operations(spec: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[test]
fn the_route_scanner_reads_chained_methods() {
    let text = r#"Router::new()
        .route("/jobs/{key}", get(get_job).post(post_job))
        .route(
            "/hb/{token}",
            get(ping).post(ping).head(ping),
        )
        .route("/budget", post(set_budget))"#;
    let found = routes_in(text);
    assert!(found.contains(&("GET".into(), "/jobs/{key}".into())));
    assert!(found.contains(&("POST".into(), "/jobs/{key}".into())));
    assert!(found.contains(&("HEAD".into(), "/hb/{token}".into())));
    assert!(found.contains(&("POST".into(), "/budget".into())));
    assert!(!found.iter().any(|(m, p)| m == "GET" && p == "/budget"));
}

#[tokio::test]
async fn every_route_in_the_router_appears_in_the_openapi_document() {
    let app = spawn_app().await;
    let (status, spec) = app.get_json("/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3.1"));
    let ops = spec_operations(&spec);

    let declared = declared_routes();
    assert!(
        declared.contains(&("GET".into(), "/assets/app.js".into())),
        "the scanner finds the plain (dashboard) routes: {declared:?}"
    );
    assert!(
        !declared.iter().any(|(_, p)| p.starts_with("/api/")),
        "every /api route is registered with routes!, so it is documented: {declared:?}"
    );
    let mut missing = Vec::new();
    for (method, path) in declared {
        if NOT_IN_SPEC.contains(&(method.as_str(), path.as_str())) {
            continue;
        }
        // HEAD is served by every GET route in axum; a declared HEAD is covered
        // when its GET is documented.
        let covered = |p: &str| {
            ops.contains(&(method.clone(), p.to_string()))
                || (method == "HEAD" && ops.contains(&("GET".to_string(), p.to_string())))
        };
        if !covered(&path) && !covered(&format!("/api{path}")) {
            missing.push(format!("{method} {path}"));
        }
    }
    assert!(
        missing.is_empty(),
        "routes without an operation in /api/openapi.json (annotate the handler with \
         #[utoipa::path] and register it with `.routes(routes!(handler))` on the area's \
         OpenApiRouter instead of `.route(...)`): {missing:#?}"
    );

    let schemas = &spec["components"]["schemas"];
    assert!(
        schemas["ErrorEnvelope"].is_object(),
        "the error envelope is a schema"
    );
}

#[tokio::test]
async fn every_operation_in_the_openapi_document_reaches_a_handler() {
    let app = spawn_app().await;
    let (_, spec) = app.get_json("/api/openapi.json").await;
    let mut unrouted = Vec::new();
    for (method, path) in spec_operations(&spec) {
        // Path parameters get a value no handler knows: the handler answers its
        // own 404 or 422, which is not the router's fallback.
        let concrete = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "00000000-0000-7000-8000-000000000000"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let resp = app
            .client
            .request(method.parse().unwrap(), app.url(&concrete))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let fallback =
            status == 405 || (status == 404 && body["error"]["message"] == "no such route");
        if fallback {
            unrouted.push(format!("{method} {path} -> {status}"));
        }
    }
    assert!(
        unrouted.is_empty(),
        "operations the router does not serve: {unrouted:#?}"
    );
}

#[tokio::test]
async fn the_document_describes_request_and_response_schemas_of_jobs() {
    let app = spawn_app().await;
    let (_, spec) = app.get_json("/api/openapi.json").await;
    let post = &spec["paths"]["/api/metrics/recompute"]["post"];
    assert!(post["requestBody"].is_object(), "{post}");
    assert_eq!(
        post["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Submitted"
    );
    assert_eq!(
        post["responses"]["422"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorEnvelope"
    );
    let job = &spec["components"]["schemas"]["Job"]["properties"];
    for field in [
        "job_id",
        "kind",
        "trigger",
        "scope",
        "state",
        "phase",
        "phases",
        "progress",
        "created_at",
        "started_at",
        "finished_at",
        "error",
        "coalesced_requests",
        "node",
    ] {
        assert!(job[field].is_object(), "Job.{field} missing: {job}");
    }
}

/// Follows a `$ref` into `components/schemas`.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected $ref {r}"));
            let found = &spec["components"]["schemas"][name];
            assert!(found.is_object(), "{r} is not in components/schemas");
            found
        }
        None => schema,
    }
}

/// A schema that says nothing about its fields: `{"type": "object"}` with no
/// properties, and not a composition or map of something described.
fn is_bare_object(spec: &Value, schema: &Value) -> bool {
    let s = resolve(spec, schema);
    let is_object = s["type"] == "object" || (s.get("type").is_none() && s.get("$ref").is_none());
    let described = [
        "properties",
        "allOf",
        "oneOf",
        "anyOf",
        "additionalProperties",
    ]
    .iter()
    .any(|k| s.get(*k).is_some_and(|v| v != &Value::Bool(true)))
        || s.get("enum").is_some()
        || s.get("items").is_some();
    is_object && !described
}

#[tokio::test]
async fn no_route_describes_its_json_body_as_a_bare_object() {
    let app = spawn_app().await;
    let (_, spec) = app.get_json("/api/openapi.json").await;
    let mut bare = Vec::new();
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let mut bodies = Vec::new();
            for (status, resp) in op["responses"].as_object().unwrap() {
                if status.starts_with('2') {
                    bodies.push((format!("{status} response"), &resp["content"]));
                }
            }
            bodies.push(("request body".to_string(), &op["requestBody"]["content"]));
            for (what, content) in bodies {
                let Some(content) = content.as_object() else {
                    continue;
                };
                for (media, body) in content {
                    if !media.contains("json") {
                        continue;
                    }
                    checked += 1;
                    if is_bare_object(&spec, &body["schema"]) {
                        bare.push(format!("{} {path} {what}", method.to_uppercase()));
                    }
                }
            }
        }
    }
    assert!(checked >= 20, "only {checked} JSON bodies found: {spec}");
    assert!(
        bare.is_empty(),
        "JSON bodies described as a bare object (give them a utoipa::ToSchema type): {bare:#?}"
    );
    // The monitor's, cockpit's, segments' and audit's types name their fields.
    let schemas = &spec["components"]["schemas"];
    for (schema, field) in [
        ("HeartbeatView", "next_deadline"),
        ("HeartbeatCreate", "period_seconds"),
        ("HeartbeatPatch", "period_seconds"),
        ("WebhookView", "has_secret"),
        ("MetricSummary", "band"),
        ("SegmentDay", "counts"),
        ("CutSnapshot", "rows"),
        ("Ready", "schema_version"),
    ] {
        assert!(
            schemas[schema]["properties"][field].is_object(),
            "{schema}.{field} missing: {}",
            schemas[schema]
        );
    }
}

#[test]
fn a_bare_object_schema_is_recognised_and_a_described_one_is_not() {
    let spec = serde_json::json!({"components": {"schemas": {
        "Typed": {"type": "object", "properties": {"a": {"type": "string"}}},
        "Bare": {"type": "object"}
    }}});
    let bare = |s: Value| is_bare_object(&spec, &s);
    assert!(bare(serde_json::json!({"type": "object"})));
    assert!(bare(
        serde_json::json!({"$ref": "#/components/schemas/Bare"})
    ));
    assert!(bare(serde_json::json!({})));
    assert!(!bare(
        serde_json::json!({"$ref": "#/components/schemas/Typed"})
    ));
    assert!(!bare(serde_json::json!({"type": "string"})));
    assert!(!bare(
        serde_json::json!({"oneOf": [{"type": "null"}, {"type": "string"}]})
    ));
}
