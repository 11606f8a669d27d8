//! `GET /api/jobs/{id}/events`: a job's changes as Server-Sent Events, in order,
//! resumable with `Last-Event-ID`, on the owner and on any other node.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use heartbeat::cli::sse::{SseEvent, SseParser};
use heartbeat::jobs::{JobBody, JobContext, JobError, JobKind};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::helpers::{error_code, fresh_database, spawn_app_on_with_bodies, test_config, TestApp};

/// A recompute that takes one step per permit the test gives it, so the test
/// decides when each change happens: ingest (2 units), then compute (1 unit).
#[derive(Clone)]
struct StepBody {
    steps: Arc<Semaphore>,
}

impl StepBody {
    fn new() -> Self {
        Self {
            steps: Arc::new(Semaphore::new(0)),
        }
    }
    fn allow(&self, n: usize) {
        self.steps.add_permits(n);
    }
}

impl JobBody for StepBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let steps = self.steps.clone();
        Box::pin(async move {
            let step = || async {
                tokio::select! {
                    permit = steps.acquire() => { permit.unwrap().forget(); Ok(()) }
                    _ = ctx.cancel_token().cancelled() => Err(JobError::Cancelled),
                }
            };
            step().await?;
            ctx.begin_phase("ingest", 2);
            step().await?;
            ctx.advance();
            step().await?;
            ctx.advance();
            step().await?;
            ctx.begin_phase("compute", 1);
            step().await?;
            ctx.advance();
            Ok(json!({"metrics": 1}))
        })
    }
}

/// Every step the body takes; the events it produces, in order.
const STEPS: usize = 5;
const EXPECTED: [(&str, &str, Option<&str>, u64, u64); 7] = [
    ("state", "running", None, 0, 0),
    ("phase", "running", Some("ingest"), 0, 2),
    ("progress", "running", Some("ingest"), 1, 2),
    ("progress", "running", Some("ingest"), 2, 2),
    ("phase", "running", Some("compute"), 0, 1),
    ("progress", "running", Some("compute"), 1, 1),
    ("state", "succeeded", Some("compute"), 1, 1),
];

async fn app_on(database_url: String, node: &str, body: &StepBody) -> TestApp {
    let mut config = test_config();
    config.jobs.node_id = Some(node.to_string());
    spawn_app_on_with_bodies(
        config,
        database_url,
        vec![(
            JobKind::Recompute,
            Arc::new(body.clone()) as Arc<dyn JobBody>,
        )],
    )
    .await
}

async fn submit(app: &TestApp) -> String {
    let (status, body) = app
        .post_json("/api/metrics/recompute", &json!({"metric_ids": "all"}))
        .await;
    assert_eq!(status, 202, "{body}");
    body["job_id"].as_str().unwrap().to_string()
}

/// An open event stream, read as the HTML standard's parsing rules say.
struct Events {
    resp: reqwest::Response,
    parser: SseParser,
    ready: VecDeque<SseEvent>,
}

impl Events {
    async fn open(app: &TestApp, job_id: &str, last_event_id: Option<&str>) -> Events {
        let mut req = app
            .client
            .get(app.url(&format!("/api/jobs/{job_id}/events")))
            .header("Accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Events {
            resp,
            parser: SseParser::default(),
            ready: VecDeque::new(),
        }
    }

    /// The next event, or None once the server ends the stream.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(event);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.resp.chunk())
                .await
                .expect("an event (or the end) within 20 s")
                .expect("the stream reads");
            self.ready.extend(self.parser.feed(&chunk?));
        }
    }

    async fn rest(mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while let Some(e) = self.next().await {
            out.push(e);
        }
        out
    }
}

/// (id, event, state, phase, done, total) of a frame, checking that `id:` and
/// `event:` agree with the JSON.
fn summary(e: &SseEvent) -> (u64, String, String, Option<String>, u64, u64) {
    let data: Value = serde_json::from_str(&e.data).unwrap();
    assert_eq!(data["id"].as_u64().unwrap().to_string(), e.id, "{e:?}");
    assert_eq!(data["event"], e.event.as_str(), "{e:?}");
    (
        e.id.parse().unwrap(),
        e.event.clone(),
        data["state"].as_str().unwrap().to_string(),
        data["phase"].as_str().map(str::to_string),
        data["progress"]["done"].as_u64().unwrap(),
        data["progress"]["total"].as_u64().unwrap(),
    )
}

fn expected() -> Vec<(u64, String, String, Option<String>, u64, u64)> {
    EXPECTED
        .iter()
        .enumerate()
        .map(|(i, (event, state, phase, done, total))| {
            (
                i as u64 + 1,
                event.to_string(),
                state.to_string(),
                phase.map(str::to_string),
                *done,
                *total,
            )
        })
        .collect()
}

#[tokio::test]
async fn every_transition_arrives_in_order_ending_with_the_final_state() {
    let body = StepBody::new();
    let app = app_on(fresh_database().await, "n1", &body).await;
    let job_id = submit(&app).await;
    let mut events = Events::open(&app, &job_id, None).await;
    // The job waits for its first step: the stream shows it running, then each
    // change as the body makes it.
    let first = events.next().await.unwrap();
    let mut got = vec![summary(&first)];
    for _ in 0..STEPS {
        body.allow(1);
        got.push(summary(&events.next().await.unwrap()));
    }
    let last = events.next().await.expect("the final state");
    got.push(summary(&last));
    assert_eq!(got, expected());
    // The final event carries the whole job, and the stream ends with it.
    let data: Value = serde_json::from_str(&last.data).unwrap();
    assert_eq!(data["job"]["job_id"], job_id.as_str());
    assert_eq!(data["job"]["result"]["metrics"], 1);
    assert!(events.next().await.is_none(), "the stream ends");
    // The raw frames are standard SSE: `id:` and `event:` lines per event.
    let raw = app
        .client
        .get(app.url(&format!("/api/jobs/{job_id}/events")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(raw.contains("id: 1\n") || raw.contains("id:1\n"), "{raw}");
    assert!(
        raw.contains("event: phase\n") || raw.contains("event:phase\n"),
        "{raw}"
    );
}

#[tokio::test]
async fn a_reconnect_with_last_event_id_misses_nothing() {
    let body = StepBody::new();
    let app = app_on(fresh_database().await, "n1", &body).await;
    let job_id = submit(&app).await;
    let mut first = Events::open(&app, &job_id, None).await;
    body.allow(2);
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(first.next().await.unwrap());
    }
    let last_id = seen.last().unwrap().id.clone();
    assert_eq!(last_id, "3");
    drop(first);
    // Changes made while nobody listens are kept for the reconnect.
    body.allow(STEPS - 2);
    let job_done = async {
        for _ in 0..200 {
            let (_, job) = app.get_json(&format!("/api/jobs/{job_id}")).await;
            if job["state"] == "succeeded" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the job did not finish");
    };
    job_done.await;
    let rest = Events::open(&app, &job_id, Some(&last_id))
        .await
        .rest()
        .await;
    seen.extend(rest);
    let got: Vec<_> = seen.iter().map(summary).collect();
    assert_eq!(got, expected());

    // Resuming after the final event: nothing more (204 stops an EventSource).
    let r = app
        .client
        .get(app.url(&format!("/api/jobs/{job_id}/events")))
        .header("Last-Event-ID", "7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // A Last-Event-ID that is no event id of ours is named; an unknown job is 404.
    let r = app
        .client
        .get(app.url(&format!("/api/jobs/{job_id}/events")))
        .header("Last-Event-ID", "seven")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    assert_eq!(error_code(&body), "invalid_input");
    assert!(body.to_string().contains("Last-Event-ID"), "{body}");
    let (status, body) = app
        .get_json(&format!("/api/jobs/{}/events", uuid::Uuid::now_v7()))
        .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    let (status, body) = app
        .get_json(&format!("/api/jobs/{job_id}/events?staus=down"))
        .await;
    assert_eq!((status, error_code(&body)), (422, "invalid_query"));
}

#[tokio::test]
async fn a_stream_opened_on_a_node_that_does_not_own_the_job_shows_the_owners_events() {
    let database_url = fresh_database().await;
    let owner_body = StepBody::new();
    let owner = app_on(database_url.clone(), "owner", &owner_body).await;
    let other = app_on(database_url, "other", &StepBody::new()).await;
    let job_id = submit(&owner).await;
    let (_, job) = other.get_json(&format!("/api/jobs/{job_id}")).await;
    assert_eq!(job["node"], "owner", "{job}");

    let mut remote = Events::open(&other, &job_id, None).await;
    let mut got = vec![summary(&remote.next().await.unwrap())];
    owner_body.allow(2);
    // The follower reads the owner's published log, so it may see a step late but
    // never out of order or with a gap; resume from another node mid-way too.
    got.push(summary(&remote.next().await.unwrap()));
    drop(remote);
    let resumed_from = got.last().unwrap().0.to_string();
    owner_body.allow(STEPS - 2);
    let rest = Events::open(&other, &job_id, Some(&resumed_from))
        .await
        .rest()
        .await;
    got.extend(rest.iter().map(summary));
    assert_eq!(got, expected());
    let final_data: Value = serde_json::from_str(&rest.last().unwrap().data).unwrap();
    assert_eq!(final_data["job"]["node"], "owner");
    assert_eq!(final_data["job"]["state"], "succeeded");
}
