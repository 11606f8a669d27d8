//! Log setup: human-readable text by default, one JSON object per line on request.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;
use crate::ops::redact::Redacting;

/// Installs the global subscriber; `RUST_LOG` refines the default `info` level.
/// Every line goes through [`Redacting`], so no secret reaches the log.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(Redacting(std::io::stderr));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
