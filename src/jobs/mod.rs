//! The single-flight jobs engine: one lane per kind, coalescing, phases, timeouts.
//!
//! - [`model`]: kinds, scopes, triggers, the job record (the API's job JSON).
//! - [`body`]: the pluggable work a lane runs, and the context it reports through.
//! - [`engine`]: the gate: lanes, coalescing, follow-ups, timeouts, retention.
//! - [`live`]: a job's live record and its numbered event log.
//! - [`follow`]: a job's events as a stream, on whichever node runs it.
//! - [`error`]: why the engine refused or could not answer a request.
//! - [`cluster`]: lane advisory locks, the fence, the shared job tables (many nodes).
//! - [`config`]: the `[jobs]` section (max runtimes, retention, node id).
//! - [`probe`]: a diagnostic body that records its interval (overlap detector).
//! - [`routes`]: `/api/metrics/recompute*`, `/api/metrics/active-job`, `/api/jobs*`.

pub mod body;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod error;
pub mod follow;
pub mod live;
pub mod model;
pub mod probe;
pub mod range;
pub mod routes;

pub use body::{JobBodies, JobBody, JobContext, JobError};
pub use engine::{Engine, JobRequest, LaneStats, Submitted};
pub use error::EngineError;
pub use live::{JobEvent, JobEventKind};
pub use model::{Job, JobKind, JobState, Scope, Trigger};
