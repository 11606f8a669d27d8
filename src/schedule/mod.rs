//! The internal clock: a cron table whose ticks go through the jobs engine's gate.
//!
//! - [`cron`]: `CronSchedule`, a crontab expression with exact Vixie semantics.

pub mod cron;

pub use cron::{CronError, CronSchedule};
