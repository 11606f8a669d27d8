//! Wakes the delivery worker when any node writes alerts, so an alert flipped
//! by another node's deadline loop is claimed at once instead of at this
//! node's next poll.
//!
//! The deadline loop's transaction that writes alerts also notifies
//! [`ALERTS_CHANNEL`]; PostgreSQL delivers that to every listening session when
//! (and only if) the transaction commits. Each node keeps one connection
//! outside the pool listening on it, and wakes its worker on every
//! notification. A lost connection is reconnected with backoff; after each
//! (re)connection the worker is woken once, so alerts written while nobody
//! listened are not left to the poll.
//! The poll (`delivery_interval_ms`) stays as the fallback: a notification is
//! a hint to look now, never the only way an alert is found
//! (docs/decisions.md §30).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_util::sync::CancellationToken;

pub use crate::monitor::deadline::ALERTS_CHANNEL;

/// How the listening session shows in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "heartbeat alert listener";

/// The first wait before reconnecting; doubles per failed attempt.
const RECONNECT_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two reconnection attempts.
const RECONNECT_MAX: Duration = Duration::from_secs(30);
/// TCP keepalive idle time, so a connection that died silently (no reset) is
/// noticed and replaced.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// What the listener needs.
pub struct ListenDeps {
    /// The database to listen on: the connection string the pool uses.
    pub database_url: Arc<str>,
    /// The delivery worker's wake-up, shared with this node's deadline loop.
    pub alerts_written: Arc<Notify>,
    pub shutdown: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error("the server closed the connection")]
    Closed,
}

/// Listens until shutdown, reconnecting whenever the connection is lost.
pub async fn listen(deps: ListenDeps) {
    let mut wait = RECONNECT_FIRST;
    loop {
        let mut listening = false;
        match session(&deps, &mut listening).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(
                error = %e,
                retry_in_ms = wait.as_millis() as u64,
                "the alert listener lost its connection; alerts from other nodes wait for the poll until it is back"
            ),
        }
        if listening {
            wait = RECONNECT_FIRST;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = deps.shutdown.cancelled() => return,
        }
        if !listening {
            wait = (wait * 2).min(RECONNECT_MAX);
        }
    }
}

/// One connection's life: connect, `LISTEN`, wake once, then wake on every
/// notification. Ok on shutdown; `listening` says whether `LISTEN` succeeded.
async fn session(deps: &ListenDeps, listening: &mut bool) -> Result<(), ListenError> {
    let mut pg: tokio_postgres::Config = deps.database_url.parse().map_err(ListenError::Db)?;
    pg.application_name(APPLICATION_NAME)
        .connect_timeout(Duration::from_secs(5))
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE);
    let (client, mut connection) = tokio::select! {
        c = pg.connect(NoTls) => c?,
        _ = deps.shutdown.cancelled() => return Ok(()),
    };
    // Notifications arrive on the connection, which must be polled for the
    // `LISTEN` below to complete as well.
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let statement = format!("LISTEN {ALERTS_CHANNEL}");
    let listen = client.batch_execute(&statement);
    tokio::pin!(listen);
    loop {
        tokio::select! {
            done = &mut listen => {
                done?;
                break;
            }
            message = messages.next() => match message {
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ListenError::Closed),
            },
            _ = deps.shutdown.cancelled() => return Ok(()),
        }
    }
    *listening = true;
    tracing::debug!("alert listener connected");
    // Whatever was written while nobody listened is claimed now.
    deps.alerts_written.notify_one();
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(_))) => deps.alerts_written.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ListenError::Closed),
            },
            _ = deps.shutdown.cancelled() => return Ok(()),
        }
    }
}
