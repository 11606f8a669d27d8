//! The runbooks' commands run: every `sh` and `sql` block of docs/operations/ is
//! executed against a test daemon (keyed, with a heartbeat that has pings and
//! flips, and a recompute stuck until the runbook cancels it), after the setup
//! block of docs/operations/README.md, exactly as an operator pastes them. Only
//! blocks marked `sh host` (systemd, journald, docker, sudo) and `sql file` (a
//! file's content) are skipped, and the marks are checked too: an unmarked block
//! may not need the host, and a marked one must.
//!
//! A command passes when bash (with `pipefail`) exits 0 and its output is not an
//! API error envelope. `sleep` is a no-op, so a "wait and look again" costs
//! nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use heartbeat::jobs::{JobBody, JobContext, JobError, JobKind};
use serde_json::{json, Value};

use crate::helpers::{spawn_app_with_bodies, test_config, TestApp};

const ADMIN: &str = "an-admin-key-for-the-runbooks";

/// Words that only make sense on the production host.
const HOST_ONLY: [&str; 4] = ["systemctl", "journalctl", "docker", "sudo"];

/// One fenced block of a runbook.
struct Block {
    file: String,
    line: usize,
    lang: String,
    mark: Option<String>,
    text: String,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every fenced block of docs/operations/*.md, README.md first (its setup block
/// is every command's prelude), then the pages in name order.
fn blocks() -> Vec<Block> {
    let dir = repo().join("docs/operations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort_by_key(|p| (p.file_name().unwrap() != "README.md", p.clone()));
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut open: Option<Block> = None;
        for (i, line) in text.lines().enumerate() {
            let Some(info) = line.strip_prefix("```") else {
                if let Some(b) = open.as_mut() {
                    b.text.push_str(line);
                    b.text.push('\n');
                }
                continue;
            };
            match open.take() {
                Some(b) => out.push(b),
                None => {
                    let mut words = info.split_whitespace();
                    open = Some(Block {
                        file: file.clone(),
                        line: i + 1,
                        lang: words.next().unwrap_or_default().to_string(),
                        mark: words.next().map(str::to_string),
                        text: String::new(),
                    });
                }
            }
        }
        assert!(open.is_none(), "{file}: an unclosed code block");
    }
    out
}

/// The block's commands: continuation lines joined, comments and blanks dropped.
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(head) = line.strip_suffix('\\') {
            current.push_str(head);
            current.push(' ');
            continue;
        }
        current.push_str(line);
        let command = std::mem::take(&mut current);
        let trimmed = command.trim();
        if !trimmed.is_empty() && !trimmed.starts_with('#') {
            out.push(trimmed.to_string());
        }
    }
    out
}

fn needs_the_host(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| HOST_ONLY.contains(&w))
}

/// On a bare CI machine as root, installs what the runbooks use (as the test
/// helpers install PostgreSQL); elsewhere says what is missing.
fn ensure_tools() {
    let missing: Vec<&str> = ["jq", "curl", "psql", "bash"]
        .into_iter()
        .filter(|t| {
            !std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {t}"))
                .stdout(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    if missing.is_empty() {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the runbook test needs {missing:?}: install jq, curl and postgresql-client"
    );
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg("(apt-get update -q || true) && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q jq curl postgresql-client >/dev/null")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "apt-get install jq curl postgresql-client failed");
}

/// A recompute body whose first run hangs until cancelled (the runbook for a
/// stuck job cancels it); every later run succeeds at once.
#[derive(Default)]
struct StuckOnce {
    used: AtomicBool,
}

impl JobBody for StuckOnce {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        let first = !self.used.swap(true, Ordering::SeqCst);
        Box::pin(async move {
            ctx.begin_phase("compute", 1);
            if first {
                ctx.cancel_token().cancelled().await;
                return Err(JobError::Cancelled);
            }
            Ok(Value::Null)
        })
    }
}

async fn send(app: &TestApp, req: reqwest::RequestBuilder) -> Value {
    let r = req.bearer_auth(ADMIN).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let _ = app;
    r.json().await.unwrap_or(Value::Null)
}

/// The daemon the runbooks run against, and the values their placeholders take.
async fn daemon() -> (TestApp, Vec<(String, String)>) {
    let mut config = test_config();
    config.admin_key = Some(ADMIN.into());
    let app = spawn_app_with_bodies(
        config,
        vec![(
            JobKind::Recompute,
            Arc::new(StuckOnce::default()) as Arc<dyn JobBody>,
        )],
    )
    .await;
    let hb = send(
        &app,
        app.client
            .post(app.url("/api/heartbeats"))
            .json(&json!({"name": "nightly-backup", "period_seconds": 3600, "tags": ["prod"]})),
    )
    .await;
    let ping_url = hb["ping_url"].as_str().unwrap();
    let path = &ping_url[ping_url.find("/hb/").unwrap()..];
    for suffix in ["", "/fail"] {
        let r = app.client.get(app.url(&format!("{path}{suffix}"))).send();
        assert_eq!(r.await.unwrap().status(), 200);
    }
    heartbeat::monitor::deadline::run_once(&app.state.pool, chrono::Utc::now())
        .await
        .unwrap();
    let job = send(
        &app,
        app.client
            .post(app.url("/api/metrics/recompute"))
            .json(&json!({})),
    )
    .await;
    let job_id = job["job_id"].as_str().unwrap().to_string();
    // A running cron table registers its entries' counters when it starts; the
    // test daemon runs without one (nothing fires by the clock), so register
    // one as the table would, for tick-went-wrong.md's look at them.
    app.state.schedule.entry("recompute");
    // The recompute body here computes nothing, so register the demo metric the
    // backfill runbook reads, as a real recompute would have.
    app.db()
        .await
        .execute(
            "INSERT INTO heartbeat.metric_registry (metric_id, title, kind, grain, definition_hash)
             VALUES ('orders', 'Orders', 'counter', 'hour', 'test') ON CONFLICT DO NOTHING",
            &[],
        )
        .await
        .unwrap();
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let fill = vec![
        ("http://127.0.0.1:8000".into(), app.address.clone()),
        ("HEARTBEAT_KEY=...".into(), format!("HEARTBEAT_KEY={ADMIN}")),
        ("<id>".into(), hb["id"].as_str().unwrap().to_string()),
        ("<job_id>".into(), job_id),
        // cron.md's example end of a pause, which must stay in the future.
        ("2026-12-01T06:00:00Z".into(), tomorrow),
    ];
    (app, fill)
}

fn filled(text: &str, fill: &[(String, String)]) -> String {
    fill.iter()
        .fold(text.to_string(), |t, (from, to)| t.replace(from, to))
}

/// Runs `script` with bash in the repository, the built binary first on PATH;
/// returns why it failed, if it did.
async fn run(script: &str, stdin: Option<&str>, database_url: &str) -> Option<String> {
    let bin = Path::new(env!("CARGO_BIN_EXE_heartbeat")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("-c")
        .arg(script)
        .current_dir(repo())
        .env("PATH", path)
        .env("DATABASE_URL", database_url)
        .env_remove("HEARTBEAT_KEY")
        .env_remove("HEARTBEAT_ADMIN_KEY")
        .env_remove("HEARTBEAT_URL")
        .env_remove("HEARTBEAT_CONFIG")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        tokio::io::AsyncWriteExt::write_all(&mut input, text.as_bytes())
            .await
            .unwrap();
    }
    drop(input);
    let out = match tokio::time::timeout(Duration::from_secs(180), child.wait_with_output()).await {
        Ok(out) => out.unwrap(),
        Err(_) => return Some("still running after 180 s".into()),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let envelope = stdout.contains(r#""code": ""#) || stdout.contains(r#""code":""#);
    (!out.status.success() || envelope).then(|| {
        format!(
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            out.status.code(),
            tail(&stdout),
            tail(&stderr)
        )
    })
}

fn tail(s: &str) -> &str {
    let start = s.len().saturating_sub(1500);
    let start = (start..s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[start..]
}

#[tokio::test]
async fn every_runbook_command_runs_against_a_test_daemon() {
    ensure_tools();
    let blocks = blocks();
    let setup = blocks
        .iter()
        .find(|b| b.file == "README.md" && b.lang == "sh")
        .expect("docs/operations/README.md sets up HEARTBEAT_URL and hb");
    let (app, fill) = daemon().await;
    let prelude = format!(
        "set -o pipefail\nsleep() {{ :; }}\n{}",
        filled(&setup.text, &fill)
    );

    let mut failures = Vec::new();
    let mut ran = 0;
    for b in &blocks {
        let at = format!("{}:{}", b.file, b.line);
        match (b.lang.as_str(), b.mark.as_deref()) {
            ("sh", Some("host")) => {
                assert!(needs_the_host(&b.text), "{at}: marked host, needs none");
                continue;
            }
            ("sql", Some("file")) => continue,
            (_, Some(mark)) => panic!("{at}: unknown mark '{mark}' (host or file)"),
            _ => {}
        }
        if std::ptr::eq(b, setup) {
            continue;
        }
        match b.lang.as_str() {
            "sh" => {
                assert!(
                    !needs_the_host(&b.text),
                    "{at}: needs the production host; mark the block `sh host`"
                );
                for command in commands(&b.text) {
                    let script = format!("{prelude}\n{}", filled(&command, &fill));
                    ran += 1;
                    if let Some(why) = run(&script, None, &app.database_url).await {
                        failures.push(format!("{at}: {command}\n{why}"));
                    }
                }
            }
            "sql" => {
                let script = r#"psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -f -"#;
                ran += 1;
                if let Some(why) = run(script, Some(&b.text), &app.database_url).await {
                    failures.push(format!("{at}: the SQL block\n{why}"));
                }
            }
            _ => {}
        }
    }
    assert!(ran > 25, "only {ran} commands found");
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
