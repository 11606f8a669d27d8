//! What a lane runs: a pluggable [`JobBody`], handed a [`JobContext`].
//!
//! The engine owns scheduling, coalescing, timeouts and bookkeeping; a body owns
//! only its work. Bodies report phases and progress through the context (status
//! polls see them live), take pooled connections through [`JobContext::client`] so
//! a cancel can stop their running statements on the server, and check
//! [`JobContext::cancelled`] between units of work.

use std::sync::{Arc, Mutex};

use chrono::Utc;
use deadpool_postgres::{Object, Pool};
use futures::future::BoxFuture;
use tokio_postgres::CancelToken;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::live::LiveJob;
use super::model::{Job, JobKind, Phase, Scope, Trigger};

/// Why a job body stopped without succeeding.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The work failed; the message says what (it names the failing sources, cuts...).
    #[error("{0}")]
    Failed(String),
    /// The job was cancelled (cancel endpoint, max runtime, shutdown, lost lock).
    #[error("cancelled")]
    Cancelled,
    #[error("database: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// A lane's work. Implementations hold what they need (pool, config) themselves.
pub trait JobBody: Send + Sync + 'static {
    /// Runs the job. On success returns a JSON result shown in the job record.
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<serde_json::Value, JobError>>;
}

/// The bodies, one per lane. `Default` gives bodies that succeed immediately
/// (used until the refresh work plugs in the real ones, and in tests).
#[derive(Clone)]
pub struct JobBodies {
    bodies: [Arc<dyn JobBody>; JobKind::COUNT],
}

impl JobBodies {
    pub fn new(
        recompute: Arc<dyn JobBody>,
        benchmarks: Arc<dyn JobBody>,
        segments: Arc<dyn JobBody>,
        audit: Arc<dyn JobBody>,
        maintenance: Arc<dyn JobBody>,
    ) -> Self {
        Self {
            bodies: [recompute, benchmarks, segments, audit, maintenance],
        }
    }

    pub fn get(&self, kind: JobKind) -> Arc<dyn JobBody> {
        self.bodies[kind.index()].clone()
    }

    pub fn set(&mut self, kind: JobKind, body: Arc<dyn JobBody>) {
        self.bodies[kind.index()] = body;
    }
}

impl Default for JobBodies {
    fn default() -> Self {
        let noop: Arc<dyn JobBody> = Arc::new(NoopBody);
        Self {
            bodies: std::array::from_fn(|_| noop.clone()),
        }
    }
}

/// A body that does nothing and succeeds.
pub struct NoopBody;

impl JobBody for NoopBody {
    fn run(&self, _ctx: JobContext) -> BoxFuture<'static, Result<serde_json::Value, JobError>> {
        Box::pin(async { Ok(serde_json::Value::Null) })
    }
}

/// A running job's handle on itself.
#[derive(Clone)]
pub struct JobContext {
    /// Shared with the engine so status polls and event streams read progress as
    /// it happens; a std mutex because every critical section is a few field
    /// writes.
    pub(crate) record: Arc<Mutex<LiveJob>>,
    pub(crate) cancel: CancellationToken,
    /// Cancel tokens of every connection this job took, so cancelling the job can
    /// stop its running statements on the server (pg_cancel_backend equivalent).
    /// Bound: one per [`JobContext::client`] call of this one job (a body takes a
    /// handful); dropped with the job.
    pub(crate) statements: Arc<Mutex<Vec<CancelToken>>>,
    pub(crate) pool: Pool,
    pub(crate) scope: Scope,
    pub(crate) job_id: Uuid,
    pub(crate) trigger: Trigger,
    /// The lane and its lock connection's backend pid, for [`JobContext::enter_fence`].
    pub(crate) fence: Option<(JobKind, i32)>,
}

impl JobContext {
    pub(crate) fn new(record: Arc<Mutex<LiveJob>>, cancel: CancellationToken, pool: Pool) -> Self {
        let (scope, job_id, trigger) = {
            let live = record.lock().unwrap();
            let job = &live.job;
            (job.scope.clone(), job.job_id, job.trigger)
        };
        Self {
            record,
            cancel,
            statements: Arc::new(Mutex::new(Vec::new())),
            pool,
            scope,
            job_id,
            trigger,
            fence: None,
        }
    }

    pub(crate) fn with_fence(mut self, kind: JobKind, lock_backend_pid: i32) -> Self {
        self.fence = Some((kind, lock_backend_pid));
        self
    }

    /// Call first inside each write transaction: waits out nothing from this node,
    /// but makes a node that lost its lane lock unable to commit, and makes a new
    /// owner wait until this transaction ends (see `cluster::lane_lock`). A no-op
    /// outside the engine (detached contexts).
    pub async fn enter_fence(
        &self,
        tx: &impl tokio_postgres::GenericClient,
    ) -> Result<(), JobError> {
        let Some((kind, pid)) = self.fence else {
            return Ok(());
        };
        if super::cluster::lane_lock::enter_fence(tx, kind, pid).await? {
            Ok(())
        } else {
            Err(JobError::Failed(format!(
                "this node no longer holds the {kind} lane lock"
            )))
        }
    }

    /// A context for driving a body outside the engine (CLI one-shots, tests).
    pub fn detached(kind: JobKind, scope: Scope, pool: Pool) -> Self {
        let record = Arc::new(Mutex::new(LiveJob::new(Job::new(
            kind,
            scope,
            Trigger::Api,
            "detached",
        ))));
        Self::new(record, CancellationToken::new(), pool)
    }

    pub fn job_id(&self) -> Uuid {
        self.job_id
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn trigger(&self) -> Trigger {
        self.trigger
    }

    /// The job's cancellation token: select on `cancelled()` in long waits.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// `Err(Cancelled)` once the job is cancelled; call between units of work.
    pub fn check(&self) -> Result<(), JobError> {
        if self.cancel.is_cancelled() {
            Err(JobError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// A pooled connection whose statements are cancelled on the server if the job
    /// is cancelled. Open transactions roll back when the body's future is dropped.
    pub async fn client(&self) -> Result<Object, JobError> {
        self.check()?;
        let client = self.pool.get().await?;
        self.statements.lock().unwrap().push(client.cancel_token());
        Ok(client)
    }

    /// Ends the current phase (if any) and starts `name` with `total` units.
    pub fn begin_phase(&self, name: &str, total: u64) {
        let mut live = self.record.lock().unwrap();
        let job = &mut live.job;
        let now = Utc::now();
        let (job_id, kind) = (job.job_id, job.kind);
        if let Some(last) = job.phases.last_mut() {
            if last.finished_at.is_none() {
                last.finished_at = Some(now);
                let secs = (now - last.started_at).num_milliseconds() as f64 / 1000.0;
                tracing::info!(%job_id, %kind, phase = %last.name, node = %job.node, duration_s = secs, outcome = "done", "phase finished");
            }
        }
        job.phases.push(Phase {
            name: name.to_string(),
            started_at: now,
            finished_at: None,
            detail: serde_json::Value::Null,
        });
        job.phase = Some(name.to_string());
        job.progress.done = 0;
        job.progress.total = total;
        tracing::info!(job_id = %job.job_id, kind = %job.kind, phase = name, node = %job.node, "phase started");
        live.note();
    }

    /// Sets the current phase's progress.
    pub fn set_progress(&self, done: u64, total: u64) {
        let mut live = self.record.lock().unwrap();
        live.job.progress.done = done;
        live.job.progress.total = total;
        live.note();
    }

    /// Sets the job's `result` ahead of a failure: the engine keeps only the error
    /// string of a failed body, so a body that has structured detail to show
    /// (which parts failed, and why) records it here before returning `Err`.
    pub fn set_failed_result(&self, result: serde_json::Value) {
        self.record.lock().unwrap().job.result = result;
    }

    /// Adds one unit of work done in the current phase.
    pub fn advance(&self) {
        let mut live = self.record.lock().unwrap();
        live.job.progress.done += 1;
        live.note();
    }

    /// Adds `n` units of work done in the current phase (buckets of a backfill).
    pub fn advance_by(&self, n: u64) {
        let mut live = self.record.lock().unwrap();
        live.job.progress.done += n;
        live.note();
    }

    /// Replaces the current phase's detail (e.g. per-source results).
    pub fn set_phase_detail(&self, detail: serde_json::Value) {
        let mut live = self.record.lock().unwrap();
        if let Some(last) = live.job.phases.last_mut() {
            last.detail = detail;
        }
    }

    /// Cancels every statement this job has running on the server.
    pub async fn cancel_statements(&self) {
        let tokens: Vec<CancelToken> = self.statements.lock().unwrap().clone();
        for token in tokens {
            let _ = token.cancel_query(tokio_postgres::NoTls).await;
        }
    }
}
