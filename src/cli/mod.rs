//! Client verbs of the binary: they talk to a running daemon over HTTP.

pub mod refresh;
pub mod schedule;
