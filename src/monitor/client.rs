//! The CLI's client verbs for the dead man's switch: `heartbeat status`,
//! `heartbeat run` and `heartbeat project create`. They talk HTTP to a daemon
//! (`HEARTBEAT_URL`) or, for `run`, to any ping URL.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

/// How much of a command's output `run` sends with the final ping.
pub const OUTPUT_TAIL_BYTES: usize = 10 * 1024;
/// Ping attempts before `run` gives up (the command's exit code is unaffected).
const PING_ATTEMPTS: u32 = 4;
const PING_RETRY_FIRST: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("heartbeat-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds")
}

async fn call(
    req: reqwest::RequestBuilder,
    url: &str,
    key: Option<&str>,
) -> Result<Value, ClientError> {
    let req = match key {
        Some(k) => req.bearer_auth(k),
        None => req,
    };
    let resp = req.send().await.map_err(|e| ClientError::Unreachable {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("no message")
            .to_string();
        return Err(ClientError::Refused {
            url: url.to_string(),
            status,
            message,
        });
    }
    Ok(body)
}

/// `heartbeat status`: prints every heartbeat the key may see. Returns whether
/// any is down.
pub async fn status(base: &str, key: Option<&str>, as_json: bool) -> Result<bool, ClientError> {
    status_tagged(base, key, as_json, None).await
}

/// `heartbeat status --tag`: as [`status`], only the heartbeats tagged `tag`
/// (when given); whether any of them is down.
pub async fn status_tagged(
    base: &str,
    key: Option<&str>,
    as_json: bool,
    tag: Option<&str>,
) -> Result<bool, ClientError> {
    let (any_down, out) = status_report(
        base,
        key,
        StatusOptions {
            as_json,
            tag,
            digest: false,
        },
    )
    .await?;
    print!("{out}");
    Ok(any_down)
}

/// What `heartbeat status` shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusOptions<'a> {
    /// The API's JSON instead of a table.
    pub as_json: bool,
    /// Only heartbeats carrying this tag.
    pub tag: Option<&'a str>,
    /// The digest's panel (`GET /api/digest`), down ones first, as a digest
    /// channel receives it.
    pub digest: bool,
}

/// `heartbeat status`'s output and whether any heartbeat shown is down. The
/// table adds the digest's columns (last success, age, interval, age ÷
/// interval) and, below, every channel whose deliveries are failing.
pub async fn status_report(
    base: &str,
    key: Option<&str>,
    opts: StatusOptions<'_>,
) -> Result<(bool, String), ClientError> {
    let base = base.trim_end_matches('/');
    let get = |path: &str| {
        let url = format!("{base}{path}");
        let request = match opts.tag {
            Some(tag) => http().get(&url).query(&[("tag", tag)]),
            None => http().get(&url),
        };
        async move { call(request, &url, key).await }
    };
    if opts.digest {
        let panel = get("/api/digest").await?;
        let rows: Vec<crate::notify::digest::PanelRow> =
            serde_json::from_value(panel["heartbeats"].clone()).unwrap_or_default();
        let any_down = rows.iter().any(|r| r.status == "down");
        let out = if opts.as_json {
            format!(
                "{}\n",
                serde_json::to_string_pretty(&panel).unwrap_or_default()
            )
        } else {
            crate::notify::digest::render_text(&rows)
        };
        return Ok((any_down, out));
    }
    let body = get("/api/heartbeats").await?;
    let mut list = body["heartbeats"].as_array().cloned().unwrap_or_default();
    let any_down = list.iter().any(|h| h["status"] == "down");
    if opts.as_json {
        // The API's own answer, `{"heartbeats": [...]}`, so a script written
        // against the API reads this output unchanged.
        return Ok((
            any_down,
            format!(
                "{}\n",
                serde_json::to_string_pretty(&body).unwrap_or_default()
            ),
        ));
    }
    // The digest's columns; a daemon without them still gets the table.
    if let Ok(panel) = get("/api/digest").await {
        let rows = panel["heartbeats"].as_array().cloned().unwrap_or_default();
        for h in &mut list {
            if let Some(r) = rows.iter().find(|r| r["id"] == h["id"]) {
                for field in [
                    "last_success_at",
                    "age_seconds",
                    "interval_seconds",
                    "age_ratio",
                ] {
                    h[field] = r[field].clone();
                }
            }
        }
    }
    let mut out = status_table(&list);
    let channels = call(
        http().get(format!("{base}/api/channels")),
        &format!("{base}/api/channels"),
        key,
    )
    .await
    .ok();
    out.push_str(&failing_channels(
        channels
            .as_ref()
            .and_then(|c| c["channels"].as_array())
            .map(Vec::as_slice)
            .unwrap_or_default(),
    ));
    Ok((any_down, out))
}

/// A line per channel whose deliveries are failing, so a broken alert path
/// shows where people look; empty when none is.
pub fn failing_channels(channels: &[Value]) -> String {
    let mut out = String::new();
    for c in channels.iter().filter(|c| c["failing"] == true) {
        out.push_str(&format!(
            "channel {} ({}) is failing: {}\n",
            c["name"]
                .as_str()
                .unwrap_or("?")
                .replace(char::is_control, " "),
            c["kind"].as_str().unwrap_or("?"),
            c["last_error"]
                .as_str()
                .unwrap_or("no detail")
                .replace(char::is_control, " "),
        ));
    }
    if !out.is_empty() {
        out.insert(0, '\n');
    }
    out
}

/// One line per heartbeat: status, name, last ping, deadline, then the
/// digest's columns (last success, age, interval, age ÷ interval) when the
/// values carry them.
pub fn status_table(list: &[Value]) -> String {
    use crate::notify::digest::words;
    let width = list
        .iter()
        .filter_map(|h| h["name"].as_str())
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<8} {:<width$} {:<27} {:<27} {:<27} {:<12} {:<12} {}\n",
        "STATUS",
        "NAME",
        "LAST PING",
        "DEADLINE",
        "LAST SUCCESS",
        "AGE",
        "INTERVAL",
        "AGE/INTERVAL"
    );
    for h in list {
        let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
        let secs = |v: &Value| v.as_i64().map(words).unwrap_or_else(|| "-".into());
        let ratio = h["age_ratio"]
            .as_f64()
            .map(|x| format!("{x:.2}"))
            .unwrap_or_else(|| "-".into());
        let line = format!(
            "{:<8} {:<width$} {:<27} {:<27} {:<27} {:<12} {:<12} {}",
            s(&h["status"]),
            s(&h["name"]).replace(char::is_control, " "),
            s(&h["last_ping_at"]),
            s(&h["next_deadline"]),
            s(&h["last_success_at"]),
            secs(&h["age_seconds"]),
            secs(&h["interval_seconds"]),
            ratio,
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `heartbeat project create NAME` (admin key): returns the new project's JSON.
pub async fn create_project(
    base: &str,
    key: Option<&str>,
    name: &str,
) -> Result<Value, ClientError> {
    let url = format!("{}/api/projects", base.trim_end_matches('/'));
    call(
        http().post(&url).json(&serde_json::json!({"name": name})),
        &url,
        key,
    )
    .await
}

/// Sends one ping, retrying on network errors and 5xx; reports failure on stderr
/// and never fails the caller.
async fn ping_with_retry(
    client: &reqwest::Client,
    url: &str,
    body: Option<Vec<u8>>,
    mut wait: Duration,
) {
    for attempt in 1..=PING_ATTEMPTS {
        let req = match &body {
            Some(b) => client.post(url).body(b.clone()),
            None => client.get(url),
        };
        let problem = match req.send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) if r.status().is_client_error() => {
                eprintln!(
                    "heartbeat run: ping {url} answered {}; not retrying",
                    r.status()
                );
                return;
            }
            Ok(r) => format!("answered {}", r.status()),
            Err(e) => e.to_string(),
        };
        if attempt == PING_ATTEMPTS {
            eprintln!("heartbeat run: ping {url} failed after {attempt} attempts: {problem}");
            return;
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}

/// Keeps the last `cap` bytes written to it.
struct Tail {
    cap: usize,
    bytes: VecDeque<u8>,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend(chunk);
        let excess = self.bytes.len().saturating_sub(self.cap);
        self.bytes.drain(..excess);
    }
}

/// Copies `from` to `to` while keeping a shared tail of the output.
async fn tee(
    mut from: impl AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    tail: std::sync::Arc<std::sync::Mutex<Tail>>,
) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let _ = to.write_all(&buf[..n]).await;
                let _ = to.flush().await;
                tail.lock().expect("tail lock").push(&buf[..n]);
            }
        }
    }
}

/// `heartbeat run --ping-url URL -- CMD ARGS...`: a start ping with a run id, the
/// command (its output passed through), then the exit-code ping with the output's
/// tail as body. Returns the command's exit code (128 + signal when killed; 127
/// when it cannot be started, reported as such to the heartbeat).
pub async fn run(ping_url: &str, command: &[String]) -> i32 {
    run_with_retry(ping_url, command, PING_RETRY_FIRST).await
}

/// [`run`] with the first wait between ping attempts given (it doubles).
pub async fn run_with_retry(ping_url: &str, command: &[String], retry_first: Duration) -> i32 {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("heartbeat-run/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the HTTP client builds");
    let base = ping_url.trim_end_matches('/');
    let rid = Uuid::new_v4();
    ping_with_retry(
        &client,
        &format!("{base}/start?rid={rid}"),
        None,
        retry_first,
    )
    .await;
    let tail = std::sync::Arc::new(std::sync::Mutex::new(Tail {
        cap: OUTPUT_TAIL_BYTES,
        bytes: VecDeque::new(),
    }));
    let code = match tokio::process::Command::new(&command[0])
        .args(&command[1..])
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(mut child) => {
            let out = child.stdout.take().expect("piped stdout");
            let err = child.stderr.take().expect("piped stderr");
            let copy_out = tokio::spawn(tee(out, tokio::io::stdout(), tail.clone()));
            let copy_err = tokio::spawn(tee(err, tokio::io::stderr(), tail.clone()));
            let status = child.wait().await;
            let _ = copy_out.await;
            let _ = copy_err.await;
            match status {
                Ok(s) => s.code().unwrap_or_else(|| {
                    use std::os::unix::process::ExitStatusExt;
                    128 + s.signal().unwrap_or(0)
                }),
                Err(_) => 1,
            }
        }
        Err(e) => {
            let line = format!("heartbeat run: cannot start {}: {e}\n", command[0]);
            eprint!("{line}");
            tail.lock().expect("tail lock").push(line.as_bytes());
            127
        }
    };
    let body: Vec<u8> = tail
        .lock()
        .expect("tail lock")
        .bytes
        .iter()
        .copied()
        .collect();
    ping_with_retry(
        &client,
        &format!("{base}/{}?rid={rid}", code.clamp(0, 255)),
        Some(body),
        retry_first,
    )
    .await;
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_only_the_last_bytes() {
        let mut t = Tail {
            cap: 4,
            bytes: VecDeque::new(),
        };
        t.push(b"abc");
        t.push(b"defg");
        assert_eq!(t.bytes.iter().copied().collect::<Vec<_>>(), b"defg");
    }
}
