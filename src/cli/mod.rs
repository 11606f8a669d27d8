//! Client verbs of the binary: they talk to a running daemon over HTTP.

pub mod exit;
pub mod refresh;
pub mod schedule;
pub mod sse;
