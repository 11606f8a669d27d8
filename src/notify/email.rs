//! Email over SMTP (`[notify.smtp]`), with `lettre`: one message per alert to a
//! channel's `config.to`, with a plain-text and an HTML part saying which
//! heartbeat, its new status, its last success and that success's age, what it
//! expects (period or schedule), the last ping's body excerpt, and a link.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::event::AlertEvent;

/// How the SMTP session is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain connection upgraded with STARTTLS, which is required (default port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (default port 465).
    Tls,
    /// No encryption (default port 25): a relay on the same host only.
    None,
}

/// `[notify.smtp]`: the server email channels send through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name of the SMTP server (also the name its certificate must carry).
    pub host: String,
    /// Port; default by `security`: 587, 465 or 25.
    pub port: Option<u16>,
    /// User name for SMTP AUTH; unset: no authentication.
    pub username: Option<String>,
    /// Password for SMTP AUTH (or `password_file`).
    pub password: Option<String>,
    /// File holding the password (its first line), so it stays out of the config.
    pub password_file: Option<PathBuf>,
    /// `starttls` (default), `tls` or `none`.
    #[serde(default)]
    pub security: Security,
    /// The sender, e.g. `Heartbeat <heartbeat@example.com>`.
    pub from: String,
    /// A PEM file of certificates trusted besides the public roots: the CA of a
    /// private mail server, or its self-signed certificate's issuer.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accepts any certificate the server shows (no verification at all): only
    /// for a test relay; `ca_file` is the way to trust a private server.
    #[serde(default)]
    pub accept_invalid_certs: bool,
}

impl SmtpConfig {
    pub fn validate(&self) -> Result<(), crate::config::error::ConfigError> {
        use crate::config::error::ConfigError;
        if self.host.trim().is_empty() {
            return Err(ConfigError::new("notify.smtp.host", "required"));
        }
        if self.from.parse::<Mailbox>().is_err() {
            return Err(ConfigError::new(
                "notify.smtp.from",
                "must be an address such as Heartbeat <heartbeat@example.com>",
            ));
        }
        if self.security == Security::None && (self.ca_file.is_some() || self.accept_invalid_certs)
        {
            return Err(ConfigError::new(
                "notify.smtp.ca_file",
                "certificates apply to security = \"starttls\" or \"tls\" only",
            ));
        }
        if self.password.is_some() && self.password_file.is_some() {
            return Err(ConfigError::new(
                "notify.smtp.password",
                "give password or password_file, not both",
            ));
        }
        Ok(())
    }

    /// The TLS settings: the public roots, plus `ca_file`'s certificates.
    fn tls_parameters(&self) -> Result<TlsParameters, String> {
        let mut builder = TlsParameters::builder(self.host.clone())
            .dangerous_accept_invalid_certs(self.accept_invalid_certs);
        if let Some(file) = &self.ca_file {
            let pem = std::fs::read(file)
                .map_err(|e| format!("notify.smtp.ca_file {}: {e}", file.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("notify.smtp.ca_file {}: {e}", file.display()))?;
            builder = builder.add_root_certificate(cert);
        }
        builder
            .build_rustls()
            .map_err(|e| format!("notify.smtp TLS settings: {e}"))
    }

    fn password(&self) -> Result<Option<String>, String> {
        match (&self.password, &self.password_file) {
            (Some(p), _) => Ok(Some(p.clone())),
            (None, Some(file)) => std::fs::read_to_string(file)
                .map(|s| Some(s.lines().next().unwrap_or("").to_string()))
                .map_err(|e| format!("notify.smtp.password_file {}: {e}", file.display())),
            (None, None) => Ok(None),
        }
    }
}

/// The SMTP transport email channels send through.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

impl Mailer {
    /// Builds the transport; the password is registered with the log redactor.
    pub fn new(config: &SmtpConfig, timeout: Duration) -> Result<Self, String> {
        // STARTTLS is required, never opportunistic: a server that does not
        // offer it fails the delivery rather than receiving the alert in clear.
        let tls = match config.security {
            Security::Starttls => Tls::Required(config.tls_parameters()?),
            Security::Tls => Tls::Wrapper(config.tls_parameters()?),
            Security::None => Tls::None,
        };
        let builder =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host).tls(tls);
        let port = config.port.unwrap_or(match config.security {
            Security::Starttls => 587,
            Security::Tls => 465,
            Security::None => 25,
        });
        let mut builder = builder.port(port).timeout(Some(timeout));
        if let Some(user) = &config.username {
            let password = config.password()?.unwrap_or_default();
            if !password.is_empty() {
                crate::ops::redact::register_secret(&password);
            }
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Self {
            transport: builder.build(),
            from: config
                .from
                .parse()
                .map_err(|e| format!("notify.smtp.from: {e}"))?,
        })
    }

    /// Sends `event` to `to`; Ok(SMTP reply code) or the code (if any) and why.
    pub async fn send(
        &self,
        to: &[String],
        event: &AlertEvent,
        base_url: &str,
        now: DateTime<Utc>,
    ) -> Result<i32, (Option<i32>, String)> {
        let vars = event.vars(base_url, now);
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(vars["TITLE"].replace(['\r', '\n'], " "));
        for address in to {
            let mailbox: Mailbox = address
                .parse()
                .map_err(|e| (None, format!("address {address}: {e}")))?;
            builder = builder.to(mailbox);
        }
        let (plain, html) = if event.kind == super::event::EventKind::Digest {
            digest_bodies(event, &vars)
        } else {
            bodies(event, &vars, now)
        };
        let message = builder
            .multipart(MultiPart::alternative_plain_html(plain, html))
            .map_err(|e| (None, format!("building the message: {e}")))?;
        match self.transport.send(message).await {
            Ok(resp) => Ok(reply_code(&resp.code())),
            Err(e) => Err((e.status().map(|c| reply_code(&c)), e.to_string())),
        }
    }
}

fn reply_code(code: &lettre::transport::smtp::response::Code) -> i32 {
    code.to_string().parse().unwrap_or(0)
}

/// "3 h 12 min", the age of `at` at `now`.
fn age(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds().max(0);
    match secs {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The plain-text and HTML bodies.
fn bodies(
    event: &AlertEvent,
    vars: &super::template::Vars,
    now: DateTime<Utc>,
) -> (String, String) {
    let success = match event.last_success_at {
        Some(t) => format!(
            "{} ({} ago)",
            t.to_rfc3339_opts(SecondsFormat::Secs, true),
            age(t, now)
        ),
        None => "none recorded".to_string(),
    };
    let rows = [
        ("Heartbeat", vars["NAME"].clone()),
        ("Status", vars["STATUS"].clone()),
        ("Previous status", vars["PREVIOUS_STATUS"].clone()),
        ("Since", vars["AT"].clone()),
        ("Last success", success),
        (
            "Expected",
            event.expected.clone().unwrap_or_else(|| "-".into()),
        ),
        ("Last ping body", vars["BODY"].clone()),
        ("Details", vars["DETAILS_URL"].clone()),
    ];
    let mut plain = format!("{}\n\n", vars["TITLE"]);
    for (k, v) in &rows {
        plain.push_str(&format!("{k}: {v}\n"));
    }
    let mut html = format!(
        "<!doctype html><html><body><h2>{}</h2><table>",
        escape_html(&vars["TITLE"])
    );
    for (k, v) in &rows {
        let value = if *k == "Details" {
            format!("<a href=\"{0}\">{0}</a>", escape_html(v))
        } else if *k == "Last ping body" {
            format!("<pre>{}</pre>", escape_html(v))
        } else {
            escape_html(v)
        };
        html.push_str(&format!(
            "<tr><th align=\"left\">{k}</th><td>{value}</td></tr>"
        ));
    }
    html.push_str("</table></body></html>");
    (plain, html)
}

/// A digest's bodies: the panel as text (in a fixed-width font's columns) and
/// as an HTML table.
fn digest_bodies(event: &AlertEvent, vars: &super::template::Vars) -> (String, String) {
    let rows = super::digest::rows_of_payload(&event.payload);
    let plain = format!(
        "{}\n\n{}\n{}\n",
        vars["TITLE"],
        event.payload["text"].as_str().unwrap_or(""),
        vars["DETAILS_URL"]
    );
    let html = format!(
        "<!doctype html><html><body><h2>{}</h2>{}<p><a href=\"{2}\">{2}</a></p></body></html>",
        escape_html(&vars["TITLE"]),
        digest_table(&rows),
        escape_html(&vars["DETAILS_URL"]),
    );
    (plain, html)
}

/// The digest panel as an HTML table.
fn digest_table(rows: &[super::digest::PanelRow]) -> String {
    let mut html = String::from("<table><tr>");
    for h in super::digest::HEADERS {
        html.push_str(&format!("<th align=\"left\">{}</th>", escape_html(h)));
    }
    html.push_str("</tr>");
    for r in rows {
        html.push_str("<tr>");
        for cell in super::digest::cells(r) {
            html.push_str(&format!("<td>{}</td>", escape_html(&cell)));
        }
        html.push_str("</tr>");
    }
    html.push_str("</table>");
    html
}

pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_in_words_and_html_is_escaped() {
        let now = Utc::now();
        assert_eq!(
            age(now - chrono::Duration::seconds(3 * 3600 + 720), now),
            "3 h 12 min"
        );
        assert_eq!(escape_html("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
