//! The `[notify]` section of the configuration.

use serde::Deserialize;

/// `[notify]`: reminder bounds and the SMTP server email channels use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Shortest `repeat_every_seconds` a channel may set, seconds (default 60).
    /// Tests lower it to drive reminders quickly.
    pub min_repeat_seconds: i32,
    /// `[notify.smtp]`: the SMTP server of email channels; unset, their
    /// deliveries fail saying so.
    pub smtp: Option<super::email::SmtpConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            min_repeat_seconds: 60,
            smtp: None,
        }
    }
}

impl NotifyConfig {
    pub fn validate(&self) -> Result<(), crate::config::error::ConfigError> {
        if self.min_repeat_seconds < 1 {
            return Err(crate::config::error::ConfigError::new(
                "notify.min_repeat_seconds",
                "must be at least 1",
            ));
        }
        if let Some(smtp) = &self.smtp {
            smtp.validate()?;
        }
        Ok(())
    }
}
