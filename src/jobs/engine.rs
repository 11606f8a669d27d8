//! The engine: one gate for every job request (cron ticks, API, CLI, dashboard).
//!
//! Per lane it holds at most one running job and one queued follow-up. A request
//! the running job covers joins it (`coalesced`); one it does not is merged into
//! the follow-up, which starts the moment the running job ends. So nothing asked
//! for is dropped and a lane never holds more than two jobs.
//!
//! Every run is bounded: a max runtime per kind, the cancel endpoint, shutdown.
//! Cancelling cancels the job's token, cancels its statements on the server, gives
//! the body a short grace to roll back, then drops it; the lane is free either way.
//! Bodies run on their own task, so a panic ends the job `failed`, not the daemon.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::body::{JobBodies, JobBody, JobContext, JobError};
use super::config::JobsConfig;
use super::model::{Job, JobKind, JobState, Scope, Trigger};
use crate::error::ApiError;

/// How long a cancelled body gets to notice and roll back before it is dropped.
const CANCEL_GRACE: Duration = Duration::from_secs(3);

/// A request to run a job.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub kind: JobKind,
    pub scope: Scope,
    pub trigger: Trigger,
}

/// The answer to a request: which job serves it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Submitted {
    pub job_id: Uuid,
    /// True when the request joined a job that already existed (running or queued).
    pub coalesced: bool,
    /// True when the job serving it waits behind the running one.
    pub queued: bool,
}

/// Why a running job is being stopped; decides its final state and error.
#[derive(Debug, Clone)]
pub enum CancelReason {
    /// The cancel endpoint.
    Requested,
    /// Past the kind's max runtime.
    Timeout(Duration),
    /// The daemon is shutting down.
    Shutdown,
    /// Anything else (e.g. a lost cluster lock), with a message.
    Other(String),
}

/// Per-lane counters since start, read by `/metrics` at scrape time. Atomics so
/// `submit` counts without taking anything beyond the lane lock it already holds.
#[derive(Default)]
struct LaneCounters {
    started: AtomicU64,
    coalesced: AtomicU64,
    queued: AtomicU64,
}

/// A snapshot of one lane's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Jobs that started running.
    pub started: u64,
    /// Requests that joined an existing job (running or queued).
    pub coalesced: u64,
    /// Follow-ups created behind a running job.
    pub queued: u64,
}

/// Shared, live record of a job: the body writes progress, polls read it.
type JobRecord = Arc<Mutex<Job>>;

struct Running {
    record: JobRecord,
    cancel: CancellationToken,
    reason: Arc<Mutex<Option<CancelReason>>>,
}

#[derive(Default)]
struct Lane {
    running: Option<Running>,
    queued: Option<JobRecord>,
}

/// Finished and live jobs by id, bounded by count and age for status polling.
#[derive(Default)]
struct Retention {
    by_id: HashMap<Uuid, JobRecord>,
    /// Creation order (UUIDv7 sorts by time), oldest first.
    order: VecDeque<Uuid>,
}

struct Inner {
    /// One mutex per lane: submissions to different lanes never contend, and the
    /// critical section is a few pointer moves, so a std mutex beats an async one.
    lanes: [Mutex<Lane>; 4],
    counters: [LaneCounters; 4],
    retention: Mutex<Retention>,
    /// Swappable so the refresh work can plug its bodies in after the state exists.
    bodies: RwLock<JobBodies>,
    pool: Pool,
    config: JobsConfig,
    node: String,
    /// Every finished job, for the scheduler (last success) and self-monitoring.
    finished: broadcast::Sender<Job>,
    /// Set once shutdown begins: new requests get 503.
    closing: CancellationToken,
    runners: TaskTracker,
}

/// Cheap handle on the engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl Engine {
    pub fn new(pool: Pool, config: JobsConfig, node: String) -> Self {
        let (finished, _) = broadcast::channel(256);
        Engine {
            inner: Arc::new(Inner {
                lanes: Default::default(),
                counters: Default::default(),
                retention: Mutex::new(Retention::default()),
                bodies: RwLock::new(JobBodies::default()),
                pool,
                config,
                node,
                finished,
                closing: CancellationToken::new(),
                runners: TaskTracker::new(),
            }),
        }
    }

    /// This node's id, as shown in job JSON.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Plugs in the work a lane runs.
    pub fn set_body(&self, kind: JobKind, body: Arc<dyn JobBody>) {
        self.inner.bodies.write().unwrap().set(kind, body);
    }

    /// The gate. Starts a job, joins the running one, or merges into the follow-up.
    pub fn submit(&self, req: JobRequest) -> Result<Submitted, ApiError> {
        if self.inner.closing.is_cancelled() {
            return Err(ApiError::ShuttingDown);
        }
        let mut lane = self.inner.lanes[req.kind.index()].lock().unwrap();
        let Some(running) = &lane.running else {
            let record = self.new_record(&req);
            let job_id = record.lock().unwrap().job_id;
            self.start(&mut lane, req.kind, record);
            return Ok(Submitted {
                job_id,
                coalesced: false,
                queued: false,
            });
        };
        {
            let mut job = running.record.lock().unwrap();
            if job.scope.covers(&req.scope) {
                job.coalesced_requests += 1;
                self.count(req.kind, |c| &c.coalesced);
                if req.trigger == Trigger::Cron {
                    tracing::info!(job_id = %job.job_id, kind = %req.kind, "cron tick absorbed by the running job");
                }
                return Ok(Submitted {
                    job_id: job.job_id,
                    coalesced: true,
                    queued: false,
                });
            }
        }
        if let Some(queued) = &lane.queued {
            let mut job = queued.lock().unwrap();
            job.scope = job.scope.union(&req.scope);
            job.coalesced_requests += 1;
            self.count(req.kind, |c| &c.coalesced);
            return Ok(Submitted {
                job_id: job.job_id,
                coalesced: true,
                queued: true,
            });
        }
        let record = self.new_record(&req);
        let job_id = record.lock().unwrap().job_id;
        lane.queued = Some(record);
        self.count(req.kind, |c| &c.queued);
        tracing::info!(%job_id, kind = %req.kind, "follow-up queued behind the running job");
        Ok(Submitted {
            job_id,
            coalesced: false,
            queued: true,
        })
    }

    fn count(&self, kind: JobKind, which: impl Fn(&LaneCounters) -> &AtomicU64) {
        which(&self.inner.counters[kind.index()]).fetch_add(1, Ordering::Relaxed);
    }

    /// The lane's counters since this engine started.
    pub fn lane_stats(&self, kind: JobKind) -> LaneStats {
        let c = &self.inner.counters[kind.index()];
        LaneStats {
            started: c.started.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            queued: c.queued.load(Ordering::Relaxed),
        }
    }

    fn new_record(&self, req: &JobRequest) -> JobRecord {
        let job = Job::new(req.kind, req.scope.clone(), req.trigger, &self.inner.node);
        let record = Arc::new(Mutex::new(job));
        let id = record.lock().unwrap().job_id;
        let mut ret = self.inner.retention.lock().unwrap();
        ret.by_id.insert(id, record.clone());
        ret.order.push_back(id);
        self.prune(&mut ret);
        record
    }

    /// Drops finished jobs past the retention bounds; live jobs are never dropped.
    fn prune(&self, ret: &mut Retention) {
        let max_age = chrono::Duration::seconds(self.inner.config.retain_secs as i64);
        let now = Utc::now();
        let mut keep = VecDeque::with_capacity(ret.order.len());
        let excess = ret
            .order
            .len()
            .saturating_sub(self.inner.config.retain_count);
        let mut dropped = 0;
        for id in ret.order.drain(..) {
            let Some(record) = ret.by_id.get(&id) else {
                continue;
            };
            let job = record.lock().unwrap();
            let old = job.finished_at.is_some_and(|f| now - f > max_age);
            if job.state.is_finished() && (old || dropped < excess) {
                dropped += 1;
                drop(job);
                ret.by_id.remove(&id);
            } else {
                drop(job);
                keep.push_back(id);
            }
        }
        ret.order = keep;
    }

    /// Marks `record` running in `lane` and spawns its runner. Caller holds the lane.
    fn start(&self, lane: &mut Lane, kind: JobKind, record: JobRecord) {
        let cancel = CancellationToken::new();
        let reason = Arc::new(Mutex::new(None));
        {
            let mut job = record.lock().unwrap();
            job.state = JobState::Running;
            job.started_at = Some(Utc::now());
            job.node = self.inner.node.clone();
            tracing::info!(job_id = %job.job_id, %kind, trigger = job.trigger.as_str(), scope = ?job.scope, node = %job.node, "job started");
        }
        self.count(kind, |c| &c.started);
        lane.running = Some(Running {
            record: record.clone(),
            cancel: cancel.clone(),
            reason: reason.clone(),
        });
        let engine = self.clone();
        self.inner
            .runners
            .spawn(async move { engine.run(kind, record, cancel, reason).await });
    }

    async fn run(
        &self,
        kind: JobKind,
        record: JobRecord,
        cancel: CancellationToken,
        reason: Arc<Mutex<Option<CancelReason>>>,
    ) {
        let ctx = JobContext::new(record.clone(), cancel.clone(), self.inner.pool.clone());
        let body = self.inner.bodies.read().unwrap().get(kind);
        let max_runtime = self.inner.config.max_runtime(kind);
        let mut task = tokio::spawn(body.run(ctx.clone()));

        let outcome: Result<serde_json::Value, String> = tokio::select! {
            joined = &mut task => joined_outcome(joined),
            _ = tokio::time::sleep(max_runtime) => {
                reason.lock().unwrap().get_or_insert(CancelReason::Timeout(max_runtime));
                cancel.cancel();
                Err(String::new())
            }
            _ = cancel.cancelled() => Err(String::new()),
        };
        let outcome = if cancel.is_cancelled() {
            // Stop its statements on the server, let it roll back, then drop it.
            ctx.cancel_statements().await;
            if tokio::time::timeout(CANCEL_GRACE, &mut task).await.is_err() {
                task.abort();
                let _ = task.await;
            }
            Err(String::new())
        } else {
            outcome
        };
        self.finish(kind, &record, outcome, reason.lock().unwrap().clone());
    }

    fn finish(
        &self,
        kind: JobKind,
        record: &JobRecord,
        outcome: Result<serde_json::Value, String>,
        reason: Option<CancelReason>,
    ) {
        let finished = {
            let mut job = record.lock().unwrap();
            let now = Utc::now();
            let phase = job.phase.clone().unwrap_or_else(|| "start".into());
            if let Some(last) = job.phases.last_mut() {
                last.finished_at.get_or_insert(now);
            }
            match (outcome, reason) {
                (_, Some(CancelReason::Requested)) => {
                    job.state = JobState::Cancelled;
                    job.error = Some(format!("cancelled by request during phase {phase}"));
                }
                (_, Some(CancelReason::Shutdown)) => {
                    job.state = JobState::Cancelled;
                    job.error = Some(format!("cancelled by shutdown during phase {phase}"));
                }
                (_, Some(CancelReason::Timeout(limit))) => {
                    job.state = JobState::Failed;
                    job.error = Some(format!(
                        "timed out after {}s (max runtime) during phase {phase}",
                        limit.as_secs()
                    ));
                }
                (_, Some(CancelReason::Other(msg))) => {
                    job.state = JobState::Failed;
                    job.error = Some(format!("{msg} during phase {phase}"));
                }
                (Ok(result), None) => {
                    job.state = JobState::Succeeded;
                    job.result = result;
                }
                (Err(msg), None) => {
                    job.state = JobState::Failed;
                    job.error = Some(format!("phase {phase}: {msg}"));
                }
            }
            job.finished_at = Some(now);
            let secs = job
                .started_at
                .map(|s| (now - s).num_milliseconds() as f64 / 1000.0)
                .unwrap_or(0.0);
            tracing::info!(job_id = %job.job_id, %kind, phase = %phase, node = %job.node, duration_s = secs,
                outcome = ?job.state, error = job.error.as_deref().unwrap_or(""), "job finished");
            job.clone()
        };
        {
            let mut lane = self.inner.lanes[kind.index()].lock().unwrap();
            lane.running = None;
            if let Some(next) = lane.queued.take() {
                if self.inner.closing.is_cancelled() {
                    let mut job = next.lock().unwrap();
                    job.state = JobState::Cancelled;
                    job.error = Some("cancelled by shutdown before it started".into());
                    job.finished_at = Some(Utc::now());
                } else {
                    self.start(&mut lane, kind, next);
                }
            }
        }
        let _ = self.inner.finished.send(finished);
    }

    /// A job by id, while retained.
    pub fn get(&self, id: Uuid) -> Option<Job> {
        let ret = self.inner.retention.lock().unwrap();
        ret.by_id.get(&id).map(|r| r.lock().unwrap().clone())
    }

    /// The lane's running job.
    pub fn active(&self, kind: JobKind) -> Option<Job> {
        let lane = self.inner.lanes[kind.index()].lock().unwrap();
        lane.running
            .as_ref()
            .map(|r| r.record.lock().unwrap().clone())
    }

    /// The lane's queued follow-up.
    pub fn queued(&self, kind: JobKind) -> Option<Job> {
        let lane = self.inner.lanes[kind.index()].lock().unwrap();
        lane.queued.as_ref().map(|r| r.lock().unwrap().clone())
    }

    /// Retained jobs, newest first.
    pub fn recent(&self) -> Vec<Job> {
        let mut ret = self.inner.retention.lock().unwrap();
        self.prune(&mut ret);
        ret.order
            .iter()
            .rev()
            .filter_map(|id| ret.by_id.get(id))
            .map(|r| r.lock().unwrap().clone())
            .collect()
    }

    /// Cancels a running or queued job. Returns the job as it is now; a running
    /// job reaches `cancelled` moments later, once rolled back.
    pub fn cancel(&self, id: Uuid) -> Result<Job, ApiError> {
        let job = self
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("no job {id}")))?;
        if job.state.is_finished() {
            return Err(ApiError::conflict(format!(
                "job {id} already finished ({:?})",
                job.state
            )));
        }
        self.cancel_with(job.kind, id, CancelReason::Requested);
        Ok(self.get(id).unwrap_or(job))
    }

    /// Cancels job `id` of lane `kind` for `reason`, if it is still there.
    pub fn cancel_with(&self, kind: JobKind, id: Uuid, reason: CancelReason) {
        let mut lane = self.inner.lanes[kind.index()].lock().unwrap();
        if let Some(running) = &lane.running {
            if running.record.lock().unwrap().job_id == id {
                running.reason.lock().unwrap().get_or_insert(reason);
                running.cancel.cancel();
                return;
            }
        }
        if lane
            .queued
            .as_ref()
            .is_some_and(|q| q.lock().unwrap().job_id == id)
        {
            let queued = lane.queued.take().expect("checked above");
            let mut job = queued.lock().unwrap();
            job.state = JobState::Cancelled;
            job.error = Some("cancelled before it started".into());
            job.finished_at = Some(Utc::now());
            let _ = self.inner.finished.send(job.clone());
        }
    }

    /// Waits until job `id` has finished; None if it is unknown.
    pub async fn wait_finished(&self, id: Uuid) -> Option<Job> {
        let mut rx = self.inner.finished.subscribe();
        loop {
            let job = self.get(id)?;
            if job.state.is_finished() {
                return Some(job);
            }
            match rx.recv().await {
                Ok(done) if done.job_id == id => return Some(done),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return self.get(id),
            }
        }
    }

    /// Every job that finishes, as it finishes.
    pub fn subscribe(&self) -> broadcast::Receiver<Job> {
        self.inner.finished.subscribe()
    }

    /// Stops taking requests, cancels running and queued jobs, and waits for their
    /// rollbacks to finish.
    pub async fn shutdown(&self) {
        self.inner.closing.cancel();
        for kind in JobKind::ALL {
            let ids: Vec<Uuid> = {
                let lane = self.inner.lanes[kind.index()].lock().unwrap();
                lane.queued
                    .iter()
                    .chain(lane.running.as_ref().map(|r| &r.record))
                    .map(|r| r.lock().unwrap().job_id)
                    .collect()
            };
            for id in ids {
                self.cancel_with(kind, id, CancelReason::Shutdown);
            }
        }
        self.inner.runners.close();
        self.inner.runners.wait().await;
    }
}

fn joined_outcome(
    joined: Result<Result<serde_json::Value, JobError>, tokio::task::JoinError>,
) -> Result<serde_json::Value, String> {
    match joined {
        Ok(Ok(result)) => Ok(result),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(format!("the job panicked: {msg}"))
        }
        Err(_) => Err("the job's task was aborted".into()),
    }
}
