//! A job's live record: its JSON plus a bounded, numbered log of what changed.
//!
//! `GET /api/jobs/{id}/events` streams that log as Server-Sent Events
//! (docs/api.md, "Job events"). The log lives beside the job, so it is kept for
//! exactly as long as the job is retained, and it is published with the job to
//! the shared job table, so a node that does not own the job streams the same
//! events under the same ids (a reconnect with `Last-Event-ID` works on any
//! node). Events are derived by comparing the job with the last event after
//! every change the engine or the body makes: one event per state, phase and
//! progress change, never one per write.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::ToSchema;

use super::model::{Job, JobState, Progress};

/// Most events one job's log holds. A body that reports progress per metric on a
/// catalogue of thousands would otherwise grow its job without bound: past this,
/// progress events are folded (see [`EventLog::push`]). 256 events of ~150 bytes
/// over the 200 retained jobs is well under 10 MB.
pub const MAX_EVENTS: usize = 256;

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobEventKind {
    /// The job's state changed (`queued`, `running`, then a final state).
    State,
    /// A phase began (its progress starts over).
    Phase,
    /// The current phase's progress moved.
    Progress,
}

impl JobEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobEventKind::State => "state",
            JobEventKind::Phase => "phase",
            JobEventKind::Progress => "progress",
        }
    }
}

/// One numbered change of a job, as the event stream carries it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JobEvent {
    /// 1, 2, 3... per job (the SSE `id:`); 0 only for the `queued` event a stream
    /// sends for a follow-up that has not started (it has no log yet).
    pub id: u64,
    /// What changed (the SSE `event:` name).
    pub event: JobEventKind,
    pub at: DateTime<Utc>,
    pub state: JobState,
    /// The phase running at that moment.
    pub phase: Option<String>,
    pub progress: Progress,
    /// The whole job (as `GET /api/jobs/{id}` shows it), on the final state event
    /// only: its error, result and timings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Box<Job>>,
}

impl JobEvent {
    /// The event that ends a stream: the job reached a final state.
    pub fn is_final(&self) -> bool {
        self.event == JobEventKind::State && self.state.is_finished()
    }

    fn of(id: u64, event: JobEventKind, job: &Job) -> Self {
        JobEvent {
            id,
            event,
            at: Utc::now(),
            state: job.state,
            phase: job.phase.clone(),
            progress: job.progress,
            job: None,
        }
    }

    /// The `queued` event of a follow-up that has not started.
    pub fn queued(job: &Job) -> Self {
        let mut event = JobEvent::of(0, JobEventKind::State, job);
        event.at = job.created_at;
        event
    }
}

/// A job's numbered changes, oldest first.
#[derive(Debug)]
pub struct EventLog {
    /// Bound: [`MAX_EVENTS`].
    events: VecDeque<JobEvent>,
    next_id: u64,
    /// The last id, for streams waiting on this node: a watch because a waiter
    /// needs only "something newer than what I sent", never each value.
    last_id: watch::Sender<u64>,
}

impl EventLog {
    /// A log whose first event is the job's state as it is now.
    fn starting_with(job: &Job) -> Self {
        let mut log = EventLog {
            events: VecDeque::new(),
            next_id: 1,
            last_id: watch::Sender::new(0),
        };
        log.push(JobEventKind::State, job);
        log
    }

    /// Appends an event for `job` as it is now. When the log is full a progress
    /// event replaces the previous one if that was progress too, and any other
    /// event evicts the oldest progress event (or, with none left, the oldest
    /// event): progress counts are cumulative, so a follower that missed the
    /// folded ones still sees where the phase stands.
    fn push(&mut self, kind: JobEventKind, job: &Job) {
        if self.events.len() >= MAX_EVENTS {
            let last_is_progress = self
                .events
                .back()
                .is_some_and(|e| e.event == JobEventKind::Progress);
            if kind == JobEventKind::Progress && last_is_progress {
                self.events.pop_back();
            } else if let Some(i) = self
                .events
                .iter()
                .position(|e| e.event == JobEventKind::Progress)
            {
                self.events.remove(i);
            } else {
                self.events.pop_front();
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.events.push_back(JobEvent::of(id, kind, job));
        self.last_id.send_replace(id);
    }

    /// Records what changed in `job` since the last event, if anything: a state
    /// change first, else a phase change, else a progress change.
    fn note(&mut self, job: &Job) {
        let Some(last) = self.events.back() else {
            self.push(JobEventKind::State, job);
            return;
        };
        let kind = if last.state != job.state {
            JobEventKind::State
        } else if last.phase != job.phase {
            JobEventKind::Phase
        } else if last.progress.done != job.progress.done
            || last.progress.total != job.progress.total
        {
            JobEventKind::Progress
        } else {
            return;
        };
        self.push(kind, job);
    }

    /// Events with an id above `after`, oldest first.
    pub fn after(&self, after: u64) -> Vec<JobEvent> {
        self.events
            .iter()
            .filter(|e| e.id > after)
            .cloned()
            .collect()
    }

    /// Every event held, for publishing to other nodes.
    pub fn all(&self) -> Vec<JobEvent> {
        self.events.iter().cloned().collect()
    }

    /// Wakes when a newer event is logged.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.last_id.subscribe()
    }
}

/// A job and its event log, behind one lock so no change goes unlogged.
#[derive(Debug)]
pub struct LiveJob {
    pub job: Job,
    pub events: EventLog,
}

impl LiveJob {
    pub fn new(job: Job) -> Self {
        let events = EventLog::starting_with(&job);
        LiveJob { job, events }
    }

    /// Logs whatever changed in the job since the last event; call after every
    /// write to `job`'s state, phase or progress.
    pub fn note(&mut self) {
        self.events.note(&self.job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::{JobKind, Scope, Trigger};

    fn running() -> LiveJob {
        let mut job = Job::new(JobKind::Recompute, Scope::All, Trigger::Api, "n1");
        job.state = JobState::Running;
        LiveJob::new(job)
    }

    #[test]
    fn each_change_is_one_event_numbered_in_order() {
        let mut live = running();
        live.job.phase = Some("ingest".into());
        live.job.progress = Progress { done: 0, total: 2 };
        live.note();
        live.job.progress.done = 1;
        live.note();
        live.note(); // nothing changed: no event
        live.job.state = JobState::Succeeded;
        live.note();
        let kinds: Vec<_> = live
            .events
            .after(0)
            .iter()
            .map(|e| (e.id, e.event))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (1, JobEventKind::State),
                (2, JobEventKind::Phase),
                (3, JobEventKind::Progress),
                (4, JobEventKind::State),
            ]
        );
        assert!(live.events.after(3)[0].is_final());
        assert!(live.events.after(4).is_empty());
    }

    #[test]
    fn a_full_log_folds_progress_and_keeps_phases_and_states() {
        let mut live = running();
        live.job.phase = Some("compute".into());
        live.job.progress.total = 10_000;
        live.note();
        for done in 1..=10_000 {
            live.job.progress.done = done;
            live.note();
        }
        live.job.state = JobState::Succeeded;
        live.note();
        let events = live.events.after(0);
        assert!(events.len() <= MAX_EVENTS);
        assert_eq!(events[0].event, JobEventKind::State);
        assert_eq!(events[1].event, JobEventKind::Phase);
        let last = events.last().unwrap();
        assert!(last.is_final());
        let before = &events[events.len() - 2];
        assert_eq!(before.progress.done, 10_000, "the latest count survives");
        assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    }
}
