//! Email over SMTP.

use chrono::{DateTime, Utc};

use super::event::AlertEvent;

/// The SMTP transport email channels send through.
pub struct Mailer;

impl Mailer {
    /// Sends `event` to `to`; Ok(SMTP reply code) or the code (if any) and why.
    pub async fn send(
        &self,
        _to: &[String],
        _event: &AlertEvent,
        _base_url: &str,
        _now: DateTime<Utc>,
    ) -> Result<i32, (Option<i32>, String)> {
        Err((None, "email is not supported yet".into()))
    }
}
