//! `heartbeat refresh`: ask the daemon for a job, follow it to the end.
//!
//! Made for cron logs: one timestamped line per phase transition (a progress bar
//! on a terminal instead), and an exit code a wrapper can act on. The job is
//! followed through its event stream (`GET /api/jobs/{id}/events`), resumed with
//! `Last-Event-ID` when the connection drops; a daemon that refuses the stream
//! is polled instead.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Exit codes: the one table of every client verb.
pub mod exit {
    pub use crate::cli::exit::{TIMED_OUT, USAGE_OR_CONNECTION, VANISHED};
    pub const SUCCEEDED: u8 = crate::cli::exit::SUCCESS;
    pub const FAILED: u8 = crate::cli::exit::BAD;
}

/// How often the job is polled (and a dropped stream retried).
const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long the daemon may be unreachable mid-poll before we give up.
const UNREACHABLE_FOR: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct RefreshArgs {
    /// `all` (recompute), `recompute`, `benchmarks`, `segments` or `audit`.
    pub what: String,
    pub metrics: Vec<String>,
    pub trigger: String,
    pub url: String,
    pub key: Option<String>,
    pub timeout: Option<Duration>,
    /// A backfill's range (recompute only), passed through as typed.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Answer the backfill's buckets; run nothing.
    pub dry_run: bool,
}

/// Parses `30s`, `10m`, `2h`, `1d` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration such as 30s, 10m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("'{s}' is not a duration such as 30s, 10m or 1h")),
    };
    Ok(Duration::from_secs(secs))
}

/// Runs the verb; returns the exit code.
pub async fn run(args: RefreshArgs) -> u8 {
    match follow(&args).await {
        Ok(code) => code,
        Err((code, msg)) => {
            eprintln!("heartbeat refresh: {msg}");
            code
        }
    }
}

fn stamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn follow(args: &RefreshArgs) -> Result<u8, (u8, String)> {
    let usage = |m: String| (exit::USAGE_OR_CONNECTION, m);
    let (path, body) = match args.what.as_str() {
        "all" | "recompute" => {
            let ids = if args.metrics.is_empty() {
                json!("all")
            } else {
                json!(args.metrics)
            };
            let mut body = json!({"metric_ids": ids, "trigger": args.trigger});
            if let Some(from) = &args.from {
                body["from"] = json!(from);
            }
            if let Some(to) = &args.to {
                body["to"] = json!(to);
            }
            if args.dry_run {
                body["dry_run"] = json!(true);
            }
            ("/api/metrics/recompute".to_string(), body)
        }
        kind @ ("benchmarks" | "segments" | "audit" | "maintenance") => {
            if !args.metrics.is_empty() {
                return Err(usage("--metric applies only to `refresh all`".into()));
            }
            if args.from.is_some() || args.dry_run {
                return Err(usage(
                    "--from, --to and --dry-run apply only to `refresh all`".into(),
                ));
            }
            (
                format!("/api/jobs/{kind}"),
                json!({"trigger": args.trigger}),
            )
        }
        other => {
            return Err(usage(format!(
                "unknown job '{other}': expected all, benchmarks, segments, audit or maintenance"
            )))
        }
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| usage(e.to_string()))?;
    let base = args.url.trim_end_matches('/');
    let auth = |rb: reqwest::RequestBuilder| match &args.key {
        Some(k) => rb.bearer_auth(k),
        None => rb,
    };
    let resp = auth(client.post(format!("{base}{path}")).json(&body))
        .send()
        .await
        .map_err(|e| usage(format!("cannot reach the daemon at {base}: {e}")))?;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    if args.dry_run && status.as_u16() == 200 {
        print_dry_run(&answer);
        return Ok(exit::SUCCEEDED);
    }
    if status.as_u16() != 202 {
        let msg = answer["error"]["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| answer.to_string());
        return Err(usage(format!(
            "the daemon refused the request ({status}): {msg}"
        )));
    }
    let job_id = answer["job_id"].as_str().unwrap_or_default().to_string();
    let how = match (answer["coalesced"].as_bool(), answer["queued"].as_bool()) {
        (Some(true), Some(false)) => "joined the running job",
        (Some(true), Some(true)) => "joined the queued follow-up",
        (_, Some(true)) => "queued behind the running job",
        _ => "started",
    };
    println!("{} job {job_id} {}: {how}", stamp(), scope_label(args));

    let mut watch = Watch {
        job_id,
        tty: std::io::stdout().is_terminal(),
        started: Instant::now(),
        seen_phases: 0,
        said_running: false,
    };
    let follow = Follow {
        client: &client,
        base,
        key: args.key.as_deref(),
        deadline: args.timeout.map(|t| watch.started + t),
    };
    if let Some(code) = follow.stream(&mut watch).await {
        return Ok(code);
    }
    follow.poll(&mut watch).await
}

/// How `refresh` reaches the job it follows.
struct Follow<'a> {
    client: &'a reqwest::Client,
    base: &'a str,
    key: Option<&'a str>,
    /// When `--timeout` runs out.
    deadline: Option<Instant>,
}

/// What has been printed about the job so far (the stream and the polls share it,
/// so a fallback to polling repeats nothing).
struct Watch {
    job_id: String,
    tty: bool,
    started: Instant,
    seen_phases: usize,
    said_running: bool,
}

impl Watch {
    fn line(&self, text: &str) {
        if self.tty {
            println!();
        }
        println!("{} job {} {text}", stamp(), self.job_id);
    }

    fn phase_started(&mut self, name: &str) {
        self.line(&format!("phase {name} started"));
        self.seen_phases += 1;
        self.said_running = true;
    }

    fn running(&mut self) {
        if !self.said_running {
            println!("{} job {} running", stamp(), self.job_id);
            self.said_running = true;
        }
    }

    fn progress(&self, phase: &str, done: u64, total: u64) {
        if !self.tty {
            return;
        }
        let width = 30usize;
        let filled = if total > 0 {
            ((done.min(total) as usize) * width) / total as usize
        } else {
            0
        };
        print!(
            "\r  {phase} [{}{}] {done}/{total}",
            "#".repeat(filled),
            "-".repeat(width - filled)
        );
        let _ = std::io::stdout().flush();
    }

    /// Prints the end of a finished job; its exit code, or None if not finished.
    fn finished(&self, job: &Value) -> Option<u8> {
        match job["state"].as_str()? {
            "succeeded" => {
                // The job's own run time, not how long we followed: a short job
                // otherwise "took" one poll interval.
                let took =
                    job_duration(job).unwrap_or_else(|| self.started.elapsed().as_secs_f64());
                self.line(&format!("succeeded in {took:.1}s"));
                Some(exit::SUCCEEDED)
            }
            state @ ("failed" | "cancelled") => {
                let error = job["error"].as_str().unwrap_or("no detail");
                self.line(&format!("{state}: {error}"));
                Some(exit::FAILED)
            }
            _ => None,
        }
    }

    fn timed_out(&self) -> u8 {
        self.line("still running after --timeout; giving up (the job goes on)");
        exit::TIMED_OUT
    }
}

/// Longest silence on the event stream before it counts as lost (the daemon
/// sends a keep-alive comment every 15 s).
const STREAM_IDLE: Duration = Duration::from_secs(45);

impl Follow<'_> {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let rb = self.client.get(format!("{}{path}", self.base));
        match self.key {
            Some(k) => rb.bearer_auth(k),
            None => rb,
        }
    }

    fn timed_out(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// Follows `GET /api/jobs/{id}/events`, reconnecting with `Last-Event-ID`
    /// while the daemon answers. None hands over to polling: the stream was
    /// refused (an older daemon), cut for longer than we wait, or the job ended
    /// between two connections.
    async fn stream(&self, watch: &mut Watch) -> Option<u8> {
        let mut parser = super::sse::SseParser::default();
        let mut lost_since: Option<Instant> = None;
        loop {
            let mut req = self
                .get(&format!("/api/jobs/{}/events", watch.job_id))
                .header(reqwest::header::ACCEPT, "text/event-stream")
                // The client's 30 s limit is for whole requests; a stream lives
                // as long as its job.
                .timeout(Duration::from_secs(365 * 24 * 3600));
            if !parser.last_id().is_empty() {
                req = req.header("Last-Event-ID", parser.last_id());
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(_) => {
                    let since = *lost_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > UNREACHABLE_FOR || self.timed_out() {
                        return None;
                    }
                    tokio::time::sleep(POLL_EVERY).await;
                    continue;
                }
            };
            let is_stream = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            if resp.status().as_u16() != 200 || !is_stream {
                return None;
            }
            lost_since = None;
            let mut resp = resp;
            loop {
                let wait = match self.deadline {
                    Some(d) => STREAM_IDLE.min(d.saturating_duration_since(Instant::now())),
                    None => STREAM_IDLE,
                };
                let chunk = match tokio::time::timeout(wait, resp.chunk()).await {
                    Ok(Ok(Some(chunk))) => chunk,
                    // Ended or cut: reconnect from the last id.
                    Ok(Ok(None) | Err(_)) => break,
                    Err(_) if self.timed_out() => return Some(watch.timed_out()),
                    Err(_) => break,
                };
                for event in parser.feed(&chunk) {
                    let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
                        continue;
                    };
                    match event.event.as_str() {
                        "phase" => watch.phase_started(data["phase"].as_str().unwrap_or("?")),
                        "progress" => watch.progress(
                            data["phase"].as_str().unwrap_or(""),
                            data["progress"]["done"].as_u64().unwrap_or(0),
                            data["progress"]["total"].as_u64().unwrap_or(0),
                        ),
                        "state" if data["state"] == "running" => watch.running(),
                        "state" => {
                            if let Some(code) = watch.finished(&data["job"]) {
                                return Some(code);
                            }
                        }
                        _ => {}
                    }
                }
                if self.timed_out() {
                    return Some(watch.timed_out());
                }
            }
            if self.timed_out() {
                return Some(watch.timed_out());
            }
        }
    }

    /// Polls `GET /api/jobs/{id}` until the job ends.
    async fn poll(&self, watch: &mut Watch) -> Result<u8, (u8, String)> {
        let mut unreachable_since: Option<Instant> = None;
        loop {
            if self.timed_out() {
                return Ok(watch.timed_out());
            }
            let resp = match self
                .get(&format!("/api/jobs/{}", watch.job_id))
                .send()
                .await
            {
                Ok(r) => {
                    unreachable_since = None;
                    r
                }
                Err(e) => {
                    let since = *unreachable_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > UNREACHABLE_FOR {
                        return Err((
                            exit::USAGE_OR_CONNECTION,
                            format!("lost the daemon at {}: {e}", self.base),
                        ));
                    }
                    tokio::time::sleep(POLL_EVERY).await;
                    continue;
                }
            };
            if resp.status().as_u16() == 404 {
                watch.line(
                    "vanished (the daemon restarted?); the next tick or request runs it afresh",
                );
                return Ok(exit::VANISHED);
            }
            let job: Value = resp.json().await.unwrap_or(Value::Null);
            let phases = job["phases"].as_array().cloned().unwrap_or_default();
            for phase in phases.iter().skip(watch.seen_phases) {
                watch.phase_started(phase["name"].as_str().unwrap_or("?"));
            }
            if job["state"] == "running" {
                watch.running();
                watch.progress(
                    job["phase"].as_str().unwrap_or(""),
                    job["progress"]["done"].as_u64().unwrap_or(0),
                    job["progress"]["total"].as_u64().unwrap_or(0),
                );
            }
            if let Some(code) = watch.finished(&job) {
                return Ok(code);
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// One line per metric: its buckets and their runs.
fn print_dry_run(answer: &Value) {
    let metrics = answer["metrics"].as_array().cloned().unwrap_or_default();
    if metrics.is_empty() {
        println!("dry run: no metric would recompute anything");
    }
    for m in metrics {
        let runs: Vec<String> = m["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                format!(
                    "{} .. {}",
                    r["from"].as_str().unwrap_or("?"),
                    r["to"].as_str().unwrap_or("?")
                )
            })
            .collect();
        println!(
            "dry run: {} would recompute {} {} bucket(s): {}",
            m["metric_id"].as_str().unwrap_or("?"),
            m["buckets"],
            m["grain"].as_str().unwrap_or(""),
            runs.join(", ")
        );
    }
}

/// What was asked for, as the first line prints it: `all`, or `all (metrics:
/// orders, revenue)` when `--metric` narrowed it.
fn scope_label(args: &RefreshArgs) -> String {
    let mut label = if args.metrics.is_empty() {
        args.what.clone()
    } else {
        format!("{} (metrics: {})", args.what, args.metrics.join(", "))
    };
    if let Some(from) = &args.from {
        label.push_str(&format!(
            " from {from} to {}",
            args.to.as_deref().unwrap_or("now")
        ));
    }
    label
}

/// `finished_at - started_at` of a job's JSON, in seconds.
fn job_duration(job: &Value) -> Option<f64> {
    let at = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(job[k].as_str()?)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let took = at("finished_at")? - at("started_at")?;
    Some(took.num_milliseconds().max(0) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_duration_printed_is_the_jobs_own() {
        let job = json!({"started_at": "2026-01-01T00:00:00.100Z",
                         "finished_at": "2026-01-01T00:00:00.142Z"});
        assert_eq!(job_duration(&job), Some(0.042));
        assert_eq!(job_duration(&json!({"started_at": null})), None);
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5y").is_err());
    }
}
