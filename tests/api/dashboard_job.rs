//! The dashboard's job view (`#job/<id>`) in headless Chromium: it follows the
//! job's event stream, showing each phase as it begins and the final state, and
//! does not poll the job meanwhile (counted by the daemon itself, in
//! `heartbeat_http_requests_total`); it polls only when the stream is refused.
//! The page's stream reader is also checked against the event-stream rules of
//! the WHATWG HTML standard and on a dropped connection.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use heartbeat::jobs::{JobBody, JobContext, JobError, JobKind};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::dashboard::{find_chromium, screenshot_dir, Page};
use crate::helpers::{spawn_app_with_bodies, test_config, TestApp};

/// The dashboard's poll interval (`POLL_MS` in app.js).
const PAGE_POLL: Duration = Duration::from_millis(2000);

/// A recompute of two phases, each held until the test releases it, so the test
/// decides when the page may see the next phase.
#[derive(Clone)]
struct GatedBody {
    release: Arc<Semaphore>,
}

impl GatedBody {
    fn new() -> Self {
        GatedBody {
            release: Arc::new(Semaphore::new(0)),
        }
    }
}

impl JobBody for GatedBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let release = self.release.clone();
        Box::pin(async move {
            for (phase, total) in [("ingest", 2), ("compute", 3)] {
                ctx.begin_phase(phase, total);
                ctx.advance();
                tokio::select! {
                    permit = release.acquire() => permit.unwrap().forget(),
                    _ = ctx.cancel_token().cancelled() => return Err(JobError::Cancelled),
                }
                for _ in 1..total {
                    ctx.advance();
                }
            }
            Ok(json!({"metrics": 3}))
        })
    }
}

async fn gated_app() -> (TestApp, GatedBody) {
    let body = GatedBody::new();
    let app = spawn_app_with_bodies(
        test_config(),
        vec![(
            JobKind::Recompute,
            Arc::new(body.clone()) as Arc<dyn JobBody>,
        )],
    )
    .await;
    (app, body)
}

async fn start_recompute(app: &TestApp, request: Value) -> String {
    let (status, body) = app.post_json("/api/metrics/recompute", &request).await;
    assert_eq!(status, 202, "{body}");
    body["job_id"].as_str().unwrap().to_string()
}

/// The route templates of one job and of its events, whatever the path
/// parameter is named (`/api/jobs/{key}`: the router shares it with
/// `POST /api/jobs/{kind}`).
const ONE_JOB: &str = "/api/jobs/{}";
const ONE_JOBS_EVENTS: &str = "/api/jobs/{}/events";

/// Whether `route` is `template` with its one `{}` standing for any `{name}`.
fn route_is(route: &str, template: &str) -> bool {
    let (head, tail) = template.split_once("{}").unwrap();
    route
        .strip_prefix(head)
        .and_then(|r| r.strip_suffix(tail))
        .is_some_and(|param| {
            param.len() > 2
                && param.starts_with('{')
                && param.ends_with('}')
                && !param[1..param.len() - 1].contains(['/', '{', '}'])
        })
}

/// How many `GET` requests the daemon answered on `template`, whatever their
/// status, from its own Prometheus counter.
async fn requests_on(app: &TestApp, template: &str) -> u64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("heartbeat_http_requests_total{"))
        .filter(|l| l.contains("method=\"GET\""))
        .filter(|l| {
            l.split("route=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .is_some_and(|route| route_is(route, template))
        })
        .map(|l| {
            l.rsplit(' ')
                .next()
                .unwrap()
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("a counter line: {l}")) as u64
        })
        .sum()
}

#[tokio::test]
async fn the_job_views_script_is_served_from_the_binary_and_loaded_by_the_page() {
    let app = crate::helpers::spawn_app().await;
    let html = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"<script src="/assets/job_stream.js" defer>"#));
    assert!(html.contains(r#"<section id="view-job""#));
    let r = app
        .client
        .get(app.url("/assets/job_stream.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let body = r.text().await.unwrap();
    assert!(!body.contains("http"), "no other origin is referenced");
}

#[tokio::test]
async fn in_chromium_the_job_view_follows_the_stream_phase_by_phase_without_polling_the_job() {
    let Some(chromium) = find_chromium() else {
        eprintln!("SKIPPED: Chromium is not installed (apt-get install chromium); the job view test did not run");
        return;
    };
    let (app, body) = gated_app().await;
    // A backfill of yesterday, so the compute phase counts buckets.
    let today = chrono::Utc::now().date_naive();
    let yesterday = today - chrono::Duration::days(1);
    let job_id = start_recompute(
        &app,
        json!({"metric_ids": ["orders"], "from": yesterday.to_string(), "to": today.to_string()}),
    )
    .await;
    let shots = screenshot_dir();
    let mut page = Page::launch(&chromium).await;
    page.navigate(&app.url(&format!("/#job/{job_id}"))).await;

    page.wait_for("document.querySelector('#job-phases li[data-phase=ingest].running')")
        .await;
    page.wait_for("document.getElementById('job-live').dataset.source === 'stream'")
        .await;
    page.wait_for("document.getElementById('job-progress').textContent.includes('1 / 2 sources')")
        .await;
    // The job is held in its first phase for a few of the page's poll
    // intervals: a page that polled the job would do so now.
    tokio::time::sleep(PAGE_POLL * 3).await;
    let phases = page
        .eval("[...document.querySelectorAll('#job-phases li')].map(li => li.dataset.phase)")
        .await;
    assert_eq!(phases, json!(["ingest"]), "compute has not begun");

    body.release.add_permits(1);
    page.wait_for("document.querySelector('#job-phases li[data-phase=compute].running')")
        .await;
    let phases = page
        .eval("[...document.querySelectorAll('#job-phases li')].map(li => li.dataset.phase + ':' + li.className)")
        .await;
    assert_eq!(
        phases,
        json!(["ingest:done", "compute:running"]),
        "phases in the order they ran"
    );
    page.wait_for("document.getElementById('job-progress').textContent.includes('1 / 3 buckets')")
        .await;

    body.release.add_permits(1);
    page.wait_for("document.getElementById('job-live').dataset.state === 'succeeded'")
        .await;
    let summary = page
        .eval("document.getElementById('job-summary').textContent")
        .await;
    let summary = summary.as_str().unwrap();
    assert!(summary.starts_with("succeeded"), "{summary}");
    assert!(
        summary.contains("orders "),
        "the range per metric: {summary}"
    );
    let follow = page
        .eval("document.getElementById('job-follow').textContent")
        .await;
    assert_eq!(follow, json!("Followed live to the end."));
    page.screenshot(&shots.join("job.png")).await;

    // What the daemon saw: one read of the job (for its kind, trigger and
    // scope) and the stream, not a poll every two seconds. The read counted
    // shows the count is live (a renamed route would not pass as "no polls").
    let reads = requests_on(&app, ONE_JOB).await;
    assert_eq!(reads, 1, "one read of the job, no polling");
    let streams = requests_on(&app, ONE_JOBS_EVENTS).await;
    assert!(streams >= 1, "the page opened the stream: {streams}");
    page.close();
}

#[tokio::test]
async fn in_chromium_a_refused_stream_falls_back_to_polling_the_job() {
    let Some(chromium) = find_chromium() else {
        eprintln!("SKIPPED: Chromium is not installed (apt-get install chromium); the job view test did not run");
        return;
    };
    let (app, body) = gated_app().await;
    body.release.add_permits(2);
    let job_id = start_recompute(&app, json!({"metric_ids": "all"})).await;
    let mut page = Page::launch(&chromium).await;
    page.navigate(&app.url("/#jobs")).await;
    // A proxy that refuses event streams: every /events request answers 503.
    page.eval(&format!(
        "const realFetch = window.fetch;
         window.fetch = (url, init) => String(url).endsWith('/events')
           ? Promise.resolve(new Response('{{\"error\":{{\"code\":\"unavailable\",\"message\":\"no streams here\"}}}}',
               {{status: 503, headers: {{'Content-Type': 'application/json'}}}}))
           : realFetch(url, init);
         location.hash = '#job/{job_id}'; true"
    ))
    .await;
    page.wait_for("document.getElementById('job-live').dataset.source === 'poll'")
        .await;
    page.wait_for("document.getElementById('job-live').dataset.state === 'succeeded'")
        .await;
    page.wait_for("document.querySelectorAll('#job-phases li').length === 2")
        .await;
    let phases = page
        .eval("[...document.querySelectorAll('#job-phases li')].map(li => li.dataset.phase + ':' + li.className)")
        .await;
    assert_eq!(phases, json!(["ingest:done", "compute:done"]));
    let follow = page
        .eval("document.getElementById('job-follow').textContent")
        .await;
    assert!(
        follow
            .as_str()
            .unwrap()
            .contains("refused the event stream"),
        "{follow}"
    );
    let reads = requests_on(&app, ONE_JOB).await;
    assert!(reads >= 2, "the job was read, then polled: {reads}");
    page.close();
}

#[tokio::test]
async fn in_chromium_the_pages_stream_reader_parses_by_the_standard_and_resumes_after_a_drop() {
    let Some(chromium) = find_chromium() else {
        eprintln!("SKIPPED: Chromium is not installed (apt-get install chromium); the stream reader test did not run");
        return;
    };
    let (app, _) = gated_app().await;
    let mut page = Page::launch(&chromium).await;
    page.navigate(&app.url("/#jobs")).await;
    page.wait_for("typeof followEventStream === 'function'")
        .await;

    // The standard's own examples: a comment, joined data lines, a field
    // without a colon, an id carried over and reset, one space removed.
    let parsed = page
        .eval(
            r#"new EventStreamParser().feed(": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\nevent: add\ndata: YHOO\ndata: +2\ndata\n\n")
                 .map(e => [e.type, e.data, e.lastEventId])"#,
        )
        .await;
    assert_eq!(
        parsed,
        json!([
            ["message", "first event", "1"],
            ["message", "second event", ""],
            ["message", " third event", ""],
            ["add", "YHOO\n+2\n", ""]
        ])
    );
    // Any line ending and any split give the same events.
    let splits = page
        .eval(
            r#"(() => {
                const text = "id: 7\r\nevent: phase\r\ndata: {\"a\":\"é\"}\r\n\r\nid: 8\revent: state\rdata: x\r\r: c\n\n";
                const whole = JSON.stringify(new EventStreamParser().feed(text));
                const bad = [];
                for (let cut = 1; cut < text.length; cut++) {
                    const p = new EventStreamParser();
                    const got = p.feed(text.slice(0, cut)).concat(p.feed(text.slice(cut)));
                    if (JSON.stringify(got) !== whole) bad.push(cut);
                }
                return [JSON.parse(whole).map(e => [e.type, e.data, e.lastEventId]), bad];
            })()"#,
        )
        .await;
    assert_eq!(
        splits,
        json!([[["phase", "{\"a\":\"é\"}", "7"], ["state", "x", "8"]], []])
    );

    // A connection that drops in the middle of an event (delivered one byte at
    // a time, so UTF-8 sequences split too) is reopened with the last
    // dispatched id; the unfinished event is not dispatched; the stream stops
    // when the handler says so.
    let resumed = page
        .eval(
            r#"(async () => {
                const bodies = [
                    "id: 1\r\nevent: state\r\ndata: {\"s\":\"é\"}\r\n\r\nid: 2\nevent: phase\ndata: {\"p\":\n\nid: 3\nevent: progress\ndata: cut",
                    ": resumed\nid: 3\nevent: state\ndata: end\n\n",
                ];
                const asked = [];
                const fake = (url, init) => {
                    asked.push([url, init.headers["Last-Event-ID"] || null, init.headers.Accept]);
                    const bytes = new TextEncoder().encode(bodies.shift());
                    const body = new ReadableStream({ start(c) { for (const b of bytes) c.enqueue(new Uint8Array([b])); c.close(); } });
                    return Promise.resolve(new Response(body, { status: 200, headers: { "Content-Type": "text/event-stream" } }));
                };
                const seen = [];
                const waits = [];
                const outcome = await followEventStream("/api/jobs/x/events",
                    { onEvent: (ev) => { seen.push([ev.lastEventId, ev.type, ev.data]); return ev.data !== "end"; } },
                    { fetch: fake, delay: (ms) => { waits.push(ms); return Promise.resolve(); } });
                return { outcome, seen, asked, waits };
            })()"#,
        )
        .await;
    assert_eq!(resumed["outcome"], "done", "{resumed}");
    assert_eq!(
        resumed["seen"],
        json!([
            ["1", "state", "{\"s\":\"é\"}"],
            ["2", "phase", "{\"p\":"],
            ["3", "state", "end"]
        ]),
        "{resumed}"
    );
    assert_eq!(
        resumed["asked"],
        json!([
            ["/api/jobs/x/events", null, "text/event-stream"],
            ["/api/jobs/x/events", "2", "text/event-stream"]
        ]),
        "{resumed}"
    );
    assert_eq!(resumed["waits"], json!([1000]), "{resumed}");

    // A 204 ends the stream; an error status refuses it (the view then
    // polls); a connection that keeps failing backs off, bounded, then refuses.
    let ends = page
        .eval(
            r#"(async () => {
                const answer = (status) => () => Promise.resolve(new Response(status === 204 ? null : "{}", { status, headers: { "Content-Type": "application/json" } }));
                const refusedWith = [];
                const handlers = { onEvent: () => true, onRefused: (s) => refusedWith.push(s) };
                const now = { delay: () => Promise.resolve() };
                const on204 = await followEventStream("/e", handlers, { ...now, fetch: answer(204) });
                const on503 = await followEventStream("/e", handlers, { ...now, fetch: answer(503) });
                const on401 = await followEventStream("/e", handlers, { ...now, fetch: answer(401) });
                const notSse = await followEventStream("/e", handlers, { ...now, fetch: answer(200) });
                const waits = [];
                const down = await followEventStream("/e", handlers, {
                    fetch: () => Promise.reject(new TypeError("Failed to fetch")),
                    delay: (ms) => { waits.push(ms); return Promise.resolve(); },
                });
                return { on204, on503, on401, notSse, down, waits, refusedWith };
            })()"#,
        )
        .await;
    assert_eq!(
        ends,
        json!({
            "on204": "done", "on503": "refused", "on401": "refused", "notSse": "refused",
            "down": "refused", "waits": [1000, 2000, 4000, 8000, 15000, 15000],
            "refusedWith": [503, 401, 200, 0]
        })
    );
    page.close();
}
