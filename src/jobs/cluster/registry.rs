//! Shared job state in PostgreSQL: published jobs and each lane's follow-up.

use chrono::{DateTime, Utc};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use super::lane_lock::{lane_key, LOCK_HELD};
use crate::jobs::live::JobEvent;
use crate::jobs::{Job, JobKind, JobState, Scope, Trigger};

type DbResult<T> = Result<T, tokio_postgres::Error>;

fn state_str(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        JobState::Succeeded => "succeeded",
        JobState::Failed => "failed",
        JobState::Cancelled => "cancelled",
    }
}

/// What the owner learns back when it publishes.
pub struct PublishEcho {
    pub extra_requests: u64,
    pub cancel_requested: bool,
}

/// Publishes (inserts or refreshes) a job this node owns, with its event log.
pub async fn publish(
    db: &impl GenericClient,
    job: &Job,
    events: &[JobEvent],
) -> DbResult<PublishEcho> {
    let json = serde_json::to_value(job).expect("a job serializes");
    let events = serde_json::to_value(events).expect("events serialize");
    let row = db
        .query_one(
            "INSERT INTO heartbeat.cluster_job (job_id, lane, node, state, job, events)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (job_id) DO UPDATE
                SET node = EXCLUDED.node, state = EXCLUDED.state, job = EXCLUDED.job,
                    events = EXCLUDED.events, updated_at = now()
             RETURNING extra_requests, cancel_requested",
            &[
                &job.job_id,
                &job.kind.as_str(),
                &job.node,
                &state_str(job.state),
                &json,
                &events,
            ],
        )
        .await?;
    Ok(PublishEcho {
        extra_requests: row.get::<_, i32>(0) as u64,
        cancel_requested: row.get(1),
    })
}

fn job_from_row(json: serde_json::Value, extra: i32) -> Option<Job> {
    let mut job: Job = serde_json::from_value(json).ok()?;
    job.coalesced_requests += extra.max(0) as u64;
    Some(job)
}

/// The lane's job running on a live node (its lock is held), if any.
pub async fn running(db: &impl GenericClient, kind: JobKind) -> DbResult<Option<Job>> {
    let sql = format!(
        "SELECT job, extra_requests FROM heartbeat.cluster_job
         WHERE lane = $2 AND state = 'running' AND {LOCK_HELD}
         ORDER BY updated_at DESC LIMIT 1"
    );
    let row = db
        .query_opt(&sql, &[&lane_key(kind), &kind.as_str()])
        .await?;
    Ok(row.and_then(|r| job_from_row(r.get(0), r.get(1))))
}

/// Counts one more request served by a remote running job; false if it is gone.
pub async fn add_request(db: &impl GenericClient, job_id: Uuid) -> DbResult<bool> {
    let n = db
        .execute(
            "UPDATE heartbeat.cluster_job SET extra_requests = extra_requests + 1
             WHERE job_id = $1 AND state = 'running'",
            &[&job_id],
        )
        .await?;
    Ok(n == 1)
}

/// Merges a request into the lane's follow-up (creating it with `new_id` if
/// absent). Returns the follow-up's id and whether it already existed.
///
/// The union is computed here, not in SQL, since a scope with ranges unites per
/// metric ([`Scope::union`]); each merge is a compare-and-swap on the scope the
/// union was computed from, retried if another node merged in between, so no
/// request is lost to a race.
pub async fn enqueue(
    db: &impl GenericClient,
    kind: JobKind,
    scope: &Scope,
    trigger: Trigger,
    new_id: Uuid,
) -> DbResult<(Uuid, bool)> {
    loop {
        let current = db
            .query_opt(
                "SELECT job_id, scope FROM heartbeat.cluster_queue WHERE lane = $1",
                &[&kind.as_str()],
            )
            .await?;
        let Some(row) = current else {
            let json = serde_json::to_value(scope).expect("a scope serializes");
            let inserted = db
                .query_opt(
                    "INSERT INTO heartbeat.cluster_queue (lane, job_id, scope, trigger, requests)
                     VALUES ($1, $2, $3, $4, 1)
                     ON CONFLICT (lane) DO NOTHING RETURNING job_id",
                    &[&kind.as_str(), &new_id, &json, &trigger.as_str()],
                )
                .await?;
            match inserted {
                Some(r) => return Ok((r.get(0), false)),
                None => continue,
            }
        };
        let (job_id, old): (Uuid, serde_json::Value) = (row.get(0), row.get(1));
        let merged = match serde_json::from_value::<Scope>(old.clone()) {
            Ok(queued) => queued.union(scope),
            // Unreadable (written by a newer node?): widen to everything.
            Err(_) => Scope::All.union(scope),
        };
        let merged = serde_json::to_value(&merged).expect("a scope serializes");
        let n = db
            .execute(
                "UPDATE heartbeat.cluster_queue SET scope = $3, requests = requests + 1
                 WHERE lane = $1 AND job_id = $2 AND scope = $4",
                &[&kind.as_str(), &job_id, &merged, &old],
            )
            .await?;
        if n == 1 {
            return Ok((job_id, true));
        }
    }
}

/// A follow-up taken off the queue to run.
pub struct QueuedJob {
    pub job_id: Uuid,
    pub scope: Scope,
    pub trigger: Trigger,
    pub requests: u64,
    pub created_at: DateTime<Utc>,
}

fn queued_from_row(row: &tokio_postgres::Row) -> Option<QueuedJob> {
    Some(QueuedJob {
        job_id: row.get("job_id"),
        scope: serde_json::from_value(row.get("scope")).ok()?,
        trigger: row.get::<_, String>("trigger").parse().ok()?,
        requests: row.get::<_, i32>("requests") as u64,
        created_at: row.get("created_at"),
    })
}

/// Takes the lane's follow-up (caller holds the lane lock).
pub async fn take_queued(db: &impl GenericClient, kind: JobKind) -> DbResult<Option<QueuedJob>> {
    let row = db
        .query_opt(
            "DELETE FROM heartbeat.cluster_queue WHERE lane = $1
             RETURNING job_id, scope, trigger, requests, created_at",
            &[&kind.as_str()],
        )
        .await?;
    Ok(row.as_ref().and_then(queued_from_row))
}

fn queued_job(q: QueuedJob, kind: JobKind, node: &str) -> Job {
    let mut job = Job::new(kind, q.scope, q.trigger, node);
    job.job_id = q.job_id;
    job.created_at = q.created_at;
    job.coalesced_requests = q.requests;
    job
}

impl QueuedJob {
    /// The job record a node starts for this follow-up, keeping its id.
    pub fn into_job(self, kind: JobKind, node: &str) -> Job {
        queued_job(self, kind, node)
    }
}

/// The lane's follow-up as a job, without taking it.
pub async fn peek_queued(db: &impl GenericClient, kind: JobKind) -> DbResult<Option<Job>> {
    let row = db
        .query_opt(
            "SELECT job_id, scope, trigger, requests, created_at FROM heartbeat.cluster_queue WHERE lane = $1",
            &[&kind.as_str()],
        )
        .await?;
    Ok(row
        .as_ref()
        .and_then(queued_from_row)
        .map(|q| queued_job(q, kind, "")))
}

/// Where a job found in the shared tables stands.
pub enum Found {
    /// Running on a live node (its lane lock is held).
    Live(Job),
    /// Finished (or orphaned by a dead node): shown only to nodes that accepted a
    /// request for it, so a restarted daemon answers 404 for old ids.
    Ended(Job),
    /// Waiting in a lane's queue.
    Queued(Job),
}

/// Any published or queued job by id.
pub async fn find(db: &impl GenericClient, id: Uuid) -> DbResult<Option<Found>> {
    Ok(find_with(db, id, false).await?.map(|(found, _)| found))
}

/// Any published or queued job by id, with the event log its owner published in
/// the same row (read together, so the log never runs ahead of the job).
pub async fn find_with_events(
    db: &impl GenericClient,
    id: Uuid,
) -> DbResult<Option<(Found, Vec<JobEvent>)>> {
    find_with(db, id, true).await
}

async fn find_with(
    db: &impl GenericClient,
    id: Uuid,
    with_events: bool,
) -> DbResult<Option<(Found, Vec<JobEvent>)>> {
    if let Some(r) = db
        .query_opt(
            "SELECT job, extra_requests, lane, state,
                    CASE WHEN $2 THEN events ELSE '[]' END
             FROM heartbeat.cluster_job WHERE job_id = $1",
            &[&id, &with_events],
        )
        .await?
    {
        let Some(job) = job_from_row(r.get(0), r.get(1)) else {
            return Ok(None);
        };
        let events: Vec<JobEvent> = serde_json::from_value(r.get(4)).unwrap_or_default();
        if r.get::<_, String>(3) != "running" {
            return Ok(Some((Found::Ended(job), events)));
        }
        let held: bool = db
            .query_one(&format!("SELECT {LOCK_HELD}"), &[&lane_key(job.kind)])
            .await?
            .get(0);
        let found = if held {
            Found::Live(job)
        } else {
            Found::Ended(job)
        };
        return Ok(Some((found, events)));
    }
    let row = db
        .query_opt(
            "SELECT lane, job_id, scope, trigger, requests, created_at FROM heartbeat.cluster_queue WHERE job_id = $1",
            &[&id],
        )
        .await?;
    Ok(row.and_then(|r| {
        let kind: JobKind = r.get::<_, String>("lane").parse().ok()?;
        queued_from_row(&r).map(|q| (Found::Queued(queued_job(q, kind, "")), Vec::new()))
    }))
}

/// Jobs running on live nodes, newest first.
pub async fn live(db: &impl GenericClient) -> DbResult<Vec<Job>> {
    let mut jobs = Vec::new();
    for kind in JobKind::ALL {
        if let Some(job) = running(db, kind).await? {
            jobs.push(job);
        }
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(j.job_id));
    Ok(jobs)
}

/// Asks the owner of a running job to cancel it; true if such a job exists.
pub async fn request_cancel(db: &impl GenericClient, id: Uuid) -> DbResult<bool> {
    let n = db
        .execute(
            "UPDATE heartbeat.cluster_job SET cancel_requested = true WHERE job_id = $1 AND state = 'running'",
            &[&id],
        )
        .await?;
    Ok(n == 1)
}

/// Drops a follow-up before it starts; true if it was there.
pub async fn delete_queued(db: &impl GenericClient, id: Uuid) -> DbResult<bool> {
    let n = db
        .execute(
            "DELETE FROM heartbeat.cluster_queue WHERE job_id = $1",
            &[&id],
        )
        .await?;
    Ok(n == 1)
}

/// Forgets running rows of dead nodes (their lock is free) and finished rows past
/// retention. Returns how many were removed.
pub async fn clean_stale(db: &impl GenericClient, retain_secs: i64) -> DbResult<u64> {
    let mut removed = 0;
    for kind in JobKind::ALL {
        let sql = format!(
            "DELETE FROM heartbeat.cluster_job
             WHERE lane = $2 AND state = 'running' AND NOT {LOCK_HELD}"
        );
        removed += db.execute(&sql, &[&lane_key(kind), &kind.as_str()]).await?;
    }
    removed += db
        .execute(
            "DELETE FROM heartbeat.cluster_job
             WHERE state <> 'running' AND updated_at < now() - make_interval(secs => $1)",
            &[&(retain_secs as f64)],
        )
        .await?;
    Ok(removed)
}

/// Lanes with a follow-up waiting (the janitor starts those nobody runs).
pub async fn queued_lanes(db: &impl GenericClient) -> DbResult<Vec<JobKind>> {
    let rows = db
        .query("SELECT lane FROM heartbeat.cluster_queue", &[])
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.get::<_, String>(0).parse().ok())
        .collect())
}
