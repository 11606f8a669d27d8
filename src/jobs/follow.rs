//! A job's events as a stream, on whichever node runs it (docs/api.md, "Job
//! events").
//!
//! A job this node retains is read from its live record and woken by its log. A
//! job another node owns is read from the shared job table, where the owner
//! republishes its log every second: the ids are the owner's, so a follower that
//! reconnects to any node resumes where it stopped. A follow-up still waiting in
//! the lane's queue has no log yet; its stream says `queued` (id 0) once and
//! waits for it to start. The stream ends after the final state event, when the
//! job vanishes (its owner died, or it aged out of retention), or at shutdown.

use std::collections::VecDeque;
use std::time::Duration;

use futures::Stream;
use tokio::sync::watch;
use uuid::Uuid;

use super::cluster::registry::{self, Found};
use super::engine::Engine;
use super::error::EngineError;
use super::live::JobEvent;
use super::model::Job;

/// How often a follower looks again without being woken: the shared table for a
/// job on another node (its owner republishes every second), and a safety net
/// for a local one (which wakes the follower itself).
const LOOK_EVERY: Duration = Duration::from_millis(250);

/// One look at a job's events.
struct Page {
    events: Vec<JobEvent>,
    /// The whole job, once it has reached a final state.
    finished: Option<Box<Job>>,
    /// The follow-up, while it waits in the queue.
    queued: Option<Job>,
    /// The owner died with the job unfinished: nothing more will come.
    orphaned: bool,
    /// Wakes on the next event of a job this node runs.
    wake: Option<watch::Receiver<u64>>,
}

/// Looks at job `id`'s events after `after`. None if no node knows it. A
/// `following` caller has seen the job already, so it is shown after it ends on
/// another node too (as `GET /api/jobs/{id}` shows it to the node that handed it
/// out).
async fn look(
    engine: &Engine,
    id: Uuid,
    after: u64,
    following: bool,
) -> Result<Option<Page>, EngineError> {
    if let Some(local) = engine.local_events(id, after) {
        return Ok(Some(Page {
            events: local.events,
            finished: local.finished,
            queued: None,
            orphaned: false,
            wake: Some(local.wake),
        }));
    }
    let db = engine.pool().get().await?;
    let found = registry::find_with_events(&**db, id).await?;
    let published = |job: Job, events: Vec<JobEvent>| {
        let finished = job.state.is_finished();
        Page {
            events: events.into_iter().filter(|e| e.id > after).collect(),
            // Unfinished in a row whose lock is free: its owner died.
            orphaned: !finished,
            finished: finished.then(|| Box::new(job)),
            queued: None,
            wake: None,
        }
    };
    match found {
        Some((Found::Live(job), events)) => Ok(Some(Page {
            orphaned: false,
            ..published(job, events)
        })),
        Some((Found::Ended(job), events)) if following || engine.handed_out(id) => {
            Ok(Some(published(job, events)))
        }
        Some((Found::Queued(job), _)) => Ok(Some(Page {
            events: Vec::new(),
            finished: None,
            queued: Some(job),
            orphaned: false,
            wake: None,
        })),
        // A follow-up that was queued when we looked locally may have started
        // here while we read the tables: look again.
        _ => Ok(engine.local_events(id, after).map(|local| Page {
            events: local.events,
            finished: local.finished,
            queued: None,
            orphaned: false,
            wake: Some(local.wake),
        })),
    }
}

/// The state of one stream between events.
struct Follower {
    engine: Engine,
    id: Uuid,
    /// The last id sent (or the `Last-Event-ID` the stream resumed from).
    after: u64,
    pending: VecDeque<JobEvent>,
    finished: Option<Box<Job>>,
    sent_queued: bool,
    /// Nothing more will come once `pending` is drained.
    ending: bool,
    wake: Option<watch::Receiver<u64>>,
}

impl Follower {
    fn take(&mut self, page: Page) {
        if let Some(job) = &page.queued {
            if !self.sent_queued && self.after == 0 {
                self.pending.push_back(JobEvent::queued(job));
            }
            self.sent_queued = true;
        }
        self.pending.extend(page.events);
        if page.finished.is_some() {
            self.finished = page.finished;
            self.ending = true;
        }
        if page.orphaned {
            self.ending = true;
        }
        if page.wake.is_some() {
            self.wake = page.wake;
        }
    }

    async fn next_event(mut self) -> Option<(JobEvent, Self)> {
        loop {
            if let Some(mut event) = self.pending.pop_front() {
                self.after = self.after.max(event.id);
                if event.is_final() {
                    event.job = self.finished.clone();
                    self.pending.clear();
                    self.ending = true;
                }
                return Some((event, self));
            }
            if self.ending {
                return None;
            }
            let closing = self.engine.closing().clone();
            let woken = async {
                match self.wake.as_mut() {
                    Some(rx) => rx.changed().await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                alive = woken => if !alive { self.wake = None },
                _ = tokio::time::sleep(LOOK_EVERY) => {}
                _ = closing.cancelled() => return None,
            }
            match look(&self.engine, self.id, self.after, true).await {
                Ok(Some(page)) => self.take(page),
                // Aged out of retention, or lost with a dead node.
                Ok(None) => return None,
                // The database blinked: look again on the next round.
                Err(e) => {
                    tracing::debug!(job_id = %self.id, error = %e, "could not look at the job's events")
                }
            }
        }
    }
}

/// What [`follow`] answers for a known job.
pub enum Followed<S> {
    /// The events after the one asked for, as they happen, ending with the final
    /// state.
    Stream(S),
    /// The job had already ended and its final event was at or before the one
    /// asked for: there is nothing more to send.
    Ended,
}

/// Job `id`'s events with an id above `after` (0: from the start), on whichever
/// node runs it. `NotFound` when no node knows the job.
pub async fn follow(
    engine: &Engine,
    id: Uuid,
    after: u64,
) -> Result<Followed<impl Stream<Item = JobEvent> + Send + 'static>, EngineError> {
    // A Last-Event-ID says the caller followed the job before, maybe on another
    // node: it may resume after the job ended there.
    let first = look(engine, id, after, after > 0)
        .await?
        .ok_or(EngineError::NotFound(id))?;
    let mut follower = Follower {
        engine: engine.clone(),
        id,
        after,
        pending: VecDeque::new(),
        finished: None,
        sent_queued: false,
        ending: false,
        wake: None,
    };
    follower.take(first);
    if follower.ending && follower.pending.is_empty() {
        return Ok(Followed::Ended);
    }
    Ok(Followed::Stream(futures::stream::unfold(
        follower,
        Follower::next_event,
    )))
}
