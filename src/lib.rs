//! Heartbeat: keeps a metrics dashboard fresh on a clock and makes silent cron
//! failures impossible.
//!
//! # Layout
//!
//! - [`clock`]: the one wall-clock trait, injectable so tests move time.
//! - [`config`]: the one configuration struct; flags over env over TOML.
//! - [`error`]: the API error type and its single mapping to HTTP + JSON envelope.
//! - [`db`]: the connection pool, versioned migrations, and the embedded PostgreSQL
//!   cluster used when no `DATABASE_URL` is given (shared with the test harness).
//! - [`state`]: the handles every HTTP handler shares (loops get deps structs).
//! - [`jobs`]: the single-flight jobs engine (lanes, coalescing, phases, timeouts),
//!   and the PostgreSQL coordination that makes it single-flight across nodes.
//! - [`schedule`]: the cron table (Vixie semantics), its tick loop and catch-up.
//! - [`refresh`]: ingest sources, incremental metric compute, μ/σ benchmarks, and
//!   the cockpit API over them (the `recompute` and `benchmarks` lanes' work).
//! - [`segments`]: the daily client tier snapshot (job body + API).
//! - [`audit`]: audit-cut files → registry → JSON snapshots (job body + API).
//! - [`http`]: the router, assembled from each area's routes, plus the probes.
//! - [`dashboard`]: the operator page at `/`, embedded in the binary (no CDN, no build).
//! - [`mcp`]: the MCP server at `/mcp`: tools for AI agents over the REST API.
//! - [`background`]: starts every background loop under one shutdown token.
//! - [`demo`]: in demo mode, fills the cockpit, tiers and audit cuts at start-up.
//! - [`auth`]: projects, API keys, and the `Caller` every `/api` handler is given.
//! - [`monitor`]: the dead man's switch: heartbeats, pings, deadline loop, alerts.
//! - [`app`]: `Application::build` / `run_until_stopped`, the start-up sequence.
//! - [`cli`]: client verbs of the binary (`refresh`) that talk to a daemon.
//! - [`telemetry`]: log setup (text or JSON), written through the secret redactor.
//! - [`ops`]: Prometheus `/metrics`, systemd notify + watchdog, self-ping, log
//!   redaction, loop liveness.
//! - [`retention`]: the `[retention]` policy and the batched deletes the
//!   `maintenance` lane runs, so tables that grow with time stay bounded.
//! - [`panic`]: what a caught panic said (HTTP handlers and job bodies).
//! - [`openapi`]: the OpenAPI 3.1 document at `/api/openapi.json`.

pub mod app;
pub mod audit;
pub mod auth;
pub mod background;
pub mod cli;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod db;
pub mod demo;
pub mod error;
pub mod http;
pub mod jobs;
pub mod mcp;
pub mod monitor;
pub mod openapi;
pub mod ops;
pub mod panic;
pub mod refresh;
pub mod retention;
pub mod schedule;
pub mod segments;
pub mod state;
pub mod telemetry;
