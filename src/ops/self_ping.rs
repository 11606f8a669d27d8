//! Self-ping: the daemon pings an outside dead man's switch (another Heartbeat,
//! healthchecks.io) every interval while it is healthy, so a daemon that died,
//! hangs, or whose own loops stalled is noticed by someone else.
//!
//! Healthy means: migrated, every watched loop beating (see [`super::liveness`]),
//! and the database answering. When unhealthy it stays silent; the outside monitor
//! turns late and then down on its own.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use super::liveness::Liveness;

/// What the self-ping needs.
pub struct LoopDeps {
    /// Where to ping (`ops.self_ping_url`).
    pub url: reqwest::Url,
    /// How often (`ops.self_ping_interval_secs`).
    pub every: Duration,
    /// Every watched loop must beat for the daemon to count as healthy.
    pub liveness: Liveness,
    /// And the database must answer.
    pub pool: Pool,
    pub shutdown: CancellationToken,
}

/// How long one ping, and the database check before it, may take.
const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until shutdown when `ops.self_ping_url` is set.
pub async fn run(deps: LoopDeps) {
    let LoopDeps {
        url,
        every,
        liveness,
        pool,
        shutdown,
    } = deps;
    let client = match reqwest::Client::builder()
        .timeout(PING_TIMEOUT)
        .user_agent(concat!(
            "heartbeat/",
            env!("CARGO_PKG_VERSION"),
            " self-ping"
        ))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "self-ping disabled: cannot build an HTTP client");
            return;
        }
    };
    // The URL may carry a token; log where it goes, not the whole thing.
    let target = url.host_str().unwrap_or("?").to_string();
    tracing::info!(%target, every_s = every.as_secs(), "self-ping on");
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        if let Err(why) = healthy(&liveness, &pool).await {
            tracing::warn!(%target, reason = %why, "unhealthy; skipping the self-ping");
            continue;
        }
        match client.get(url.clone()).send().await {
            Ok(r) if r.status().is_success() => tracing::debug!(%target, "self-ping sent"),
            Ok(r) => tracing::warn!(%target, status = r.status().as_u16(), "self-ping refused"),
            Err(e) => {
                tracing::warn!(%target, error = %crate::ops::redact::scrub(&e.to_string()), "self-ping failed")
            }
        }
    }
}

/// Ok when every watched loop beats and the database answers.
async fn healthy(liveness: &Liveness, pool: &Pool) -> Result<(), String> {
    let stalled = liveness.stalled();
    if let Some(s) = stalled.first() {
        return Err(format!(
            "loop '{}' silent for {}s",
            s.name,
            s.silent_for.as_secs()
        ));
    }
    let check = async {
        let client = pool.get().await.map_err(|e| e.to_string())?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>(())
    };
    tokio::time::timeout(PING_TIMEOUT, check)
        .await
        .map_err(|_| "database did not answer in time".to_string())?
        .map_err(|e| format!("database unreachable: {e}"))
}
