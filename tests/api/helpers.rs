#![allow(dead_code)]
//! Test harness: `spawn_app()` starts the daemon on port 0 against a fresh database.
//!
//! Without `DATABASE_URL`, the first test provisions a throwaway PostgreSQL cluster
//! (the same code as `heartbeat serve`'s embedded default) in a temp directory;
//! a guardian process stops it and deletes the directory when this process exits.
//! Migrations run once into a template database; each test gets a copy.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use heartbeat::app::Application;
use heartbeat::config::Config;
use heartbeat::db::embedded::EmbeddedCluster;
use heartbeat::jobs::{JobBody, JobKind};
use tokio_util::sync::CancellationToken;

/// How to reach the server the tests use: a connection string with `{db}` where the
/// database name goes.
struct Server {
    url_template: String,
}

static SERVER: OnceLock<Server> = OnceLock::new();
static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

fn server() -> &'static Server {
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("DATABASE_URL") {
            let mut cfg: tokio_postgres::Config = url.parse().expect("DATABASE_URL parses");
            cfg.dbname("{db}");
            // Rebuild as key=value so the placeholder survives.
            let base = url_without_db(&url);
            return Server {
                url_template: format!("{base} dbname={{db}}"),
            };
        }
        ensure_postgres_installed();
        let dir = std::env::temp_dir().join(format!("heartbeat-test-{}", std::process::id()));
        let mut cluster = EmbeddedCluster::init(&dir, true).expect("throwaway cluster initialises");
        cluster.start().expect("throwaway cluster starts");
        let url_template = cluster.connection_string("{db}");
        cluster.detach();
        Server { url_template }
    })
}

fn url_without_db(url: &str) -> String {
    let cfg: tokio_postgres::Config = url.parse().expect("DATABASE_URL parses");
    let mut parts = Vec::new();
    for host in cfg.get_hosts() {
        match host {
            tokio_postgres::config::Host::Tcp(h) => parts.push(format!("host={h}")),
            tokio_postgres::config::Host::Unix(p) => parts.push(format!("host={}", p.display())),
        }
    }
    if let Some(port) = cfg.get_ports().first() {
        parts.push(format!("port={port}"));
    }
    if let Some(user) = cfg.get_user() {
        parts.push(format!("user={user}"));
    }
    if let Some(pw) = cfg.get_password() {
        parts.push(format!("password={}", String::from_utf8_lossy(pw)));
    }
    parts.join(" ")
}

/// On a bare machine as root, installs Debian's server package once, so the one
/// test command works on a clean CI machine.
fn ensure_postgres_installed() {
    if heartbeat::db::embedded::find_bin_dir().is_ok() {
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        panic!("PostgreSQL server binaries are missing: install them with `apt-get install postgresql`, or set DATABASE_URL");
    }
    eprintln!("installing Debian's postgresql package for the test cluster");
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg("(apt-get update -q || true) && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q postgresql >/dev/null")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "apt-get install postgresql failed");
}

pub fn database_url(db: &str) -> String {
    server().url_template.replace("{db}", db)
}

async fn admin_client() -> tokio_postgres::Client {
    heartbeat::db::connect_direct(&database_url("postgres"))
        .await
        .expect("connect to the test server")
}

/// The migrated template every test database is copied from.
async fn template() -> &'static str {
    TEMPLATE
        .get_or_init(|| async {
            let name = format!("hb_template_{}", uuid::Uuid::new_v4().simple());
            let admin = admin_client().await;
            admin
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create the template");
            let mut client = heartbeat::db::connect_direct(&database_url(&name))
                .await
                .expect("connect to the template");
            heartbeat::db::migrate::run(&mut client)
                .await
                .expect("migrations apply");
            drop(client);
            // Let the server notice the closed connection before copies start.
            tokio::time::sleep(Duration::from_millis(50)).await;
            name
        })
        .await
}

/// A fresh, migrated database; returns its connection string.
pub async fn fresh_database() -> String {
    let template = template().await;
    let name = format!("hb_test_{}", uuid::Uuid::new_v4().simple());
    let admin = admin_client().await;
    let mut attempts = 0;
    loop {
        match admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .await
        {
            Ok(()) => break,
            Err(e) if attempts < 50 => {
                attempts += 1;
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("create test database: {e}"),
        }
    }
    database_url(&name)
}

/// A running daemon for one test.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub database_url: String,
    pub client: reqwest::Client,
    pub stop: CancellationToken,
    pub state: heartbeat::state::AppState,
    pub server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The config tests start from: port 0, no scheduler, the repo's definitions.
pub fn test_config() -> Config {
    Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        no_scheduler: true,
        demo: Some(false),
        definitions_dir: Some(concat!(env!("CARGO_MANIFEST_DIR"), "/sql").into()),
        shutdown_timeout_secs: 5,
        ..Config::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(test_config()).await
}

pub async fn spawn_app_with(config: Config) -> TestApp {
    spawn_app_on(config, fresh_database().await).await
}

/// A daemon whose lanes in `bodies` run the given work instead of the real one.
pub async fn spawn_app_with_bodies(
    config: Config,
    bodies: Vec<(JobKind, Arc<dyn JobBody>)>,
) -> TestApp {
    spawn_app_on_with_bodies(config, fresh_database().await, bodies).await
}

/// A daemon on an existing database (another daemon's, for restarts).
pub async fn spawn_app_on(config: Config, database_url: String) -> TestApp {
    spawn_app_on_with_bodies(config, database_url, Vec::new()).await
}

pub async fn spawn_app_on_with_bodies(
    mut config: Config,
    database_url: String,
    bodies: Vec<(JobKind, Arc<dyn JobBody>)>,
) -> TestApp {
    config.database_url = Some(database_url.clone());
    let app = Application::build_with_bodies(config, database_url.clone(), |all| {
        for (kind, body) in bodies {
            all.set(kind, body);
        }
    })
    .await
    .expect("app builds");
    let port = app.port();
    let state = app.state().clone();
    let stop = CancellationToken::new();
    let server = tokio::spawn(app.run_until_stopped(stop.clone()));
    let test_app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        database_url,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        stop,
        state,
        server,
    };
    test_app.wait_ready().await;
    test_app
}

impl TestApp {
    /// Stops the daemon and waits until it has (a restart test's first half).
    pub async fn shut_down(&mut self) {
        self.stop.cancel();
        let _ = (&mut self.server).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Waits until `/readyz` answers 200 (migrations applied).
    pub async fn wait_ready(&self) {
        for _ in 0..200 {
            if let Ok(r) = self.client.get(self.url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the app did not become ready");
    }

    pub async fn db(&self) -> tokio_postgres::Client {
        heartbeat::db::connect_direct(&self.database_url)
            .await
            .expect("connect to the test database")
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let r = self.client.get(self.url(path)).send().await.expect("GET");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let r = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }
}

/// Asserts that a JSON body is the error envelope, and returns its code.
pub fn error_code(body: &serde_json::Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not the error envelope: {body}"))
}

/// A real `heartbeat serve` process on a free loopback port (no scheduler), with
/// its log appended to `log`; returns once `/readyz` answers 200. Killed on drop.
pub async fn spawn_daemon(
    database_url: &str,
    definitions: &std::path::Path,
    config: Option<&std::path::Path>,
    log: &std::path::Path,
) -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"));
    cmd.arg("serve")
        .env("DATABASE_URL", database_url)
        .env("HEARTBEAT_BIND", format!("127.0.0.1:{port}"))
        .env("HEARTBEAT_NO_SCHEDULER", "1")
        .env("HEARTBEAT_DEFINITIONS_DIR", definitions)
        .env_remove("HEARTBEAT_ADMIN_KEY")
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true);
    match config {
        Some(path) => cmd.env("HEARTBEAT_CONFIG", path),
        None => cmd.env_remove("HEARTBEAT_CONFIG"),
    };
    let child = cmd.spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    for _ in 0..400 {
        if let Ok(r) = client.get(format!("{url}/readyz")).send().await {
            if r.status() == 200 {
                return (child, url);
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the daemon on {url} did not become ready (see its log)");
}
