//! Email channels against a real SMTP server on loopback: Debian's aiosmtpd
//! (installed by the test when missing, as root), storing what it receives in a
//! maildir that the test parses back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use heartbeat::monitor::deadline;
use heartbeat::notify::email::{Security, SmtpConfig};
use serde_json::json;

use crate::helpers::spawn_app_with;
use crate::notify_channels::{add_channel, pinged, quiet_config, NASTY};

const PYTHON: &str = "/usr/bin/python3";

/// An aiosmtpd process writing every message it accepts to `dir/new/`.
struct SmtpServer {
    child: Child,
    port: u16,
    dir: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ensure_aiosmtpd() {
    let has = |_: ()| {
        Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if has(()) {
        return;
    }
    assert!(
        nix::unistd::geteuid().is_root(),
        "the SMTP test server is missing: `apt-get install python3-aiosmtpd`"
    );
    let ok = Command::new("sh")
        .arg("-c")
        .arg("(apt-get update -q || true) && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q python3-aiosmtpd >/dev/null")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok && has(()), "apt-get install python3-aiosmtpd failed");
}

impl SmtpServer {
    async fn start() -> Self {
        ensure_aiosmtpd();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("maildir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            child,
            port,
            dir,
            _tmp: tmp,
        }
    }

    fn messages(&self) -> Vec<Vec<u8>> {
        let new = Path::new(&self.dir).join("new");
        let Ok(entries) = std::fs::read_dir(new) else {
            return Vec::new();
        };
        entries
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect()
    }
}

#[tokio::test]
async fn an_email_channel_sends_a_plain_and_html_message_naming_the_heartbeat() {
    let server = SmtpServer::start().await;
    let mut config = quiet_config();
    config.notify.smtp = Some(SmtpConfig {
        host: "127.0.0.1".into(),
        port: Some(server.port),
        username: None,
        password: None,
        password_file: None,
        security: Security::None,
        from: "Heartbeat <heartbeat@example.com>".into(),
    });
    let app = spawn_app_with(config).await;
    let channel = add_channel(
        &app,
        json!({"kind": "email", "config": {"to": ["ops@example.com", "oncall@example.org"]}}),
    )
    .await;
    // The test endpoint answers the SMTP server's reply code.
    let (_, outcome) = app
        .post_json(
            &format!("/api/channels/{}/test", channel["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(outcome["ok"], true, "{outcome}");
    assert_eq!(outcome["status"], 250);
    let (hb, when) = pinged(&app, NASTY, json!({})).await;
    deadline::run_once(&app.state.pool, when).await.unwrap();
    let done = app
        .state
        .notifier
        .deliver_once(&app.state.pool, when)
        .await
        .unwrap();
    assert_eq!(done.delivered, 1);
    let messages = server.messages();
    assert_eq!(messages.len(), 2, "the test and the down alert");
    let down = messages
        .iter()
        .map(|m| mailparse::parse_mail(m).unwrap())
        .find(|m| {
            m.headers
                .iter()
                .any(|h| h.get_key() == "Subject" && h.get_value().contains("DOWN"))
        })
        .expect("a message about the outage");
    let header = |name: &str| {
        down.headers
            .iter()
            .find(|h| h.get_key().eq_ignore_ascii_case(name))
            .map(|h| h.get_value())
            .unwrap_or_default()
    };
    assert_eq!(header("From"), "Heartbeat <heartbeat@example.com>");
    assert!(header("To").contains("ops@example.com"));
    assert!(header("To").contains("oncall@example.org"));
    assert_eq!(
        header("Subject"),
        format!("{} is DOWN", NASTY.replace('\n', " "))
    );
    assert_eq!(down.ctype.mimetype, "multipart/alternative");
    assert_eq!(down.subparts.len(), 2);
    let plain = &down.subparts[0];
    let html = &down.subparts[1];
    assert_eq!(plain.ctype.mimetype, "text/plain");
    assert_eq!(html.ctype.mimetype, "text/html");
    // Mail carries CRLF line ends.
    let plain = plain.get_body().unwrap().replace("\r\n", "\n");
    let html = html.get_body().unwrap().replace("\r\n", "\n");
    let id = hb["id"].as_str().unwrap();
    assert!(plain.contains(NASTY), "{plain}");
    assert!(plain.contains("Status: down"), "{plain}");
    assert!(plain.contains("Last success: "), "{plain}");
    assert!(plain.contains("ago)"), "{plain}");
    assert!(plain.contains("every 60 s"), "{plain}");
    assert!(plain.contains(&format!("?heartbeat={id}")), "{plain}");
    assert!(html.contains("&quot;backup&quot; &amp; #1"), "{html}");
    assert!(html.contains(&format!("?heartbeat={id}\">")), "{html}");
}
