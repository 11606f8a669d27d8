//! The daemon's Prometheus recorder: the small API other areas call to count
//! things, and the exposition text `GET /metrics` serves (`super::routes`).
//!
//! Each `Application` owns its own recorder (held in [`Metrics`], one per daemon)
//! instead of the process-global one, so several daemons in one test process never
//! see each other's numbers (docs/decisions.md). The price is that the
//! `metrics::counter!` macros alone would go nowhere: call sites go through
//! [`Metrics`] (`state.metrics.ping_received("success")`), which routes them to
//! this daemon's recorder.
//!
//! Three ways numbers get here:
//! - **events**: HTTP requests (the `track_http` middleware in `super::routes`),
//!   finished jobs (the [`observe_jobs`] loop reading the engine's broadcast), and
//!   the calls below;
//! - **engine counters**: started / coalesced / queued per lane, kept by the engine
//!   as atomics and copied in at scrape time;
//! - **scrape-time gauges**: pool connections, running jobs, loop beat ages.
//!
//! Scrape-time numbers are read from the handles in a [`Scrape`], so rendering
//! needs no application state and no HTTP.
//!
//! Histogram samples pile up in the recorder until an upkeep folds them into
//! their summaries. Rendering does one, but a daemon nobody scrapes would keep
//! every request's latency sample forever (about 22 bytes a request), so
//! [`upkeep_loop`] runs one every [`UPKEEP_EVERY`] whether or not anyone scrapes.
//!
//! Every name and label is listed in docs/operations/metrics.md.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use metrics::{Counter, Gauge, Histogram, Label};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use tokio_util::sync::CancellationToken;

use super::liveness::Liveness;
use crate::jobs::{Engine, Job, JobKind};
use crate::schedule::counters::ScheduleCounters;

/// Histogram buckets in seconds: HTTP latencies at the low end, job and phase
/// durations (up to the 30-minute max runtime) at the high end.
const BUCKETS_SECONDS: [f64; 16] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
];

/// Content type of the Prometheus text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a scheduled tick turned into, for the scheduler's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickOutcome {
    /// The tick was submitted to the engine.
    Fired,
    /// It was submitted and the running job already covered it.
    Absorbed,
    /// Its time passed while the daemon was down or stalled.
    Missed,
    /// A catch-up run for missed ticks was started.
    CaughtUp,
}

impl TickOutcome {
    fn metric(self) -> &'static str {
        match self {
            TickOutcome::Fired => "heartbeat_scheduler_fired_total",
            TickOutcome::Absorbed => "heartbeat_scheduler_absorbed_total",
            TickOutcome::Missed => "heartbeat_scheduler_missed_total",
            TickOutcome::CaughtUp => "heartbeat_scheduler_caught_up_total",
        }
    }
}

/// What a scrape reads at render time: borrowed handles, so a scrape clones
/// nothing.
pub struct Scrape<'a> {
    /// Lane counters (started, coalesced, queued) and which lanes run here.
    pub jobs: &'a Engine,
    /// The cron table's per-entry counters.
    pub schedule: &'a ScheduleCounters,
    /// The main pool, for its connection gauges.
    pub pool: &'a Pool,
    /// The watched loops, for their beat ages.
    pub liveness: &'a Liveness,
    /// Estimated rows per table (`super::table_rows::estimates`), read just before.
    pub table_rows: &'a [(String, f64)],
}

/// How often [`upkeep_loop`] folds histogram samples into their summaries: short
/// enough that the sample buffers stay small under any realistic request rate
/// (1,000 requests a second leave at most 5,000 samples, ~110 KB, between two
/// upkeeps), long enough to cost nothing.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// This daemon's recorder. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    /// Arc because handlers and loops all record into the one recorder.
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// Upkeeps run by [`Metrics::run_upkeep`] (not those a scrape does), so a
    /// test can see the timer works without anyone scraping.
    upkeeps: Arc<AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&BUCKETS_SECONDS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        let metrics = Self {
            recorder: Arc::new(recorder),
            handle,
            upkeeps: Arc::new(AtomicU64::new(0)),
        };
        metrics.describe();
        metrics
    }

    /// Folds the histogram samples recorded since the last upkeep into their
    /// summaries, freeing the samples. [`upkeep_loop`] calls it on a timer.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
        self.upkeeps.fetch_add(1, Ordering::Relaxed);
    }

    /// How many timer upkeeps ([`Metrics::run_upkeep`]) have run.
    pub fn upkeeps(&self) -> u64 {
        self.upkeeps.load(Ordering::Relaxed)
    }

    fn describe(&self) {
        metrics::with_local_recorder(&*self.recorder, || {
            for (name, help) in DESCRIPTIONS {
                match name {
                    n if n.ends_with("_total") => metrics::describe_counter!(*n, *help),
                    n if n.ends_with("_seconds") && HISTOGRAMS.contains(n) => {
                        metrics::describe_histogram!(*n, metrics::Unit::Seconds, *help)
                    }
                    n => metrics::describe_gauge!(*n, *help),
                }
            }
        });
    }

    /// A counter on this daemon's recorder.
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Counter {
        let labels = to_labels(labels);
        metrics::with_local_recorder(&*self.recorder, || metrics::counter!(name, labels))
    }

    /// A gauge on this daemon's recorder.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Gauge {
        let labels = to_labels(labels);
        metrics::with_local_recorder(&*self.recorder, || metrics::gauge!(name, labels))
    }

    /// A histogram on this daemon's recorder.
    pub fn histogram(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Histogram {
        let labels = to_labels(labels);
        metrics::with_local_recorder(&*self.recorder, || metrics::histogram!(name, labels))
    }

    /// The scheduler's counters, per cron entry (`recompute`, `benchmarks`...).
    pub fn scheduler_tick(&self, entry: &str, outcome: TickOutcome) {
        self.counter(outcome.metric(), &[("entry", entry)])
            .increment(1);
    }

    /// A ping was recorded: `kind` is `success`, `start`, `fail`, `log` or
    /// `exit_code` (a `/hb/{token}/{n}` ping).
    pub fn ping_received(&self, kind: &str) {
        self.counter("heartbeat_pings_received_total", &[("kind", kind)])
            .increment(1);
    }

    /// Detection events (docs/monitoring.md): `missed` and `timeout` as the
    /// deadline loop counts them, `early` and `too_fast` as the ping statement
    /// flags them, `silenced` and `suppressed` per flip whose alert was withheld.
    pub fn detection_events(&self, event: &str, n: u64) {
        if n > 0 {
            self.counter("heartbeat_detection_events_total", &[("event", event)])
                .increment(n);
        }
    }

    /// One delivery pass: alerts delivered, and alerts given up on after the
    /// last retry.
    pub fn alerts_delivered(&self, sent: u64, failed: u64) {
        self.counter("heartbeat_alerts_sent_total", &[])
            .increment(sent);
        self.counter("heartbeat_alerts_failed_total", &[])
            .increment(failed);
    }

    /// Channels whose most recent delivery attempt failed, per kind (every
    /// kind given, 0 included).
    pub fn channels_failing(&self, by_kind: &[(&str, u64)]) {
        for (kind, n) in by_kind {
            self.gauge("heartbeat_channels_failing", &[("kind", kind)])
                .set(*n as f64);
        }
    }

    /// How late the deadline loop's last pass started against its schedule.
    pub fn deadline_loop_lag(&self, lag: Duration) {
        self.gauge("heartbeat_deadline_loop_lag_seconds", &[])
            .set(lag.as_secs_f64());
    }

    /// Heartbeats per status (`pending`, `up`, `late`, `down`, `paused`), as the
    /// deadline loop last counted them.
    pub fn heartbeats_by_status(&self, counts: &[(&str, u64)]) {
        for (status, n) in counts {
            self.gauge("heartbeat_heartbeats", &[("status", status)])
                .set(*n as f64);
        }
    }

    /// One finished job: outcome counter, whole-job and per-phase durations.
    pub fn job_finished(&self, job: &Job) {
        let kind = job.kind.as_str();
        let outcome = match job.state {
            crate::jobs::JobState::Succeeded => "succeeded",
            crate::jobs::JobState::Failed => "failed",
            crate::jobs::JobState::Cancelled => "cancelled",
            // The engine only broadcasts finished jobs.
            crate::jobs::JobState::Queued | crate::jobs::JobState::Running => return,
        };
        self.counter(
            "heartbeat_jobs_finished_total",
            &[("kind", kind), ("outcome", outcome)],
        )
        .increment(1);
        if let (Some(start), Some(end)) = (job.started_at, job.finished_at) {
            self.histogram("heartbeat_job_duration_seconds", &[("kind", kind)])
                .record(seconds(end - start));
        }
        for phase in &job.phases {
            if let Some(end) = phase.finished_at {
                self.histogram(
                    "heartbeat_job_phase_duration_seconds",
                    &[("kind", kind), ("phase", &phase.name)],
                )
                .record(seconds(end - phase.started_at));
            }
        }
    }

    /// Copies the scrape-time numbers in, then renders the exposition text.
    pub fn render(&self, from: &Scrape<'_>) -> String {
        for kind in JobKind::ALL {
            let k = kind.as_str();
            let stats = from.jobs.lane_stats(kind);
            self.counter("heartbeat_jobs_started_total", &[("kind", k)])
                .absolute(stats.started);
            self.counter("heartbeat_jobs_coalesced_total", &[("kind", k)])
                .absolute(stats.coalesced);
            self.counter("heartbeat_jobs_queued_total", &[("kind", k)])
                .absolute(stats.queued);
            self.gauge("heartbeat_jobs_running", &[("kind", k)]).set(
                if from.jobs.running_locally(kind) {
                    1.0
                } else {
                    0.0
                },
            );
        }
        for (entry, c) in from.schedule.snapshot() {
            let labels = [("entry", entry.as_str())];
            self.counter(TickOutcome::Fired.metric(), &labels)
                .absolute(c.fired);
            self.counter(TickOutcome::Absorbed.metric(), &labels)
                .absolute(c.absorbed);
            self.counter(TickOutcome::Missed.metric(), &labels)
                .absolute(c.missed);
            self.counter(TickOutcome::CaughtUp.metric(), &labels)
                .absolute(c.caught_up);
        }
        let pool = from.pool.status();
        let idle = pool.available as f64;
        let in_use = pool.size.saturating_sub(pool.available) as f64;
        self.gauge("heartbeat_db_pool_connections", &[("state", "in_use")])
            .set(in_use);
        self.gauge("heartbeat_db_pool_connections", &[("state", "idle")])
            .set(idle);
        self.gauge("heartbeat_db_pool_max_connections", &[])
            .set(pool.max_size as f64);
        self.gauge("heartbeat_db_pool_waiting", &[])
            .set(pool.waiting as f64);
        for (name, age) in from.liveness.ages() {
            self.gauge("heartbeat_loop_beat_age_seconds", &[("loop", name)])
                .set(age.as_secs_f64());
        }
        for (table, rows) in from.table_rows {
            self.gauge("heartbeat_table_rows_estimate", &[("table", table)])
                .set(*rows);
        }
        if let Some(rss) = super::table_rows::resident_bytes() {
            self.gauge("heartbeat_process_resident_memory_bytes", &[])
                .set(rss as f64);
        }
        self.gauge(
            "heartbeat_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
        )
        .set(1.0);
        self.handle.run_upkeep();
        self.handle.render()
    }
}

fn to_labels(labels: &[(&'static str, &str)]) -> Vec<Label> {
    labels
        .iter()
        .map(|(k, v)| Label::new(*k, v.to_string()))
        .collect()
}

fn seconds(d: chrono::TimeDelta) -> f64 {
    d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6
}

/// Names that are histograms (the rest ending in `_seconds` are gauges).
const HISTOGRAMS: [&str; 3] = [
    "heartbeat_http_request_duration_seconds",
    "heartbeat_job_duration_seconds",
    "heartbeat_job_phase_duration_seconds",
];

/// `# HELP` text of every metric; docs/operations/metrics.md mirrors this list.
pub const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "heartbeat_http_requests_total",
        "HTTP requests by method, route template and status.",
    ),
    (
        "heartbeat_http_request_duration_seconds",
        "HTTP request latency by method and route template.",
    ),
    ("heartbeat_jobs_started_total", "Jobs started, per kind."),
    (
        "heartbeat_jobs_finished_total",
        "Jobs finished, per kind and outcome (succeeded, failed, cancelled).",
    ),
    (
        "heartbeat_jobs_coalesced_total",
        "Requests that joined an existing job (running or queued), per kind.",
    ),
    (
        "heartbeat_jobs_queued_total",
        "Follow-up jobs queued behind a running one, per kind.",
    ),
    (
        "heartbeat_jobs_running",
        "1 while a job of the kind runs on this node.",
    ),
    (
        "heartbeat_job_duration_seconds",
        "Wall time of finished jobs, per kind.",
    ),
    (
        "heartbeat_job_phase_duration_seconds",
        "Wall time of finished job phases, per kind and phase.",
    ),
    (
        "heartbeat_scheduler_fired_total",
        "Cron ticks submitted to the engine, per entry.",
    ),
    (
        "heartbeat_scheduler_absorbed_total",
        "Cron ticks absorbed by the job already running, per entry.",
    ),
    (
        "heartbeat_scheduler_missed_total",
        "Cron ticks that passed while the daemon was down or stalled, per entry.",
    ),
    (
        "heartbeat_scheduler_caught_up_total",
        "Catch-up runs started for missed ticks, per entry.",
    ),
    (
        "heartbeat_heartbeats",
        "Heartbeats per status, as the deadline loop last counted them.",
    ),
    (
        "heartbeat_pings_received_total",
        "Pings recorded, per kind (success, start, fail, log, exit_code).",
    ),
    (
        "heartbeat_detection_events_total",
        "Detection events, per event (missed, timeout, early, too_fast, silenced, suppressed).",
    ),
    (
        "heartbeat_alerts_sent_total",
        "Alert webhook deliveries that succeeded.",
    ),
    (
        "heartbeat_alerts_failed_total",
        "Alerts given up on after the last delivery attempt.",
    ),
    (
        "heartbeat_channels_failing",
        "Channels whose most recent delivery attempt failed, per kind.",
    ),
    (
        "heartbeat_deadline_loop_lag_seconds",
        "How late the deadline loop's last pass started.",
    ),
    (
        "heartbeat_db_pool_connections",
        "Pooled PostgreSQL connections, by state (in_use, idle).",
    ),
    (
        "heartbeat_db_pool_max_connections",
        "Configured size limit of the pool.",
    ),
    (
        "heartbeat_db_pool_waiting",
        "Requests waiting for a pooled connection.",
    ),
    (
        "heartbeat_loop_beat_age_seconds",
        "Seconds since each watched background loop last beat.",
    ),
    (
        "heartbeat_embedded_postgres_restarts_total",
        "Times the embedded PostgreSQL was found dead and started again.",
    ),
    (
        "heartbeat_table_rows_estimate",
        "Estimated rows per table of the heartbeat schema (pg_class.reltuples).",
    ),
    (
        "heartbeat_process_resident_memory_bytes",
        "Resident memory of the daemon process, bytes.",
    ),
    (
        "heartbeat_build_info",
        "Always 1; the version label names the running build.",
    ),
];

/// What [`upkeep_loop`] needs.
pub struct UpkeepDeps {
    pub metrics: Metrics,
    pub shutdown: CancellationToken,
}

/// Runs the recorder's upkeep every [`UPKEEP_EVERY`] until shutdown, so histogram
/// samples never accumulate, scraper or not.
pub async fn upkeep_loop(deps: UpkeepDeps) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    // A stalled runtime needs one upkeep afterwards, not a burst.
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => deps.metrics.run_upkeep(),
            _ = deps.shutdown.cancelled() => return,
        }
    }
}

/// What [`observe_jobs`] needs.
pub struct JobObserverDeps {
    pub metrics: Metrics,
    pub shutdown: CancellationToken,
}

/// Feeds every finished job into the metrics until shutdown.
/// `finished` is subscribed before the loop is spawned, so no job is missed.
pub async fn observe_jobs(
    deps: JobObserverDeps,
    mut finished: tokio::sync::broadcast::Receiver<Job>,
) {
    loop {
        tokio::select! {
            got = finished.recv() => match got {
                Ok(job) => deps.metrics.job_finished(&job),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "job metrics fell behind; some finished jobs were not counted");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = deps.shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_recorders_do_not_share_numbers() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.ping_received("success");
        a.ping_received("success");
        b.ping_received("fail");
        let ra = a.handle.render();
        let rb = b.handle.render();
        assert!(
            ra.contains("heartbeat_pings_received_total{kind=\"success\"} 2"),
            "{ra}"
        );
        assert!(!ra.contains("kind=\"fail\""), "{ra}");
        assert!(
            rb.contains("heartbeat_pings_received_total{kind=\"fail\"} 1"),
            "{rb}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn upkeep_runs_on_its_timer_without_any_scrape() {
        let metrics = Metrics::new();
        let shutdown = CancellationToken::new();
        let lp = tokio::spawn(upkeep_loop(UpkeepDeps {
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
        }));
        for i in 0..1000 {
            metrics
                .histogram("heartbeat_http_request_duration_seconds", &[])
                .record(f64::from(i) / 1e4);
        }
        // The first tick is immediate; then one per period, with no render at all.
        tokio::time::sleep(UPKEEP_EVERY * 3 + Duration::from_millis(1)).await;
        assert_eq!(metrics.upkeeps(), 4);
        // The folded samples are kept in the summary, not lost.
        let text = metrics.handle.render();
        assert!(
            text.contains("heartbeat_http_request_duration_seconds_count 1000"),
            "{text}"
        );
        shutdown.cancel();
        lp.await.unwrap();
        tokio::time::sleep(UPKEEP_EVERY * 3).await;
        assert_eq!(metrics.upkeeps(), 4, "the loop stops on the shutdown token");
    }

    #[test]
    fn a_scrape_is_not_counted_as_a_timer_upkeep() {
        let metrics = Metrics::new();
        metrics.handle.render();
        assert_eq!(metrics.upkeeps(), 0);
        metrics.run_upkeep();
        assert_eq!(metrics.upkeeps(), 1);
    }

    #[test]
    fn every_name_has_the_prefix_and_a_conventional_suffix() {
        for (name, _) in DESCRIPTIONS {
            assert!(name.starts_with("heartbeat_"), "{name}");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
        }
    }
}
