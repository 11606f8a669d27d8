//! Heartbeat: keeps a metrics dashboard fresh on a clock and makes silent cron
//! failures impossible.
//!
//! # Layout
//!
//! In layer order, as in `docs/architecture.md`: each module may use those above it,
//! never one below. Each area's domain files know no HTTP; its `routes.rs` is the edge.
//!
//! Leaves:
//! - [`clock`]: the one wall-clock trait, injectable so tests move time.
//! - [`panic`]: what a caught panic said (HTTP handlers and job bodies).
//! - [`config`]: `ConfigError` (the leaf every section imports) and the one
//!   configuration struct; flags over env over TOML.
//! - [`bundled_definitions`]: the demo's metric and cut files and `heartbeat init`'s
//!   examples, embedded in the binary.
//! - [`db`]: the connection pool, versioned migrations, and the embedded PostgreSQL
//!   cluster used when no `DATABASE_URL` is given (shared with the test harness).
//!
//! Domain:
//! - [`jobs`]: the single-flight jobs engine (lanes, coalescing, phases, timeouts),
//!   and the PostgreSQL coordination that makes it single-flight across nodes.
//! - [`refresh`]: ingest sources, incremental metric compute, μ/σ benchmarks, and
//!   the cockpit queries (the `recompute` and `benchmarks` lanes' work).
//! - [`segments`]: the daily client tier snapshot (job body + API).
//! - [`audit`]: audit-cut files → registry → JSON snapshots (job body + API).
//! - [`schedule`]: the cron table (Vixie semantics), its tick loop and catch-up.
//! - [`ops`]: the Prometheus recorder, systemd notify + watchdog, self-ping, log
//!   redaction, loop liveness.
//! - [`auth`]: projects, API keys, and who is calling.
//! - [`monitor`]: the dead man's switch: heartbeats, pings, deadline loop, alerts.
//! - [`retention`]: the `[retention]` policy and the batched deletes the
//!   `maintenance` lane runs, so tables that grow with time stay bounded.
//! - [`notify`]: channels (webhooks, HTTP templates, presets, email) and the
//!   delivery worker that sends the alert outbox to them.
//! - [`hc`]: healthchecks.io compatibility: its ping URLs and Management API over
//!   the monitor's heartbeats.
//!
//! Edge:
//! - [`error`]: the API error type and its single mapping to HTTP + JSON envelope.
//! - [`state`]: the handles every HTTP handler shares (loops get deps structs).
//! - [`dashboard`]: the operator page at `/`, embedded in the binary (no CDN, no build).
//! - [`mcp`]: the MCP server at `/mcp`: tools for AI agents over the REST API.
//! - [`openapi`]: the OpenAPI 3.1 document at `/api/openapi.json`.
//! - [`http`]: the router, assembled from each area's routes, plus the probes.
//!
//! Assembly:
//! - [`demo`]: in demo mode, fills the cockpit, tiers and audit cuts at start-up.
//! - [`background`]: waits for the schema once, then starts every background loop.
//! - [`app`]: `Application::build` / `run_until_stopped`, the start-up sequence.
//! - [`telemetry`]: log setup (text or JSON), written through the secret redactor.
//! - [`cli`]: client verbs of the binary that talk to a daemon.

pub mod app;
pub mod audit;
pub mod auth;
pub mod background;
pub mod bundled_definitions;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod demo;
pub mod error;
pub mod hc;
pub mod http;
pub mod jobs;
pub mod mcp;
pub mod monitor;
pub mod notify;
pub mod openapi;
pub mod ops;
pub mod panic;
pub mod refresh;
pub mod retention;
pub mod schedule;
pub mod segments;
pub mod state;
pub mod telemetry;
