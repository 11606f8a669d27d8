//! Start-up: build the state, bind the listener, start the background loops, serve.
//!
//! `Application::build` binds before it returns so tests can bind port 0 and read
//! the port back (`port()`), then call `run_until_stopped` on a task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::db;
use crate::jobs::{JobBodies, JobBody};
use crate::refresh::definitions::MetricCatalog;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database_url: {0}")]
    DatabaseUrl(#[from] tokio_postgres::Error),
    #[error("bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The SMTP settings could not make a transport (or the password file is
    /// unreadable).
    #[error("{0}")]
    Notify(String),
}

pub struct Application {
    listener: TcpListener,
    state: AppState,
    migrated_tx: watch::Sender<bool>,
}

/// First and longest wait between attempts to reach the database at start-up.
const MIGRATE_RETRY_FIRST: Duration = Duration::from_millis(200);
const MIGRATE_RETRY_MAX: Duration = Duration::from_secs(10);

impl Application {
    pub async fn build(config: Config, database_url: String) -> Result<Self, StartupError> {
        Self::build_with_bodies(config, database_url, |_| {}).await
    }

    /// Like [`Application::build`], with `adjust` changing lanes' work before the
    /// engine takes it (tests plug in bodies that block, fail or panic).
    pub async fn build_with_bodies(
        mut config: Config,
        database_url: String,
        adjust: impl FnOnce(&mut JobBodies),
    ) -> Result<Self, StartupError> {
        let pool = db::build_pool(&database_url, config.pool_size)?;
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| StartupError::Bind {
                    addr: config.bind,
                    source,
                })?;
        // With port 0 the OS picks the port: record the real one, since ping URLs
        // and self-references are built from `config.bind`.
        if let Ok(bound) = listener.local_addr() {
            config.bind = bound;
        }
        let (migrated_tx, migrated) = watch::channel(false);
        let database_url: Arc<str> = database_url.into();
        prepare_definitions(&config);
        let metric_catalog = MetricCatalog::load(&config.definitions_dir());
        let mut bodies = job_bodies(&config, &metric_catalog);
        adjust(&mut bodies);
        let jobs = crate::jobs::Engine::new(
            pool.clone(),
            database_url.clone(),
            config.jobs.clone(),
            config.jobs.node(),
            bodies,
        );
        let metrics = crate::ops::prometheus::Metrics::new();
        let pings = crate::monitor::ping::PingWriter::start(
            db::build_ping_pool(&database_url, config.monitor.ping_writers.max(1))?,
            config.monitor.ping_batch_max,
            config.monitor.ping_writers,
            config.monitor.ping_overlap_min,
            config.monitor.pings_kept,
            metrics.clone(),
        );
        let public_url = config
            .monitor
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.bind));
        let mailer = match &config.notify.smtp {
            Some(smtp) => Some(
                crate::notify::email::Mailer::new(smtp, config.monitor.webhook_timeout())
                    .map_err(StartupError::Notify)?,
            ),
            None => None,
        };
        let notifier = crate::notify::outbox::Deliverer::new(&config.monitor, public_url, mailer)
            .with_redact_scope(Arc::from(&*database_url));
        let state = AppState::new(crate::state::StateInner {
            notifier,
            pings,
            hc_uuids: Default::default(),
            jobs,
            metric_catalog,
            schedule: Default::default(),
            pool,
            database_url,
            config: Arc::new(config),
            migrated,
            metrics,
            liveness: crate::ops::liveness::Liveness::new(),
            shutdown: CancellationToken::new(),
        });
        Ok(Self {
            listener,
            state,
            migrated_tx,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `stop` is cancelled, then shuts down gracefully within the
    /// configured timeout: HTTP stops accepting, background loops stop, running jobs
    /// are cancelled and rolled back.
    pub async fn run_until_stopped(self, stop: CancellationToken) -> std::io::Result<()> {
        let Self {
            listener,
            state,
            migrated_tx,
        } = self;
        let tasks = TaskTracker::new();
        tasks.spawn(migrate_with_retry(state.clone(), migrated_tx));
        crate::background::spawn_all(&state, &tasks);
        tasks.close();

        let router = crate::http::router(state.clone());
        let shutdown = state.shutdown.clone();
        let timeout = state.config.shutdown_timeout();
        tracing::info!(addr = %listener.local_addr()?, "listening");
        let server = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown({
            let shutdown = shutdown.clone();
            async move {
                stop.cancelled().await;
                tracing::info!("shutting down");
                shutdown.cancel();
            }
        });
        let server = tokio::spawn(async move { server.await });
        shutdown.cancelled().await;
        let drained = tokio::time::timeout(timeout, async {
            state.jobs.shutdown().await;
            let _ = server.await;
            tasks.wait().await;
        })
        .await;
        if drained.is_err() {
            tracing::warn!(?timeout, "graceful shutdown timed out; exiting anyway");
        }
        Ok(())
    }
}

/// Makes the definition files ready and says, in one line, which ones the daemon
/// reads: without a configured `definitions_dir`, the demo set embedded in the
/// binary is written under `data_dir` first. A directory that is missing or holds
/// no files is a warning naming it, since its metrics and cuts will be empty.
fn prepare_definitions(config: &Config) {
    use crate::bundled_definitions::{count_sql_files, write_demo};
    let dir = config.definitions_dir();
    let source = if config.definitions_dir.is_some() {
        "definitions_dir"
    } else {
        if let Err(e) = write_demo(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot write the embedded demo definitions");
        }
        "embedded demo"
    };
    let metrics_dir = crate::refresh::definitions::metrics_dir(&dir);
    let cuts_dir = config.audit.cuts_dir(&dir);
    let metrics = count_sql_files(&metrics_dir);
    let cuts = count_sql_files(&cuts_dir);
    tracing::info!(
        source,
        dir = %dir.display(),
        metrics = metrics.unwrap_or(0),
        cuts = cuts.unwrap_or(0),
        "definitions loaded"
    );
    for (what, path, count) in [
        ("metrics", &metrics_dir, metrics),
        ("cuts", &cuts_dir, cuts),
    ] {
        match count {
            None => {
                tracing::warn!(dir = %path.display(), "the {what} directory is missing: no {what} will be computed")
            }
            Some(0) => {
                tracing::warn!(dir = %path.display(), "the {what} directory holds no .sql files: no {what} will be computed")
            }
            Some(_) => {}
        }
    }
}

/// Each lane's real work; with `jobs.probe_body_ms` set, every lane runs the
/// diagnostic probe body instead.
fn job_bodies(config: &Config, catalog: &MetricCatalog) -> JobBodies {
    use crate::refresh::{BenchmarksBody, RecomputeBody};
    if let Some(ms) = config.jobs.probe_body_ms {
        tracing::warn!(
            ms,
            "jobs.probe_body_ms is set: every lane runs the diagnostic probe body"
        );
        let probe: Arc<dyn JobBody> = Arc::new(crate::jobs::probe::ProbeBody::new(ms));
        return JobBodies::new(
            probe.clone(),
            probe.clone(),
            probe.clone(),
            probe.clone(),
            probe,
        );
    }
    JobBodies::new(
        Arc::new(RecomputeBody::new(config).with_catalog(catalog.clone())),
        Arc::new(BenchmarksBody::new(config)),
        Arc::new(crate::segments::SegmentsBody::from_config(config)),
        Arc::new(crate::audit::AuditBody::from_config(config)),
        Arc::new(crate::retention::MaintenanceBody::new(
            crate::retention::Policy::from_config(config),
        )),
    )
}

/// Applies migrations, retrying with backoff while the database is unreachable, so
/// a daemon started before its database becomes ready when the database appears.
async fn migrate_with_retry(state: AppState, done: watch::Sender<bool>) {
    let mut wait = MIGRATE_RETRY_FIRST;
    loop {
        let attempt = async {
            let mut client = db::connect_direct(&state.database_url).await?;
            let applied = db::migrate::run(&mut client).await?;
            let kept = state.config.monitor.pings_kept;
            if crate::monitor::ring::fit(&mut client, kept).await? {
                tracing::info!(
                    pings_kept = kept,
                    "ping history refitted to the configured size"
                );
            }
            Ok::<_, tokio_postgres::Error>(applied)
        };
        match attempt.await {
            Ok(applied) => {
                tracing::info!(applied = applied.len(), "schema is current");
                let _ = done.send(true);
                return;
            }
            Err(e) => {
                let error = db::explain(&e, &state.database_url);
                tracing::warn!(%error, retry_in = ?wait, "cannot migrate yet");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = state.shutdown.cancelled() => return,
                }
                wait = (wait * 2).min(MIGRATE_RETRY_MAX);
            }
        }
    }
}
