//! Notifications: the alerts that reach people. A project owns channels (a signed
//! webhook, `http` request templates, presets for chat, incident and issue-tracker
//! services, email); the deadline loop writes one outbox row per transition per
//! routed channel, and the delivery worker here sends them, retried with backoff
//! and kept with every attempt's outcome. How to set up each kind:
//! docs/notifications.md; why it is built this way: docs/decisions.md.
//!
//! Domain files know no HTTP; [`routes`] is the edge, and the worker gets its
//! handles from `crate::background`.
//!
//! - [`channel`]: kinds, config checks, secret masking, channel storage.
//! - [`template`]: `$PLACEHOLDER` templates and escaping by position.
//! - [`preset`]: each service's API as request templates.
//! - [`event`]: what an alert says, as placeholder values.
//! - [`email`]: SMTP delivery (`[notify.smtp]`).
//! - [`outbox`]: the delivery worker, the one consumer of the outbox.
//! - [`wake`]: wakes the worker when any node writes alerts (`LISTEN/NOTIFY`).
//! - [`reminder`]: reminder alerts while a heartbeat stays down.
//! - [`digest`]: the scheduled summary of every heartbeat, and its panel.
//! - [`config`]: the `[notify]` section.
//! - [`routes`]: `/api/channels`, `/api/alerts`, `/api/webhooks`.

pub mod channel;
pub mod config;
pub mod digest;
pub mod email;
pub mod event;
pub mod outbox;
pub mod preset;
pub mod reminder;
pub mod routes;
pub mod template;
pub mod wake;

pub use config::NotifyConfig;
pub use routes::routes;
