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
    let url = format!("{}/api/heartbeats", base.trim_end_matches('/'));
    let request = match tag {
        Some(tag) => http().get(&url).query(&[("tag", tag)]),
        None => http().get(&url),
    };
    let body = call(request, &url, key).await?;
    let list = body["heartbeats"].as_array().cloned().unwrap_or_default();
    let any_down = list.iter().any(|h| h["status"] == "down");
    if as_json {
        // The API's own answer, `{"heartbeats": [...]}`, so a script written
        // against the API reads this output unchanged.
        println!(
            "{}",
            serde_json::to_string_pretty(&body).unwrap_or_default()
        );
    } else {
        print!("{}", status_table(&list));
    }
    Ok(any_down)
}

/// One line per heartbeat: status, name, last ping, deadline.
pub fn status_table(list: &[Value]) -> String {
    let width = list
        .iter()
        .filter_map(|h| h["name"].as_str())
        .map(str::len)
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "{:<8} {:<width$} {:<25} {}\n",
        "STATUS", "NAME", "LAST PING", "DEADLINE"
    );
    for h in list {
        let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
        out.push_str(&format!(
            "{:<8} {:<width$} {:<25} {}\n",
            s(&h["status"]),
            s(&h["name"]),
            s(&h["last_ping_at"]),
            s(&h["next_deadline"]),
        ));
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
