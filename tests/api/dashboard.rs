//! The dashboard page: served from the binary with no outside references, and
//! driven end to end in headless Chromium (Debian's `chromium` package) through the
//! DevTools protocol: load, create a heartbeat, ping it with curl and watch it turn
//! green, press Recompute and watch the phases advance. A screenshot of each state
//! lands in `target/e2e/`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use heartbeat::jobs::{JobBody, JobContext, JobError, JobKind};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{spawn_app, spawn_app_with_bodies, test_config};

#[tokio::test]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let app = spawn_app().await;
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script src="/assets/app.js""#));
    assert!(html.contains(r#"href="/assets/style.css""#));

    assert!(html.contains(r#"<script src="/assets/channels.js""#));
    assert!(html.contains(r#"<script src="/assets/segments.js""#));
    assert!(html.contains(r#"<script src="/assets/heartbeat_detail.js""#));
    for (path, kind) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/channels.js", "text/javascript"),
        ("/assets/segments.js", "text/javascript"),
        ("/assets/heartbeat_detail.js", "text/javascript"),
        ("/assets/style.css", "text/css"),
    ] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        let body = r.text().await.unwrap();
        // Works offline: nothing is fetched from elsewhere (the SVG namespace is a
        // name, not a request).
        let outside = body
            .replace("http://www.w3.org/2000/svg", "")
            .contains("http");
        assert!(!outside, "{path} refers to another origin");
    }
    // Unknown paths stay JSON 404s.
    let (status, body) = app.get_json("/assets/nope.js").await;
    assert_eq!(status, 404);
    assert_eq!(crate::helpers::error_code(&body), "not_found");
}

/// A recompute whose two phases each last long enough for the page's 2 s poll to
/// show them.
struct PhasedBody;

const PHASE_LENGTH: Duration = Duration::from_millis(3000);

impl JobBody for PhasedBody {
    fn run(&self, ctx: JobContext) -> BoxFuture<'static, Result<Value, JobError>> {
        Box::pin(async move {
            for phase in ["ingest", "compute"] {
                ctx.begin_phase(phase, 3);
                for _ in 0..3 {
                    tokio::select! {
                        _ = tokio::time::sleep(PHASE_LENGTH / 3) => ctx.advance(),
                        _ = ctx.cancel_token().cancelled() => return Err(JobError::Cancelled),
                    }
                }
            }
            Ok(json!({"metrics": 3}))
        })
    }
}

#[tokio::test]
async fn in_chromium_an_operator_creates_a_heartbeat_sees_it_turn_green_and_runs_a_recompute() {
    let Some(chromium) = find_chromium() else {
        eprintln!("SKIPPED: Chromium is not installed (apt-get install chromium); the dashboard end-to-end test did not run");
        return;
    };
    let app = spawn_app_with_bodies(
        test_config(),
        vec![(JobKind::Recompute, Arc::new(PhasedBody) as Arc<dyn JobBody>)],
    )
    .await;
    let shots = screenshot_dir();

    let run = async {
        let mut page = Page::launch(&chromium).await;
        page.navigate(&app.url("/")).await;
        page.wait_for("document.getElementById('clock').textContent.startsWith('updated')")
            .await;
        page.screenshot(&shots.join("01-loaded.png")).await;

        let has_heartbeats = app.get_json("/api/heartbeats").await.0 == 200;
        if has_heartbeats {
            // Create through the form, as an operator would.
            page.eval(
                "document.getElementById('new-heartbeat-btn').click();
                 const f = document.getElementById('heartbeat-form');
                 f.elements.name.value = 'nightly backup';
                 f.elements.period_minutes.value = '60';
                 f.elements.grace_minutes.value = '10';
                 document.getElementById('heartbeat-save').click(); true",
            )
            .await;
            page.wait_for("!document.getElementById('created').hidden")
                .await;
            let url = page
                .eval("document.getElementById('created-url').textContent")
                .await;
            let url = url.as_str().unwrap().to_string();
            assert!(
                url.contains("/hb/hb_"),
                "the page shows the ping URL: {url}"
            );
            let curl = page
                .eval("document.getElementById('created-curl').textContent")
                .await;
            assert!(curl.as_str().unwrap().contains(&url));
            // Open mode lists every project's heartbeats, the built-in job ones too.
            let (_, all) = app.get_json("/api/heartbeats").await;
            let id = all["heartbeats"]
                .as_array()
                .unwrap()
                .iter()
                .find(|h| h["name"] == "nightly backup")
                .and_then(|h| h["id"].as_str())
                .expect("the created heartbeat")
                .to_string();
            let row = format!("tr.hb-row[data-id=\"{id}\"]");
            page.wait_for(&format!(
                "document.querySelector('{row}[data-status=\"pending\"] .dot.status-pending') !== null"
            ))
            .await;
            page.screenshot(&shots.join("02-created.png")).await;
            // The daemon's own job heartbeats (one per job kind, maintenance
            // included) sit in their own section, without the edit and delete
            // buttons.
            page.wait_for(
                "document.querySelectorAll('#job-heartbeats-body tr.hb-row').length === 5
                 && !document.getElementById('job-heartbeats').hidden
                 && !document.getElementById('heartbeats-body').textContent.includes('job:')
                 && document.querySelector('#job-heartbeats-body button.danger') === null",
            )
            .await;

            // The page shows the URL built from `monitor.public_url` (unset here, so
            // from the bind address with port 0): ping the same path on the port
            // the test server really listens on.
            let path = &url[url.find("/hb/").expect("a /hb/ path")..];
            let url = app.url(path);
            // Async: the server under test shares this runtime's thread.
            let ok = tokio::process::Command::new("curl")
                .args([
                    "-fsS",
                    "--noproxy",
                    "*",
                    "-m",
                    "10",
                    "-o",
                    "/dev/null",
                    &url,
                ])
                .status()
                .await
                .is_ok_and(|s| s.success());
            if !ok {
                // No curl on this machine: the same GET another way.
                let r = app.client.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 200);
            }
            page.wait_for(&format!(
                "document.querySelector('{row}[data-status=\"up\"] .dot.status-up') !== null"
            ))
            .await;
            page.screenshot(&shots.join("03-pinged-up.png")).await;

            // The detail view lists the ping (kind, exit code, duration, body).
            page.eval(&format!("document.querySelector('{row} a').click(); true"))
                .await;
            page.wait_for("document.querySelectorAll('#hb-pings tr').length > 0 && document.getElementById('hb-pings').textContent.includes('success')")
                .await;
            page.screenshot(&shots.join("03b-heartbeat-detail.png"))
                .await;
        } else {
            eprintln!("the heartbeat API is not in this build; the page shows it as not available");
            page.wait_for("!document.getElementById('heartbeats-unavailable').hidden")
                .await;
        }

        page.navigate(&app.url("/#jobs")).await;
        page.wait_for("document.getElementById('active-job').dataset.state === 'idle'")
            .await;
        page.eval("document.getElementById('recompute-btn').click(); true")
            .await;
        page.wait_for(
            "document.getElementById('recompute-result').textContent.startsWith('Started job')",
        )
        .await;
        page.wait_for("document.getElementById('active-job').dataset.phase === 'ingest'")
            .await;
        page.screenshot(&shots.join("04-recompute-ingest.png"))
            .await;
        // A second press while it runs coalesces onto the running job.
        page.eval("document.getElementById('recompute-btn').click(); true")
            .await;
        page.wait_for("document.getElementById('recompute-result').dataset.coalesced === 'true'")
            .await;
        page.wait_for("document.getElementById('active-job').dataset.phase === 'compute'")
            .await;
        page.screenshot(&shots.join("05-recompute-compute.png"))
            .await;
        page.wait_for("document.getElementById('active-job').dataset.state === 'idle' && document.querySelector('#jobs-body tr[data-state=\"succeeded\"]') !== null")
            .await;
        page.screenshot(&shots.join("06-recompute-succeeded.png"))
            .await;
        // The jobs list says how long a job took in words and when it was made
        // relative to now, with the exact time on hover.
        let row = page
            .eval("(() => { const tr = document.querySelector('#jobs-body tr[data-state=\"succeeded\"]'); const t = tr.querySelector('time'); return [tr.querySelector('td.took').textContent, t.textContent, t.title]; })()")
            .await;
        let took = row[0].as_str().unwrap();
        assert!(
            took.ends_with(" seconds") || took.ends_with(" minute") || took.ends_with(" minutes"),
            "a job's duration in words, not {took:?}"
        );
        let made = row[1].as_str().unwrap();
        assert!(made.ends_with(" ago") || made == "just now", "{row}");
        assert!(
            !row[2].as_str().unwrap().is_empty(),
            "the exact time on hover: {row}"
        );

        // Audit cuts: after an audit run, the registry with each snapshot's age,
        // and a snapshot as a table.
        let (status, audit) = app.post_json("/api/jobs/audit", &json!({})).await;
        assert_eq!(status, 202, "{audit}");
        let audit_id = audit["job_id"].as_str().unwrap().to_string();
        let audit_id: uuid::Uuid = audit_id.parse().unwrap();
        app.state.jobs.wait_finished(audit_id).await;
        page.navigate(&app.url("/#audit")).await;
        page.wait_for("document.querySelector('#cuts-body button.window') !== null")
            .await;
        page.eval("document.querySelector('#cuts-body button.window').click(); true")
            .await;
        page.wait_for("document.querySelector('#cut-detail table') !== null")
            .await;
        page.screenshot(&shots.join("07-audit-cut.png")).await;

        page.navigate(&app.url("/#cockpit")).await;
        page.wait_for("document.querySelector('#metrics .metric, #metrics .empty') !== null || !document.getElementById('cockpit-unavailable').hidden")
            .await;
        page.screenshot(&shots.join("08-cockpit.png")).await;
        page.close();
    };
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the end-to-end run finishes within 60 s");
}

pub(crate) fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("e2e");
    std::fs::create_dir_all(&dir).expect("create target/e2e");
    dir
}

/// Chromium's binary; as root on a machine without it (CI), installs Debian's
/// package first, as the harness does for PostgreSQL.
pub(crate) fn find_chromium() -> Option<PathBuf> {
    let known = || {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
    };
    if let Some(p) = known() {
        return Some(p);
    }
    if nix::unistd::geteuid().is_root() && std::env::var_os("HEARTBEAT_E2E_NO_INSTALL").is_none() {
        eprintln!("installing Debian's chromium package for the dashboard end-to-end test");
        let _ = Command::new("sh")
            .arg("-c")
            .arg("(apt-get update -q || true) && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q chromium >/dev/null")
            .status();
    }
    known()
}

/// One headless Chromium with one page, driven over the DevTools protocol.
pub(crate) struct Page {
    child: Child,
    _profile: tempfile::TempDir,
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
}

/// How long one wait for a page condition may take.
const WAIT_LIMIT: Duration = Duration::from_secs(15);

impl Page {
    pub(crate) async fn launch(binary: &std::path::Path) -> Page {
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
                "about:blank",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        // Chromium writes its DevTools port here once it listens.
        let port_file = profile.path().join("DevToolsActivePort");
        let started = Instant::now();
        let port: u16 = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
            {
                break port;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromium did not open its DevTools port"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let targets: Value = reqwest::get(format!("http://127.0.0.1:{port}/json/list"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ws_url = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .expect("connect to the page's DevTools socket");
        let mut page = Page {
            child,
            _profile: profile,
            ws,
            next_id: 1,
        };
        page.command("Page.enable", json!({})).await;
        page
    }

    /// Sends one command and waits for its answer, skipping events.
    async fn command(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(msg)).await.unwrap();
        while let Some(msg) = self.ws.next().await {
            let Ok(Message::Text(text)) = msg else {
                continue;
            };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method}: {}", v["error"]);
                return v["result"].clone();
            }
        }
        panic!("the DevTools socket closed during {method}");
    }

    pub(crate) async fn navigate(&mut self, url: &str) {
        self.command("Page.navigate", json!({"url": url})).await;
        self.wait_for("document.readyState === 'complete'").await;
    }

    /// Evaluates an expression in the page and returns its value.
    pub(crate) async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .command(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        assert!(
            r.get("exceptionDetails").is_none(),
            "{expression}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Polls a condition until it holds.
    pub(crate) async fn wait_for(&mut self, condition: &str) {
        let started = Instant::now();
        loop {
            let expr = format!(
                "(() => {{ try {{ return !!({condition}); }} catch (_) {{ return false; }} }})()"
            );
            if self.eval(&expr).await == json!(true) {
                return;
            }
            if started.elapsed() > WAIT_LIMIT {
                let _ = self.screenshot(&screenshot_dir().join("failed.png")).await;
                let body = self.eval("document.body.innerText").await;
                panic!("timed out waiting for `{condition}`; the page shows:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn screenshot(&mut self, path: &std::path::Path) {
        let r = self
            .command("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Ends the browser (also done on drop, when a wait panics).
    pub(crate) fn close(self) {
        drop(self);
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
