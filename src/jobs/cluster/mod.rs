//! Many nodes, one flight: PostgreSQL coordinates the engine's replicas
//! (docs/operations/cluster.md). Part of `jobs` because only the engine
//! uses it; the scheduler's tick claim lives in `schedule::claim`.
//!
//! - [`lane_lock`]: a session advisory lock per lane on a dedicated connection,
//!   watched while the job runs, plus the fence job transactions take.
//! - [`registry`]: the UNLOGGED tables where nodes publish running jobs and share
//!   each lane's queued follow-up.
//!
//! No home-made consensus: whoever holds a lane's lock runs its job; a node's death
//! closes its connection, which frees its locks at once.

pub mod lane_lock;
pub mod registry;

pub use lane_lock::LaneLock;
