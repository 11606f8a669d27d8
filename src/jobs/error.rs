//! Why the engine refused or could not answer a request. Domain words only: the
//! HTTP edge (`jobs::routes`) maps each variant to a status once, and the tick loop
//! decides on [`EngineError::ShuttingDown`] itself.

use uuid::Uuid;

use super::model::JobState;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The daemon is shutting down and takes no new work.
    #[error("shutting down")]
    ShuttingDown,
    /// The lane's coordination could not be reached or read (lock connection,
    /// another node's job not visible yet); the caller should retry.
    #[error("{0}")]
    Unavailable(String),
    /// No job with this id is known here or published by a live node.
    #[error("no job {0}")]
    NotFound(Uuid),
    /// The job to cancel has already finished.
    #[error("job {id} already finished ({state:?})")]
    AlreadyFinished { id: Uuid, state: JobState },
    /// The job to cancel ended (or moved) between the read and the cancel.
    #[error("job {0} is no longer running")]
    NoLongerRunning(Uuid),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
}
