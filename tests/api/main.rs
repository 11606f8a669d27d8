//! The one integration-test binary: every test talks to a real PostgreSQL and a
//! real HTTP listener on a random loopback port.

mod helpers;

mod audit;
mod cli_contract;
mod cli_refresh;
mod cluster;
mod dashboard;
mod dashboard_channels;
mod detection;
mod first_hour;
mod foundation;
mod hc_api;
mod hc_ping;
mod jobs;
mod layout;
mod mcp;
mod mcp_channels;
mod monitor;
mod monitor_alerts;
mod monitor_auth;
mod notify_channels;
mod notify_delivery;
mod notify_digest;
mod notify_email;
mod notify_presets;
mod ops_daemon;
mod ops_metrics;
mod ops_openapi;
mod refresh_compute;
mod refresh_ingest;
mod refresh_jobs;
mod refresh_support;
mod reliability_crash;
mod reliability_defs;
mod reliability_embedded;
mod reliability_fuzz;
mod reliability_input;
mod reliability_pg;
mod retention;
mod schedule;
mod segments;
