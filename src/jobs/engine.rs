//! The engine: one gate for every job request (cron ticks, API, CLI, dashboard).
//!
//! Per lane it holds at most one running job and one queued follow-up. A request
//! the running job covers joins it (`coalesced`); one it does not is merged into
//! the follow-up, which starts the moment the running job ends. So nothing asked
//! for is dropped and a lane never holds more than two jobs.
//!
//! Cluster-wide (docs/operations/cluster.md): a lane's job runs on the node holding the lane's
//! advisory lock; it is published so other nodes coalesce onto it and answer its
//! status, and the follow-up lives in PostgreSQL so any node can merge into it and
//! whoever holds the lock when the job ends runs it. On one node this is the same
//! code with no one to share with.
//!
//! Every run is bounded: a max runtime per kind, the cancel endpoint, shutdown.
//! Cancelling cancels the job's token, cancels its statements on the server, gives
//! the body a short grace to roll back, then drops it; the lane is free either way.
//! Bodies run on their own task, so a panic ends the job `failed`, not the daemon.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use deadpool_postgres::Pool;
use serde::Serialize;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::body::{JobBodies, JobContext, JobError};
use super::cluster::registry::{self, Found};
use super::cluster::LaneLock;
use super::config::JobsConfig;
use super::error::EngineError;
use super::live::{JobEvent, LiveJob};
use super::model::{Job, JobKind, JobState, Scope, Trigger};

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

/// What [`Engine::local_events`] answers.
pub(super) struct LocalEvents {
    pub events: Vec<JobEvent>,
    pub finished: Option<Box<Job>>,
    pub wake: tokio::sync::watch::Receiver<u64>,
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

/// Shared, live record of a job: the body writes progress, polls and event
/// streams read it.
type JobRecord = Arc<Mutex<LiveJob>>;
type ReasonSlot = Arc<Mutex<Option<CancelReason>>>;

struct Running {
    record: JobRecord,
    cancel: CancellationToken,
    reason: ReasonSlot,
}

#[derive(Default)]
struct Lane {
    running: Option<Running>,
}

/// Jobs this node ran or handed out, for status polls.
///
/// Bound: finished jobs beyond `jobs.retain_count` (200) or older than
/// `jobs.retain_secs` (a day) are pruned on every insert, so `by_id` holds at most
/// `retain_count` finished jobs plus the ≤ 2 live ones per lane; `remote` holds at
/// most `4 × max(retain_count, 16)` ids, also aged out after `retain_secs`.
#[derive(Default)]
struct Retention {
    by_id: HashMap<Uuid, JobRecord>,
    /// Creation order (UUIDv7 sorts by time), oldest first.
    order: VecDeque<Uuid>,
    /// Ids of jobs on other nodes this node answered requests with: it keeps
    /// answering for them after they finish, so the requester's poll works.
    remote: HashMap<Uuid, chrono::DateTime<Utc>>,
}

/// Per-lane counters since start, read by `/metrics` at scrape time.
#[derive(Default)]
struct LaneCounters {
    started: AtomicU64,
    coalesced: AtomicU64,
    queued: AtomicU64,
}

/// A snapshot of one lane's counters on this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneStats {
    /// Jobs this node started running.
    pub started: u64,
    /// Requests answered with an existing job (running or queued, on any node).
    pub coalesced: u64,
    /// Follow-ups this node created behind a running job.
    pub queued: u64,
}

struct Inner {
    counters: [LaneCounters; JobKind::COUNT],
    /// The running job per lane. A std mutex: every critical section is a few
    /// pointer moves, never an await, so 1,000 concurrent joins stay cheap.
    lanes: [Mutex<Lane>; JobKind::COUNT],
    /// Serializes this node's decisions to start or end a lane's job (they await
    /// the database); joins onto a running job never take it.
    gates: [tokio::sync::Mutex<()>; JobKind::COUNT],
    retention: Mutex<Retention>,
    /// Each lane's work, fixed at construction.
    bodies: JobBodies,
    pool: Pool,
    database_url: Arc<str>,
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

/// How long a request waits to see the job of a lane locked by another node.
const REMOTE_VISIBLE_WITHIN: Duration = Duration::from_secs(3);
/// How often running jobs are re-published (progress, heartbeat, remote cancels).
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// How often the janitor cleans stale rows and starts orphaned follow-ups.
pub const JANITOR_EVERY: Duration = Duration::from_secs(1);

impl Engine {
    pub fn new(
        pool: Pool,
        database_url: Arc<str>,
        config: JobsConfig,
        node: String,
        bodies: JobBodies,
    ) -> Self {
        let (finished, _) = broadcast::channel(1024);
        Engine {
            inner: Arc::new(Inner {
                lanes: Default::default(),
                counters: Default::default(),
                gates: Default::default(),
                retention: Mutex::new(Retention::default()),
                bodies,
                pool,
                database_url,
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

    /// Joins the lane's local running job if it covers the request.
    fn join_local(&self, req: &JobRequest) -> Option<Submitted> {
        let lane = self.inner.lanes[req.kind.index()].lock().unwrap();
        let running = lane.running.as_ref()?;
        let mut live = running.record.lock().unwrap();
        let job = &mut live.job;
        // A job that has just finished stays in the lane until its runner lets go;
        // it must not absorb new requests.
        if job.state.is_finished() || !job.scope.covers(&req.scope) {
            return None;
        }
        job.coalesced_requests += 1;
        if req.trigger == Trigger::Cron {
            tracing::info!(job_id = %job.job_id, kind = %req.kind, phase = job.phase_or_start(),
                node = %job.node, "cron tick absorbed by the running job");
        }
        Some(Submitted {
            job_id: job.job_id,
            coalesced: true,
            queued: false,
        })
    }

    /// Whether this node runs a job of the lane now (no database round trip).
    pub fn running_locally(&self, kind: JobKind) -> bool {
        self.inner.lanes[kind.index()]
            .lock()
            .unwrap()
            .running
            .is_some()
    }

    /// The gate. Joins the running job (on any node), starts one, or merges the
    /// request into the lane's follow-up.
    pub async fn submit(&self, req: JobRequest) -> Result<Submitted, EngineError> {
        let counters = &self.inner.counters[req.kind.index()];
        let submitted = self.submit_once(req).await?;
        if submitted.coalesced {
            counters.coalesced.fetch_add(1, Ordering::Relaxed);
        } else if submitted.queued {
            counters.queued.fetch_add(1, Ordering::Relaxed);
        }
        Ok(submitted)
    }

    /// The lane's counters on this node since the engine started.
    pub fn lane_stats(&self, kind: JobKind) -> LaneStats {
        let c = &self.inner.counters[kind.index()];
        LaneStats {
            started: c.started.load(Ordering::Relaxed),
            coalesced: c.coalesced.load(Ordering::Relaxed),
            queued: c.queued.load(Ordering::Relaxed),
        }
    }

    async fn submit_once(&self, req: JobRequest) -> Result<Submitted, EngineError> {
        if self.inner.closing.is_cancelled() {
            return Err(EngineError::ShuttingDown);
        }
        if let Some(s) = self.join_local(&req) {
            return Ok(s);
        }
        let kind = req.kind;
        let deadline = tokio::time::Instant::now() + REMOTE_VISIBLE_WITHIN;
        loop {
            // A job running on another node: join it or its follow-up, no gate needed.
            if !self.running_locally(kind) {
                if let Some(s) = self.join_remote(&req).await? {
                    return Ok(s);
                }
            }
            let gate = self.inner.gates[kind.index()].lock().await;
            if let Some(s) = self.join_local(&req) {
                return Ok(s);
            }
            if self.running_locally(kind) {
                return self.enqueue(&req).await;
            }
            if let Some(lock) = self.acquire(kind).await? {
                // A waiting follow-up absorbs this request and starts now.
                match self.adopt_follow_up(kind, Some(&req)).await {
                    Ok(Some(job)) => {
                        let submitted = Submitted {
                            job_id: job.job.job_id,
                            coalesced: true,
                            queued: false,
                        };
                        self.start(kind, job, lock, true).await?;
                        return Ok(submitted);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        lock.release().await;
                        return Err(e);
                    }
                }
                let mut job = Job::new(kind, req.scope.clone(), req.trigger, &self.inner.node);
                job.state = JobState::Running;
                job.started_at = Some(Utc::now());
                let submitted = Submitted {
                    job_id: job.job_id,
                    coalesced: false,
                    queued: false,
                };
                self.start(kind, LiveJob::new(job), lock, false).await?;
                return Ok(submitted);
            }
            drop(gate);
            // Locked by a node that has not published its job yet, or is letting go.
            if tokio::time::Instant::now() > deadline {
                return Err(EngineError::Unavailable(format!(
                    "lane {kind} is locked but its job is not visible"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Joins a job running on another live node, or merges into the follow-up when
    /// it does not cover the request. None when no live node runs the lane.
    async fn join_remote(&self, req: &JobRequest) -> Result<Option<Submitted>, EngineError> {
        let kind = req.kind;
        let db = self.inner.pool.get().await?;
        let Some(remote) = registry::running(&**db, kind).await? else {
            return Ok(None);
        };
        if remote.scope.covers(&req.scope) && registry::add_request(&**db, remote.job_id).await? {
            self.remember_remote(remote.job_id);
            if req.trigger == Trigger::Cron {
                tracing::info!(job_id = %remote.job_id, %kind, phase = remote.phase_or_start(),
                    node = %remote.node, "cron tick absorbed by a job on another node");
            }
            return Ok(Some(Submitted {
                job_id: remote.job_id,
                coalesced: true,
                queued: false,
            }));
        }
        drop(db);
        let submitted = self.enqueue(req).await?;
        // The owner may have ended between our reads: make sure someone runs it.
        self.kick(kind);
        Ok(Some(submitted))
    }

    async fn acquire(&self, kind: JobKind) -> Result<Option<LaneLock>, EngineError> {
        LaneLock::try_acquire(&self.inner.database_url, kind, &self.inner.node)
            .await
            .map_err(|e| EngineError::Unavailable(e.to_string()))
    }

    /// Merges the request into the lane's shared follow-up.
    async fn enqueue(&self, req: &JobRequest) -> Result<Submitted, EngineError> {
        let db = self.inner.pool.get().await?;
        let (job_id, merged) =
            registry::enqueue(&**db, req.kind, &req.scope, req.trigger, Uuid::now_v7()).await?;
        self.remember_remote(job_id);
        if !merged {
            tracing::info!(%job_id, kind = %req.kind, "follow-up queued behind the running job");
        }
        Ok(Submitted {
            job_id,
            coalesced: merged,
            queued: true,
        })
    }

    fn remember_remote(&self, id: Uuid) {
        let mut ret = self.inner.retention.lock().unwrap();
        ret.remote.insert(id, Utc::now());
    }

    /// Starts the lane's follow-up if it waits and nobody runs the lane.
    pub fn kick(&self, kind: JobKind) {
        let engine = self.clone();
        self.inner.runners.spawn(async move {
            if let Err(e) = engine.start_queued(kind).await {
                tracing::debug!(%kind, error = %e, "could not start the follow-up");
            }
        });
    }

    async fn start_queued(&self, kind: JobKind) -> Result<(), EngineError> {
        if self.inner.closing.is_cancelled() {
            return Ok(());
        }
        let _gate = self.inner.gates[kind.index()].lock().await;
        if self.running_locally(kind) {
            return Ok(());
        }
        let db = self.inner.pool.get().await?;
        if registry::peek_queued(&**db, kind).await?.is_none() {
            return Ok(());
        }
        let Some(lock) = self.acquire(kind).await? else {
            return Ok(());
        };
        drop(db);
        match self.adopt_follow_up(kind, None).await {
            Ok(Some(job)) => self.start(kind, job, lock, true).await,
            Ok(None) => {
                lock.release().await;
                Ok(())
            }
            Err(e) => {
                lock.release().await;
                Err(e)
            }
        }
    }

    /// Takes the lane's follow-up and publishes it as running in one transaction,
    /// so a poll always finds it, queued or running. The caller holds the lane lock.
    async fn adopt_follow_up(
        &self,
        kind: JobKind,
        merge: Option<&JobRequest>,
    ) -> Result<Option<LiveJob>, EngineError> {
        let mut db = self.inner.pool.get().await?;
        let tx = db.transaction().await?;
        let Some(q) = registry::take_queued(&*tx, kind).await? else {
            return Ok(None);
        };
        let mut job = q.into_job(kind, &self.inner.node);
        if let Some(req) = merge {
            job.scope = job.scope.union(&req.scope);
            job.coalesced_requests += 1;
        }
        job.state = JobState::Running;
        job.started_at = Some(Utc::now());
        let live = LiveJob::new(job);
        registry::publish(&*tx, &live.job, &live.events.all()).await?;
        tx.commit().await?;
        Ok(Some(live))
    }

    /// One janitor pass: forget dead nodes' rows, start orphaned follow-ups.
    pub async fn janitor_pass(&self) -> Result<(), EngineError> {
        let db = self.inner.pool.get().await?;
        registry::clean_stale(&**db, self.inner.config.retain_secs as i64).await?;
        for kind in registry::queued_lanes(&**db).await? {
            if !self.running_locally(kind) {
                self.kick(kind);
            }
        }
        Ok(())
    }

    /// Runs [`Engine::janitor_pass`] every second until shutdown.
    pub async fn janitor_loop(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(JANITOR_EVERY) => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = self.janitor_pass().await {
                tracing::debug!(error = %e, "janitor pass failed");
            }
        }
    }

    fn retain(&self, record: &JobRecord) {
        let id = record.lock().unwrap().job.job_id;
        let mut ret = self.inner.retention.lock().unwrap();
        if ret.by_id.insert(id, record.clone()).is_none() {
            ret.order.push_back(id);
        }
        self.prune(&mut ret);
    }

    /// Drops finished jobs past the retention bounds; live jobs are never dropped.
    fn prune(&self, ret: &mut Retention) {
        let max_age = chrono::Duration::seconds(self.inner.config.retain_secs as i64);
        let now = Utc::now();
        let excess = ret
            .order
            .len()
            .saturating_sub(self.inner.config.retain_count);
        let mut dropped = 0;
        let mut keep = VecDeque::with_capacity(ret.order.len());
        for id in std::mem::take(&mut ret.order) {
            let Some(record) = ret.by_id.get(&id) else {
                continue;
            };
            let (finished, old) = {
                let live = record.lock().unwrap();
                (
                    live.job.state.is_finished(),
                    live.job.finished_at.is_some_and(|f| now - f > max_age),
                )
            };
            if finished && (old || dropped < excess) {
                dropped += 1;
                ret.by_id.remove(&id);
            } else {
                keep.push_back(id);
            }
        }
        ret.order = keep;
        ret.remote.retain(|_, at| now - *at <= max_age);
        while ret.remote.len() > self.inner.config.retain_count.max(16) * 4 {
            let oldest = ret
                .remote
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => ret.remote.remove(&id),
                None => break,
            };
        }
    }

    /// Publishes the running `live` job (unless `published` already) and spawns
    /// its runner under `lock`. The caller holds the lane's gate.
    async fn start(
        &self,
        kind: JobKind,
        live: LiveJob,
        lock: LaneLock,
        published: bool,
    ) -> Result<(), EngineError> {
        if !published {
            let published = match self.inner.pool.get().await {
                Ok(db) => registry::publish(&**db, &live.job, &live.events.all())
                    .await
                    .map_err(EngineError::from),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = published {
                lock.release().await;
                return Err(e);
            }
        }
        let job = &live.job;
        tracing::info!(job_id = %job.job_id, %kind, phase = job.phase_or_start(),
            trigger = job.trigger.as_str(), scope = ?job.scope, node = %job.node, "job started");
        self.inner.counters[kind.index()]
            .started
            .fetch_add(1, Ordering::Relaxed);
        let record = Arc::new(Mutex::new(live));
        self.retain(&record);
        let cancel = CancellationToken::new();
        let reason: ReasonSlot = Arc::new(Mutex::new(None));
        self.inner.lanes[kind.index()].lock().unwrap().running = Some(Running {
            record: record.clone(),
            cancel: cancel.clone(),
            reason: reason.clone(),
        });
        let engine = self.clone();
        self.inner.runners.spawn(async move {
            engine.run_lane(kind, record, cancel, reason, lock).await;
        });
        Ok(())
    }

    /// Runs the lane's job, then its follow-ups, for as long as this node holds the
    /// lane lock; then releases it.
    async fn run_lane(
        &self,
        kind: JobKind,
        mut record: JobRecord,
        mut cancel: CancellationToken,
        mut reason: ReasonSlot,
        lock: LaneLock,
    ) {
        loop {
            self.run_one(kind, &record, &cancel, &reason, &lock).await;
            let _gate = self.inner.gates[kind.index()].lock().await;
            let next = if self.inner.closing.is_cancelled() {
                None
            } else {
                self.adopt_follow_up(kind, None).await.ok().flatten()
            };
            let Some(live) = next else {
                self.inner.lanes[kind.index()].lock().unwrap().running = None;
                lock.release().await;
                break;
            };
            let job = &live.job;
            tracing::info!(job_id = %job.job_id, %kind, phase = job.phase_or_start(),
                scope = ?job.scope, node = %job.node, "follow-up started");
            self.inner.counters[kind.index()]
                .started
                .fetch_add(1, Ordering::Relaxed);
            record = Arc::new(Mutex::new(live));
            self.retain(&record);
            cancel = CancellationToken::new();
            reason = Arc::new(Mutex::new(None));
            self.inner.lanes[kind.index()].lock().unwrap().running = Some(Running {
                record: record.clone(),
                cancel: cancel.clone(),
                reason: reason.clone(),
            });
        }
        // A request on another node may have queued while we were letting go.
        self.kick(kind);
    }

    async fn run_one(
        &self,
        kind: JobKind,
        record: &JobRecord,
        cancel: &CancellationToken,
        reason: &ReasonSlot,
        lock: &LaneLock,
    ) {
        let ctx = JobContext::new(record.clone(), cancel.clone(), self.inner.pool.clone())
            .with_fence(kind, lock.backend_pid());
        let body = self.inner.bodies.get(kind);
        let max_runtime = self.inner.config.max_runtime(kind);
        let mut task = tokio::spawn(body.run(ctx.clone()));
        let deadline = tokio::time::sleep(max_runtime);
        let lost = lock.lost();
        tokio::pin!(deadline, lost);
        let mut publish = tokio::time::interval(PUBLISH_EVERY);
        publish.tick().await;
        let outcome = loop {
            tokio::select! {
                joined = &mut task => break joined_outcome(joined),
                _ = &mut deadline => {
                    reason.lock().unwrap().get_or_insert(CancelReason::Timeout(max_runtime));
                    cancel.cancel();
                }
                _ = &mut lost => {
                    reason.lock().unwrap().get_or_insert(CancelReason::Other(
                        "lost the lane lock (its PostgreSQL connection dropped)".into(),
                    ));
                    cancel.cancel();
                }
                _ = cancel.cancelled() => {}
                _ = publish.tick() => self.republish(record, reason, cancel).await,
            }
            if cancel.is_cancelled() {
                // Stop its statements on the server, let it roll back, then drop it.
                ctx.cancel_statements().await;
                if tokio::time::timeout(CANCEL_GRACE, &mut task).await.is_err() {
                    task.abort();
                    let _ = task.await;
                }
                break Err(String::new());
            }
        };
        let (finished, events) = self.finish(kind, record, outcome, reason.lock().unwrap().clone());
        if let Ok(db) = self.inner.pool.get().await {
            if let Err(e) = registry::publish(&**db, &finished, &events).await {
                tracing::warn!(job_id = %finished.job_id, kind = %finished.kind,
                    phase = finished.phase_or_start(), node = %finished.node, error = %e,
                    "could not publish the finished job");
            }
        }
        let _ = self.inner.finished.send(finished.view());
    }

    /// Publishes progress; learns remote joins and remote cancel requests.
    async fn republish(&self, record: &JobRecord, reason: &ReasonSlot, cancel: &CancellationToken) {
        let (snapshot, events) = {
            let live = record.lock().unwrap();
            (live.job.clone(), live.events.all())
        };
        let Ok(db) = self.inner.pool.get().await else {
            return;
        };
        if let Ok(echo) = registry::publish(&**db, &snapshot, &events).await {
            record.lock().unwrap().job.remote_requests = echo.extra_requests;
            if echo.cancel_requested {
                reason
                    .lock()
                    .unwrap()
                    .get_or_insert(CancelReason::Requested);
                cancel.cancel();
            }
        }
    }

    fn finish(
        &self,
        kind: JobKind,
        record: &JobRecord,
        outcome: Result<serde_json::Value, String>,
        reason: Option<CancelReason>,
    ) -> (Job, Vec<JobEvent>) {
        let mut live = record.lock().unwrap();
        let job = &mut live.job;
        let now = Utc::now();
        let phase = job.phase_or_start().to_string();
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
        tracing::info!(job_id = %job.job_id, %kind, phase = %phase, duration_s = secs,
            outcome = ?job.state, error = job.error.as_deref().unwrap_or(""), node = %job.node, "job finished");
        let job = job.clone();
        live.note();
        (job, live.events.all())
    }

    /// A job this node knows in memory.
    pub fn get_local(&self, id: Uuid) -> Option<Job> {
        let ret = self.inner.retention.lock().unwrap();
        ret.by_id.get(&id).map(|r| r.lock().unwrap().job.view())
    }

    /// This node's events of job `id` after `after`, the job once it has finished,
    /// and a receiver that wakes on its next event; None if not retained here.
    pub(super) fn local_events(&self, id: Uuid, after: u64) -> Option<LocalEvents> {
        let ret = self.inner.retention.lock().unwrap();
        let live = ret.by_id.get(&id)?.lock().unwrap();
        Some(LocalEvents {
            events: live.events.after(after),
            finished: live
                .job
                .state
                .is_finished()
                .then(|| Box::new(live.job.view())),
            wake: live.events.watch(),
        })
    }

    /// Whether this node answered a request with job `id` of another node.
    pub(super) fn handed_out(&self, id: Uuid) -> bool {
        self.inner
            .retention
            .lock()
            .unwrap()
            .remote
            .contains_key(&id)
    }

    /// The pool, for readers of the shared job tables beside the engine.
    pub(super) fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Cancelled when shutdown begins.
    pub(super) fn closing(&self) -> &CancellationToken {
        &self.inner.closing
    }

    /// A job by id: this node's, one running on any live node, a queued follow-up,
    /// or a finished remote job this node handed out.
    pub async fn get(&self, id: Uuid) -> Result<Option<Job>, EngineError> {
        if let Some(job) = self.get_local(id) {
            return Ok(Some(job));
        }
        let db = self.inner.pool.get().await?;
        let handed_out = self
            .inner
            .retention
            .lock()
            .unwrap()
            .remote
            .contains_key(&id);
        Ok(match registry::find(&**db, id).await? {
            Some(Found::Live(job) | Found::Queued(job)) => Some(job),
            Some(Found::Ended(job)) if handed_out => Some(job),
            // A follow-up that was queued when we looked locally may have started
            // and finished here while we read the registry: look again.
            _ => self.get_local(id),
        })
    }

    /// The lane's running job, on whichever node runs it.
    pub async fn active(&self, kind: JobKind) -> Result<Option<Job>, EngineError> {
        let local = {
            let lane = self.inner.lanes[kind.index()].lock().unwrap();
            lane.running
                .as_ref()
                .map(|r| r.record.lock().unwrap().job.view())
        };
        if local.is_some() {
            return Ok(local);
        }
        let db = self.inner.pool.get().await?;
        Ok(registry::running(&**db, kind).await?)
    }

    /// The lane's queued follow-up.
    pub async fn queued(&self, kind: JobKind) -> Result<Option<Job>, EngineError> {
        let db = self.inner.pool.get().await?;
        Ok(registry::peek_queued(&**db, kind).await?)
    }

    /// This node's retained jobs plus those running elsewhere, newest first.
    pub async fn recent(&self) -> Result<Vec<Job>, EngineError> {
        let mut jobs: Vec<Job> = {
            let mut ret = self.inner.retention.lock().unwrap();
            self.prune(&mut ret);
            ret.order
                .iter()
                .rev()
                .filter_map(|id| ret.by_id.get(id))
                .map(|r| r.lock().unwrap().job.view())
                .collect()
        };
        let db = self.inner.pool.get().await?;
        for job in registry::live(&**db).await? {
            if !jobs.iter().any(|j| j.job_id == job.job_id) {
                jobs.push(job);
            }
        }
        jobs.sort_by_key(|j| std::cmp::Reverse(j.job_id));
        Ok(jobs)
    }

    /// Cancels a running or queued job, wherever it is. Returns the job as it is
    /// now; a running job reaches `cancelled` moments later, once rolled back.
    pub async fn cancel(&self, id: Uuid) -> Result<Job, EngineError> {
        let job = self.get(id).await?.ok_or(EngineError::NotFound(id))?;
        if job.state.is_finished() {
            return Err(EngineError::AlreadyFinished {
                id,
                state: job.state,
            });
        }
        if self.cancel_with(job.kind, id, CancelReason::Requested) {
            return Ok(self.get_local(id).unwrap_or(job));
        }
        let db = self.inner.pool.get().await?;
        if registry::delete_queued(&**db, id).await? {
            let mut job = job;
            job.state = JobState::Cancelled;
            job.error = Some("cancelled before it started".into());
            job.finished_at = Some(Utc::now());
            let record = Arc::new(Mutex::new(LiveJob::new(job.clone())));
            self.retain(&record);
            let _ = self.inner.finished.send(job.clone());
            return Ok(job);
        }
        if registry::request_cancel(&**db, id).await? {
            return Ok(job);
        }
        Err(EngineError::NoLongerRunning(id))
    }

    /// Cancels this node's running job `id` of lane `kind` for `reason`; false if
    /// it does not run here.
    pub fn cancel_with(&self, kind: JobKind, id: Uuid, reason: CancelReason) -> bool {
        let lane = self.inner.lanes[kind.index()].lock().unwrap();
        match &lane.running {
            Some(running) if running.record.lock().unwrap().job.job_id == id => {
                running.reason.lock().unwrap().get_or_insert(reason);
                running.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// Waits until job `id` has finished; None if it is unknown or vanished.
    pub async fn wait_finished(&self, id: Uuid) -> Option<Job> {
        let mut rx = self.inner.finished.subscribe();
        loop {
            let job = self.get(id).await.ok()??;
            if job.state.is_finished() {
                return Some(job);
            }
            tokio::select! {
                msg = rx.recv() => match msg {
                    Ok(done) if done.job_id == id => return Some(done),
                    Err(broadcast::error::RecvError::Closed) => return self.get(id).await.ok()?,
                    _ => {}
                },
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        }
    }

    /// Every job that finishes on this node, as it finishes.
    pub fn subscribe(&self) -> broadcast::Receiver<Job> {
        self.inner.finished.subscribe()
    }

    /// Stops taking requests, cancels this node's running jobs and waits for their
    /// rollbacks. Queued follow-ups stay in the shared queue for another node (or
    /// this one after a restart): nothing requested is dropped.
    pub async fn shutdown(&self) {
        self.inner.closing.cancel();
        for kind in JobKind::ALL {
            let id = {
                let lane = self.inner.lanes[kind.index()].lock().unwrap();
                lane.running
                    .as_ref()
                    .map(|r| r.record.lock().unwrap().job.job_id)
            };
            if let Some(id) = id {
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
            let msg = crate::panic::message(&*e.into_panic());
            Err(format!("the job panicked: {msg}"))
        }
        Err(_) => Err("the job's task was aborted".into()),
    }
}
