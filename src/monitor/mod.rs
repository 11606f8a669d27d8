//! The dead man's switch: heartbeats that cron jobs ping, a status computed from
//! time, and a deadline loop that flips statuses and writes alerts to an outbox,
//! which `crate::notify` delivers. It exists so a cron job that
//! silently stops running is noticed; the daemon's own jobs are watched the same
//! way. The HTTP contract is in docs/api.md ("Heartbeats", "Pings", "Webhooks and
//! alerts"); why it is built this way, in docs/decisions.md §11, §12, §19, §21.
//!
//! Domain files know no HTTP; the `*routes` files are the edge, and the loops
//! get their handles from `crate::background`.
//!
//! - [`heartbeat`]: the heartbeat record, its token newtype and its API JSON.
//! - [`schedule`]: cron-based expectations (next fire time in the heartbeat's zone).
//! - [`status`]: pure status-from-time logic, with `now` passed in, and the
//!   coarser status the database stores.
//! - [`ping`]: what a ping says, and the group-commit writer that records it.
//! - [`ring`]: the ping history's ring of slots, refitted when `pings_kept` changes.
//! - [`ping_routes`]: the public `/hb/{token}` routes, answered in plain text.
//! - [`routes`]: `/api/heartbeats`, `/api/projects`.
//! - [`deadline`]: the loop that flips statuses at their deadlines.
//! - [`event_log`]: the missed deadlines and timed-out runs the loop counts,
//!   below the failure threshold too, and the listing of every detection event.
//! - [`selfcheck`]: built-in heartbeats for the daemon's own jobs.
//! - [`silence`]: maintenance windows and snoozes that withhold alerts; its
//!   `routes` are `/api/silences` and `/api/heartbeats/{id}/silence`.
//! - [`dependency`]: parents whose being down withholds a child's alerts, and
//!   the cycle check.
//! - [`withhold`]: the deadline loop's decision to send, withhold or release
//!   an alert.
//! - [`client`]: the CLI verbs `status`, `run`, `project create`.
//! - `text_column`: the stored statuses' and states' conversion to `text` columns.

pub mod client;
pub mod deadline;
pub mod dependency;
pub mod event_log;
pub mod heartbeat;
pub mod ping;
pub mod ping_routes;
pub mod ring;
pub mod routes;
pub mod schedule;
pub mod selfcheck;
pub mod silence;
pub mod status;
mod text_column;
pub mod withhold;

pub(crate) use text_column::text_enum;

use std::time::Duration;

use serde::Deserialize;

pub use routes::routes;

/// Most pings a heartbeat's history may keep (`monitor.pings_kept`).
pub const MAX_PINGS_KEPT: i64 = 100_000;

/// The `[monitor]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitorConfig {
    /// Most heartbeats one project may hold; creating one more gets 409.
    pub max_heartbeats_per_project: i64,
    /// A ping's POST body is kept up to this many bytes and truncated past it; the
    /// limit is announced in the `Ping-Body-Limit` response header.
    pub ping_body_limit_bytes: usize,
    /// How many recent pings are kept per heartbeat.
    pub pings_kept: i64,
    /// The base URL ping URLs are built from (as cron clients reach the daemon).
    /// Unset: `http://<bind>`.
    pub public_url: Option<String>,
    /// Run the deadline loop and the delivery worker (`crate::notify::outbox`). Tests switch them off to drive
    /// single iterations with their own clock.
    pub loops: bool,
    /// How often the deadline loop looks for passed deadlines, milliseconds.
    pub deadline_interval_ms: u64,
    /// How often the deadline loop recounts heartbeats per status for the
    /// `heartbeat_heartbeats` gauge, milliseconds. A count reads the whole table,
    /// so it runs less often than the loop itself.
    pub status_count_interval_ms: u64,
    /// How often the delivery worker looks for due alerts, milliseconds.
    pub delivery_interval_ms: u64,
    /// Timeout of one delivery request (webhook, HTTP channel, SMTP session), seconds.
    pub webhook_timeout_secs: u64,
    /// First retry delay after a failed delivery, seconds; doubles per attempt.
    pub retry_base_secs: u64,
    /// Longest delay between two delivery attempts, seconds.
    pub retry_max_secs: u64,
    /// Delivery attempts before an alert is marked failed.
    pub max_delivery_attempts: i32,
    /// Pings written together in one statement, at most.
    pub ping_batch_max: usize,
    /// Ping batches written at the same time, at most (each on its own
    /// connection); see `ping_overlap_min` for when a second one starts.
    pub ping_writers: usize,
    /// While a batch is being written, the next one starts early once this many
    /// pings are queued (else when the first commits). Larger batches share the
    /// statement's fixed cost among more pings.
    pub ping_overlap_min: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        Self {
            max_heartbeats_per_project: 50,
            ping_body_limit_bytes: 16 * 1024,
            pings_kept: 100,
            public_url: None,
            loops: true,
            deadline_interval_ms: 500,
            status_count_interval_ms: 5000,
            delivery_interval_ms: 1000,
            webhook_timeout_secs: 10,
            retry_base_secs: 10,
            retry_max_secs: 3600,
            max_delivery_attempts: 10,
            ping_batch_max: 1000,
            ping_writers: 2,
            ping_overlap_min: 32,
        }
    }
}

impl MonitorConfig {
    /// The ping history ring needs at least one slot (its size is stored as a
    /// 32-bit integer); batches, writers and the overlap threshold at least one.
    pub fn validate(&self) -> Result<(), crate::config::error::ConfigError> {
        use crate::config::error::ConfigError;
        if !(1..=MAX_PINGS_KEPT).contains(&self.pings_kept) {
            return Err(ConfigError::new(
                "monitor.pings_kept",
                format!("must be between 1 and {MAX_PINGS_KEPT}"),
            ));
        }
        if self.ping_batch_max == 0 {
            return Err(ConfigError::new(
                "monitor.ping_batch_max",
                "must be at least 1",
            ));
        }
        if self.ping_writers == 0 {
            return Err(ConfigError::new(
                "monitor.ping_writers",
                "must be at least 1",
            ));
        }
        if self.ping_overlap_min == 0 {
            return Err(ConfigError::new(
                "monitor.ping_overlap_min",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    pub fn webhook_timeout(&self) -> Duration {
        Duration::from_secs(self.webhook_timeout_secs)
    }
}

/// Where the daemon's own job heartbeats live (created by migration 0003).
pub const SYSTEM_PROJECT: uuid::Uuid = uuid::Uuid::from_u128(2);
