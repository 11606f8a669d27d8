//! The single-flight jobs engine: four lanes, coalescing, phases, timeouts.
//!
//! - [`model`]: kinds, scopes, triggers, the job record (the API's job JSON).
//! - [`body`]: the pluggable work a lane runs, and the context it reports through.

pub mod body;
pub mod model;

pub use body::{JobBodies, JobBody, JobContext, JobError};
pub use model::{Job, JobKind, JobState, Scope, Trigger};
