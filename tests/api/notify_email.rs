//! Email channels against a real SMTP server on loopback: Debian's aiosmtpd
//! (installed by the test when missing, as root), storing what it receives in a
//! maildir that the test parses back. In clear, with STARTTLS (required by the
//! server before MAIL), and with TLS from the first byte; the TLS servers show a
//! throwaway certificate made by `openssl` for the test, issued by a throwaway
//! CA that the daemon trusts through `notify.smtp.ca_file`.

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
    /// The CA that issued the server's certificate (TLS modes only).
    ca: Option<PathBuf>,
    _tmp: tempfile::TempDir,
}

/// How the test server protects its sessions.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Plain,
    /// Offers STARTTLS and refuses mail before it.
    Starttls,
    /// TLS from the first byte.
    Tls,
}

/// aiosmtpd's controller with a TLS context: its command line offers STARTTLS
/// only, not a TLS listener. `tls_context` (STARTTLS) and `ssl_context`
/// (implicit TLS) are the controller's documented arguments.
const TLS_SERVER: &str = r#"
import sys, ssl, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
mode, port, maildir, cert, key = sys.argv[1:6]
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
if mode == "starttls":
    c = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port),
                   tls_context=ctx, require_starttls=True)
else:
    c = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port), ssl_context=ctx)
c.start()
while True:
    time.sleep(3600)
"#;

/// A throwaway CA and a server certificate it issued for 127.0.0.1, in `dir`;
/// returns (ca, cert, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=heartbeat test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
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
    async fn start(mode: Mode) -> Self {
        ensure_aiosmtpd();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("maildir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(PYTHON);
        let mut ca = None;
        if mode == Mode::Plain {
            command
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&dir);
        } else {
            let (ca_file, cert, key) = certificates(tmp.path());
            ca = Some(ca_file);
            let mode = if mode == Mode::Starttls {
                "starttls"
            } else {
                "tls"
            };
            command
                .args(["-c", TLS_SERVER, mode, &port.to_string()])
                .args([&dir, &cert, &key]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        // Bounded: 20 s for the interpreter and the controller to listen.
        for _ in 0..400 {
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
            ca,
            _tmp: tmp,
        }
    }

    /// `[notify.smtp]` for this server, trusting its CA in the TLS modes.
    fn smtp_config(&self, security: Security) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(self.port),
            username: None,
            password: None,
            password_file: None,
            security,
            from: "Heartbeat <heartbeat@example.com>".into(),
            ca_file: self.ca.clone(),
            accept_invalid_certs: false,
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
    let server = SmtpServer::start(Mode::Plain).await;
    sends_the_test_and_the_down_alert(&server, Security::None).await;
}

#[tokio::test]
async fn email_over_starttls_trusts_the_configured_ca_and_arrives_whole() {
    let server = SmtpServer::start(Mode::Starttls).await;
    sends_the_test_and_the_down_alert(&server, Security::Starttls).await;
}

#[tokio::test]
async fn email_over_implicit_tls_trusts_the_configured_ca_and_arrives_whole() {
    let server = SmtpServer::start(Mode::Tls).await;
    sends_the_test_and_the_down_alert(&server, Security::Tls).await;
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_issuer_fails_the_delivery_and_sends_nothing() {
    let server = SmtpServer::start(Mode::Starttls).await;
    let mut config = quiet_config();
    let mut smtp = server.smtp_config(Security::Starttls);
    smtp.ca_file = None;
    config.notify.smtp = Some(smtp);
    let app = spawn_app_with(config).await;
    let channel = add_channel(
        &app,
        json!({"kind": "email", "config": {"to": ["ops@example.com"]}}),
    )
    .await;
    let (_, outcome) = app
        .post_json(
            &format!("/api/channels/{}/test", channel["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(outcome["ok"], false, "{outcome}");
    let error = outcome["error"].as_str().unwrap_or_default().to_lowercase();
    assert!(error.contains("certificate"), "{outcome}");
    assert!(server.messages().is_empty());
}

#[tokio::test]
async fn a_starttls_channel_refuses_a_server_that_does_not_offer_it() {
    // STARTTLS is required, not opportunistic: a plain server gets nothing.
    let server = SmtpServer::start(Mode::Plain).await;
    let mut config = quiet_config();
    config.notify.smtp = Some(server.smtp_config(Security::Starttls));
    let app = spawn_app_with(config).await;
    let channel = add_channel(
        &app,
        json!({"kind": "email", "config": {"to": ["ops@example.com"]}}),
    )
    .await;
    let (_, outcome) = app
        .post_json(
            &format!("/api/channels/{}/test", channel["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_eq!(outcome["ok"], false, "{outcome}");
    assert!(server.messages().is_empty());
}

/// Sends a test and a down alert through `server`, then parses the down alert
/// back: its headers, subject, and both parts.
async fn sends_the_test_and_the_down_alert(server: &SmtpServer, security: Security) {
    let mut config = quiet_config();
    config.notify.smtp = Some(server.smtp_config(security));
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

#[tokio::test]
async fn a_digest_email_carries_the_panel_as_text_and_as_an_html_table() {
    use heartbeat::monitor::schedule::HeartbeatSchedule;
    use heartbeat::notify::digest;
    let server = SmtpServer::start(Mode::Plain).await;
    let mut config = quiet_config();
    config.notify.smtp = Some(server.smtp_config(Security::None));
    let app = spawn_app_with(config).await;
    add_channel(
        &app,
        json!({"kind": "email", "config": {"to": ["ops@example.com"]},
               "digest_schedule": "0 7 * * *", "digest_tz": "Europe/Paris"}),
    )
    .await;
    let (_hb, when) = pinged(&app, NASTY, json!({})).await;
    deadline::run_once(&app.state.pool, when).await.unwrap();
    let fire = HeartbeatSchedule::parse("0 7 * * *", "Europe/Paris")
        .unwrap()
        .next_after(chrono::Utc::now() + chrono::Duration::seconds(1))
        .unwrap();
    assert_eq!(digest::run_once(&app.state.pool, fire).await.unwrap(), 1);
    // The down alert and the digest.
    let done = app
        .state
        .notifier
        .deliver_once(&app.state.pool, fire)
        .await
        .unwrap();
    assert_eq!(done.delivered, 2);
    let messages: Vec<_> = server.messages();
    let parsed: Vec<_> = messages
        .iter()
        .map(|m| mailparse::parse_mail(m).unwrap())
        .collect();
    let mail = parsed
        .iter()
        .find(|m| {
            m.headers
                .iter()
                .any(|h| h.get_key() == "Subject" && h.get_value().starts_with("Heartbeat digest"))
        })
        .expect("the digest message");
    let subject = mail
        .headers
        .iter()
        .find(|h| h.get_key() == "Subject")
        .unwrap()
        .get_value();
    assert_eq!(subject, "Heartbeat digest: 1 down");
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    let plain = mail.subparts[0].get_body().unwrap().replace("\r\n", "\n");
    let html = mail.subparts[1].get_body().unwrap().replace("\r\n", "\n");
    assert!(plain.contains("STATUS NAME"), "{plain}");
    let flat = NASTY.replace('\n', " ");
    assert!(plain.contains(&format!("down   {flat}")), "{plain}");
    assert!(html.contains("<table>"), "{html}");
    assert!(
        html.contains("<th align=\"left\">AGE/INTERVAL</th>"),
        "{html}"
    );
    assert!(html.contains("&quot;backup&quot; &amp; #1"), "{html}");
}
