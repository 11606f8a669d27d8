//! `heartbeat refresh`: ask the daemon for a job, follow it to the end.
//!
//! Made for cron logs: one timestamped line per phase transition (a progress bar
//! on a terminal instead), and an exit code a wrapper can act on.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Exit codes: the one table of every client verb.
pub mod exit {
    pub use crate::cli::exit::{TIMED_OUT, USAGE_OR_CONNECTION, VANISHED};
    pub const SUCCEEDED: u8 = crate::cli::exit::SUCCESS;
    pub const FAILED: u8 = crate::cli::exit::BAD;
}

/// How often the job is polled.
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
            (
                "/api/metrics/recompute".to_string(),
                json!({"metric_ids": ids, "trigger": args.trigger}),
            )
        }
        kind @ ("benchmarks" | "segments" | "audit" | "maintenance") => {
            if !args.metrics.is_empty() {
                return Err(usage("--metric applies only to `refresh all`".into()));
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

    let tty = std::io::stdout().is_terminal();
    let started = Instant::now();
    let mut seen_phases = 0usize;
    let mut last_state = String::new();
    let mut unreachable_since: Option<Instant> = None;
    loop {
        if args.timeout.is_some_and(|t| started.elapsed() >= t) {
            if tty {
                println!();
            }
            println!(
                "{} job {job_id}: still running after --timeout; giving up (the job goes on)",
                stamp()
            );
            return Ok(exit::TIMED_OUT);
        }
        let resp = auth(client.get(format!("{base}/api/jobs/{job_id}")))
            .send()
            .await;
        let resp = match resp {
            Ok(r) => {
                unreachable_since = None;
                r
            }
            Err(e) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > UNREACHABLE_FOR {
                    return Err(usage(format!("lost the daemon at {base}: {e}")));
                }
                tokio::time::sleep(POLL_EVERY).await;
                continue;
            }
        };
        if resp.status().as_u16() == 404 {
            if tty {
                println!();
            }
            println!("{} job {job_id}: vanished (the daemon restarted?); the next tick or request runs it afresh", stamp());
            return Ok(exit::VANISHED);
        }
        let job: Value = resp.json().await.unwrap_or(Value::Null);
        let phases = job["phases"].as_array().cloned().unwrap_or_default();
        for phase in phases.iter().skip(seen_phases) {
            if tty {
                println!();
            }
            println!(
                "{} job {job_id} phase {} started",
                stamp(),
                phase["name"].as_str().unwrap_or("?")
            );
        }
        seen_phases = phases.len();
        let state = job["state"].as_str().unwrap_or("").to_string();
        if state != last_state && state == "running" && seen_phases == 0 {
            println!("{} job {job_id} running", stamp());
        }
        last_state = state.clone();
        if tty && state == "running" {
            let done = job["progress"]["done"].as_u64().unwrap_or(0);
            let total = job["progress"]["total"].as_u64().unwrap_or(0);
            let width = 30usize;
            let filled = if total > 0 {
                ((done.min(total) as usize) * width) / total as usize
            } else {
                0
            };
            print!(
                "\r  {} [{}{}] {done}/{total}",
                job["phase"].as_str().unwrap_or(""),
                "#".repeat(filled),
                "-".repeat(width - filled)
            );
            let _ = std::io::stdout().flush();
        }
        match state.as_str() {
            "succeeded" => {
                if tty {
                    println!();
                }
                // The job's own run time, not how long we polled: a short job
                // otherwise "took" one poll interval.
                let took = job_duration(&job).unwrap_or_else(|| started.elapsed().as_secs_f64());
                println!("{} job {job_id} succeeded in {took:.1}s", stamp());
                return Ok(exit::SUCCEEDED);
            }
            "failed" | "cancelled" => {
                if tty {
                    println!();
                }
                println!(
                    "{} job {job_id} {state}: {}",
                    stamp(),
                    job["error"].as_str().unwrap_or("no detail")
                );
                return Ok(exit::FAILED);
            }
            _ => {}
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// What was asked for, as the first line prints it: `all`, or `all (metrics:
/// orders, revenue)` when `--metric` narrowed it.
fn scope_label(args: &RefreshArgs) -> String {
    if args.metrics.is_empty() {
        args.what.clone()
    } else {
        format!("{} (metrics: {})", args.what, args.metrics.join(", "))
    }
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
