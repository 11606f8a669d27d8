//! The `heartbeat` binary: one clap enum of subcommands. This is the only place
//! that uses `anyhow` and decides exit codes.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use heartbeat::app::Application;
use heartbeat::cli::exit;
use heartbeat::config::{Config, ConfigError};
use heartbeat::db::{self, embedded::EmbeddedCluster};
use heartbeat::monitor::client as monitor_client;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of glibc malloc: the request path allocates a few dozen small
/// objects per request, and glibc's malloc/free were ~12 % of the daemon's CPU
/// under load (docs/benchmarks.md, gate benchmark). Built with `no_thp`: with
/// transparent huge pages an idle daemon's heap held ~25 MB of RSS instead of ~8
/// (docs/benchmarks.md, "Soak").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "heartbeat",
    version,
    about = "Keeps a metrics dashboard fresh on a clock and makes silent cron failures impossible."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon (with no DATABASE_URL: on its own embedded PostgreSQL).
    Serve(ConfigArgs),
    /// Apply pending schema migrations and exit.
    Migrate(ConfigArgs),
    /// Print the version.
    Version,
    /// Write a commented example metric (DIR/metrics/) and audit cut (DIR/cuts/) to
    /// start from; never overwrites. Point `definitions_dir` at DIR to use them.
    Init {
        /// The definitions directory to create or add to.
        #[arg(default_value = "definitions")]
        dir: PathBuf,
    },
    /// Ask the daemon for a job and follow its phases. Exit codes (every client
    /// verb): 0 success, 1 the job failed, 2 usage, connection or key error, 3 the job
    /// vanished (daemon restarted), 4 --timeout reached.
    Refresh(RefreshCli),
    /// Show the daemon's cron table (next fire time, last success, counters), or
    /// with `next`, the fire times of any expression. Exit 0, or 2 on a usage,
    /// connection or key error.
    Schedule(ScheduleCli),
    /// Manage projects (the admin key only: a project key is refused).
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Show every heartbeat's status. Exit 0; 1 with --fail-on-down when one is
    /// down; 2 on a connection or key error.
    Status {
        #[command(flatten)]
        client: ClientArgs,
        /// Print the API's JSON (`{"heartbeats": [...]}`) instead of a table.
        #[arg(long)]
        json: bool,
        /// Exit with status 1 when any heartbeat is down.
        #[arg(long)]
        fail_on_down: bool,
        /// Only heartbeats carrying this tag: 1 to 50 ASCII letters, digits or
        /// `-_.:/` (anything else exits 2 with the daemon's 422).
        #[arg(long)]
        tag: Option<String>,
        /// Print the digest's panel (status, last success, age, interval, age ÷
        /// interval; down ones first) as a digest channel receives it.
        #[arg(long)]
        digest: bool,
    },
    /// Run a command between a start ping and an exit-code ping; exits with the
    /// command's exit code.
    Run {
        /// The heartbeat's ping URL (`.../hb/<token>`, or a healthchecks.io-style
        /// `.../ping/<uuid>`); `/start` and `/<exit code>` are appended to it.
        #[arg(long, env = "HEARTBEAT_PING_URL")]
        ping_url: String,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ProjectCommand {
    /// Create a project and print its read-write and read-only keys (shown once).
    /// Needs the admin key (--key or HEARTBEAT_ADMIN_KEY); exit 0, or 2 when refused
    /// (name taken, key missing or wrong) or the daemon is unreachable.
    Create {
        #[command(flatten)]
        client: ClientArgs,
        /// The project's name: 1 to 100 characters, not only white space, unique.
        name: String,
    },
}

/// Where client verbs find the daemon, and the key they present.
#[derive(Args, Debug)]
struct ClientArgs {
    /// The daemon's base URL, http:// or https:// (a path prefix behind a proxy
    /// is kept).
    #[arg(long, env = "HEARTBEAT_URL", default_value = "http://127.0.0.1:8000")]
    url: String,
    /// The key to present: a project key or the admin key, as the verb needs
    /// (`HEARTBEAT_KEY`, else `HEARTBEAT_ADMIN_KEY`; an empty value counts as unset).
    #[arg(long, env = "HEARTBEAT_KEY", hide_env_values = true)]
    key: Option<String>,
}

/// The environment variable holding the admin key, read by [`admin_key_env`] only.
const ADMIN_KEY_ENV: &str = "HEARTBEAT_ADMIN_KEY";

/// `HEARTBEAT_ADMIN_KEY` as the process sees it.
fn admin_key_env() -> Option<String> {
    std::env::var(ADMIN_KEY_ENV).ok()
}

/// The one resolution of a command's key, so `serve` and every client verb agree
/// on what a setting means: the key `given` on the command line (`--admin-key` for
/// the daemon, `--key`/`HEARTBEAT_KEY` for client verbs) wins, else the admin key
/// from the environment. An empty value is unset at each step, so
/// `HEARTBEAT_ADMIN_KEY=` means open mode for `serve` and no key for every verb.
fn resolve_key(given: Option<String>, admin_env: Option<String>) -> Option<String> {
    let present = |k: &String| !k.is_empty();
    given.filter(present).or_else(|| admin_env.filter(present))
}

impl Command {
    /// The key this command uses, resolved by [`resolve_key`]: for `serve` and
    /// `migrate` the admin key the daemon requires, for client verbs the key they
    /// present; `None` for commands that use no key.
    fn key(&self, admin_env: Option<String>) -> Option<String> {
        let given = match self {
            Command::Serve(args) | Command::Migrate(args) => args.admin_key.clone(),
            Command::Project(ProjectCommand::Create { client, .. })
            | Command::Status { client, .. } => client.key.clone(),
            Command::Refresh(cli) => cli.client.key.clone(),
            Command::Schedule(cli) => match &cli.command {
                Some(
                    ScheduleCommand::Pause { client, .. }
                    | ScheduleCommand::Resume { client, .. }
                    | ScheduleCommand::Trigger { client, .. },
                ) => client.key.clone(),
                _ => cli.client.key.clone(),
            },
            Command::Version | Command::Init { .. } | Command::Run { .. } => return None,
        };
        resolve_key(given, admin_env)
    }
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct ScheduleCli {
    #[command(subcommand)]
    command: Option<ScheduleCommand>,
    #[command(flatten)]
    client: ClientArgs,
    /// Print the daemon's JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum ScheduleCommand {
    /// Print the next N fire times of EXPR, one per line, RFC 3339 with the UTC
    /// offset. A bad expression or zone exits 2 naming the field and value.
    Next {
        /// Five-field crontab expression (minute hour day-of-month month
        /// day-of-week; names such as MON or JAN allowed), e.g. "17 * * * *", or a
        /// macro: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly
        /// (@reboot is refused).
        expr: String,
        /// IANA time zone the expression is read in, e.g. Europe/Berlin.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Start after this RFC 3339 time (e.g. 2026-03-08T00:00:00Z) instead of now.
        #[arg(long)]
        after: Option<String>,
        /// How many fire times (a whole number).
        #[arg(short = 'n', default_value_t = 5)]
        n: usize,
    },
    /// Pause ENTRY on every node, surviving restarts; its job heartbeat is paused
    /// with it. On resume it catches up once within its catch-up window.
    Pause {
        /// A cron entry's name (`heartbeat schedule` lists them).
        entry: String,
        /// End the pause by itself at this RFC 3339 time (e.g.
        /// 2026-12-01T06:00:00Z), which must be in the future.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Resume a paused ENTRY on every node.
    Resume {
        /// A cron entry's name (`heartbeat schedule` lists them).
        entry: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Fire ENTRY now through the jobs gate (`trigger: "manual"`).
    Trigger {
        /// A cron entry's name (`heartbeat schedule` lists them).
        entry: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Args, Debug)]
struct RefreshCli {
    /// The job: all (ingest + recompute; `recompute` is the same) | benchmarks |
    /// segments | audit | maintenance.
    what: String,
    /// Recompute only this metric id (repeatable; with `all` or `recompute`
    /// only). An id the daemon does not know exits 2 naming it.
    #[arg(long = "metric", value_name = "ID")]
    metrics: Vec<String>,
    /// Who asked, recorded on the job: cron | user | deploy | api.
    #[arg(long, default_value = "api", value_parser = ["cron", "user", "deploy", "api"])]
    trigger: String,
    #[command(flatten)]
    client: ClientArgs,
    /// Give up waiting after this long: a whole number with s, m, h or d (30s,
    /// 10m, 1h, 1d), or plain seconds; exits 4 and the job goes on.
    #[arg(long, value_parser = heartbeat::cli::refresh::parse_duration)]
    timeout: Option<std::time::Duration>,
    /// Backfill: recompute the buckets from here (a date such as 2026-10-01, or an
    /// RFC 3339 time), whatever their state (with `all`).
    #[arg(long, value_name = "DATE")]
    from: Option<String>,
    /// Backfill: up to here, excluded (default: now); needs --from.
    #[arg(long, value_name = "DATE", requires = "from")]
    to: Option<String>,
    /// Print the buckets each metric would recompute; run nothing (needs --from).
    #[arg(long, requires = "from")]
    dry_run: bool,
}

/// Options that override the configuration file; each also reads its environment
/// variable. Values are taken as text and parsed by the config layer, so a bad one
/// is reported as `field: problem`, exit status 2.
#[derive(Args, Debug, Default)]
struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "HEARTBEAT_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address: an IP and a port, e.g. 127.0.0.1:8000 or [::1]:8000 (no
    /// host names). Not loopback: an admin key is required.
    #[arg(long, env = "HEARTBEAT_BIND")]
    bind: Option<String>,
    /// PostgreSQL connection string, as a URL (postgres://user:pass@host/db) or
    /// key=value pairs (host=... dbname=...); unset or empty runs the embedded
    /// cluster.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Directory of the embedded cluster (created if missing).
    #[arg(long, env = "HEARTBEAT_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Admin bearer key, at least 16 characters (else `HEARTBEAT_ADMIN_KEY`);
    /// unset or empty means open, loopback-only mode.
    #[arg(long)]
    admin_key: Option<String>,
    /// Log lines as `text` (for a terminal) or `json` (one object per line).
    #[arg(long, env = "HEARTBEAT_LOG_FORMAT")]
    log_format: Option<String>,
    /// Switch the internal cron table off (host crontab drives the jobs). The
    /// environment variable takes true/false, 1/0, yes/no or on/off.
    #[arg(long, env = "HEARTBEAT_NO_SCHEDULER", action = clap::ArgAction::SetTrue,
          value_parser = clap::builder::BoolishValueParser::new())]
    no_scheduler: bool,
    /// Directory holding metrics/ and cuts/ definition files (relative: to the
    /// working directory). Unset: the demo definitions embedded in the binary.
    #[arg(long, env = "HEARTBEAT_DEFINITIONS_DIR")]
    definitions_dir: Option<PathBuf>,
    /// An outside dead man's switch's URL (http:// or https://) to GET every
    /// `ops.self_ping_interval_secs` while healthy.
    #[arg(long, env = "HEARTBEAT_SELF_PING_URL", hide_env_values = true)]
    self_ping_url: Option<String>,
}

impl ConfigArgs {
    /// File, then environment and flags on top, then validation. `admin_key` is the
    /// command's key as [`Command::key`] resolved it.
    fn load(self, admin_key: Option<String>) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(bind) = self.bind {
            config.bind = bind.parse().map_err(|_| {
                ConfigError::new(
                    "bind",
                    format!("'{bind}' is not an address such as 127.0.0.1:8000"),
                )
            })?;
        }
        if let Some(url) = self.database_url.filter(|u| !u.is_empty()) {
            config.database_url = Some(url);
        }
        if let Some(dir) = self.data_dir {
            config.data_dir = dir;
        }
        if let Some(key) = admin_key {
            config.admin_key = Some(key);
        }
        if let Some(format) = self.log_format {
            config.log_format = format
                .parse()
                .map_err(|e| ConfigError::new("log_format", e))?;
        }
        if self.no_scheduler {
            config.no_scheduler = true;
        }
        if let Some(dir) = self.definitions_dir {
            // A path typed on the command line or set in the environment means the
            // working directory it was given in; made absolute now so the start-up
            // log names the directory actually read.
            let dir = std::path::absolute(&dir).map_err(|e| {
                ConfigError::new("definitions_dir", format!("'{}': {e}", dir.display()))
            })?;
            config.definitions_dir = Some(dir);
        }
        if let Some(url) = self.self_ping_url.filter(|u| !u.is_empty()) {
            config.ops.self_ping_url = Some(url);
        }
        config.validate()?;
        Ok(config)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let key = cli.command.key(admin_key_env());
    match cli.command {
        Command::Version => {
            println!("heartbeat {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Init { dir } => init(&dir),
        Command::Serve(args) => with_config(args, key, |config| runtime().block_on(serve(config))),
        Command::Migrate(args) => {
            with_config(args, key, |config| runtime().block_on(migrate(config)))
        }
        Command::Project(ProjectCommand::Create { client, name }) => {
            match runtime().block_on(monitor_client::create_project(
                &client.url,
                key.as_deref(),
                &name,
            )) {
                Ok(p) => {
                    println!(
                        "project {} ({})",
                        p["name"].as_str().unwrap_or(""),
                        p["project_id"].as_str().unwrap_or("")
                    );
                    println!(
                        "read-write key: {}",
                        p["read_write_key"].as_str().unwrap_or("")
                    );
                    println!(
                        "read-only key:  {}",
                        p["read_only_key"].as_str().unwrap_or("")
                    );
                    println!("(keys are shown once; store them now)");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("heartbeat project create: {e}");
                    ExitCode::from(exit::USAGE_OR_CONNECTION)
                }
            }
        }
        Command::Status {
            client,
            json,
            fail_on_down,
            tag,
            digest,
        } => match runtime().block_on(monitor_client::status_report(
            &client.url,
            key.as_deref(),
            monitor_client::StatusOptions {
                as_json: json,
                tag: tag.as_deref(),
                digest,
            },
        )) {
            Ok((any_down, out)) => {
                print!("{out}");
                if any_down && fail_on_down {
                    ExitCode::from(exit::BAD)
                } else {
                    ExitCode::from(exit::SUCCESS)
                }
            }
            Err(e) => {
                eprintln!("heartbeat status: {e}");
                ExitCode::from(exit::USAGE_OR_CONNECTION)
            }
        },
        Command::Run { ping_url, command } => {
            let code = runtime().block_on(monitor_client::run(&ping_url, &command));
            ExitCode::from(code.clamp(0, 255) as u8)
        }
        Command::Refresh(cli) => {
            let args = heartbeat::cli::refresh::RefreshArgs {
                what: cli.what,
                metrics: cli.metrics,
                trigger: cli.trigger,
                url: cli.client.url,
                key,
                timeout: cli.timeout,
                from: cli.from,
                to: cli.to,
                dry_run: cli.dry_run,
            };
            ExitCode::from(runtime().block_on(heartbeat::cli::refresh::run(args)))
        }
        Command::Schedule(cli) => schedule(cli, key),
    }
}

fn schedule(cli: ScheduleCli, key: Option<String>) -> ExitCode {
    use heartbeat::cli::schedule::{control, exit, next, show, Control};
    let act = |verb: Control, entry: &str, client: &ClientArgs, until: Option<&str>| {
        ExitCode::from(runtime().block_on(control(&client.url, key.as_deref(), verb, entry, until)))
    };
    match cli.command {
        Some(ScheduleCommand::Pause {
            entry,
            until,
            client,
        }) => act(Control::Pause, &entry, &client, until.as_deref()),
        Some(ScheduleCommand::Resume { entry, client }) => {
            act(Control::Resume, &entry, &client, None)
        }
        Some(ScheduleCommand::Trigger { entry, client }) => {
            act(Control::Trigger, &entry, &client, None)
        }
        Some(ScheduleCommand::Next { expr, tz, after, n }) => {
            match next(&expr, Some(&tz), after.as_deref(), n) {
                Ok(lines) => {
                    for line in lines {
                        println!("{line}");
                    }
                    ExitCode::from(exit::OK)
                }
                Err(msg) => {
                    eprintln!("heartbeat schedule next: {msg}");
                    ExitCode::from(exit::USAGE)
                }
            }
        }
        None => ExitCode::from(runtime().block_on(show(&cli.client.url, key.as_deref(), cli.json))),
    }
}

/// `heartbeat init [DIR]`: exit 0 with the files written, 1 when a file exists or
/// cannot be written.
fn init(dir: &std::path::Path) -> ExitCode {
    match heartbeat::bundled_definitions::write_examples(dir) {
        Ok(written) => {
            for path in written {
                println!("wrote {}", path.display());
            }
            let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            println!(
                "use them with: heartbeat serve --definitions-dir {}",
                absolute.display()
            );
            println!(
                "(or definitions_dir = \"{}\" in the configuration file)",
                absolute.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("heartbeat init: {e}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

/// Loads the configuration (exit 2 with one line on a bad field), sets up logging
/// and runs `body`; an error from `body` is printed and exits 1.
fn with_config(
    args: ConfigArgs,
    admin_key: Option<String>,
    body: impl FnOnce(Config) -> anyhow::Result<ExitCode>,
) -> ExitCode {
    let config = match args.load(admin_key) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("heartbeat: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    heartbeat::ops::redact::register_config_secrets(
        config.admin_key.as_deref(),
        config.database_url.as_deref(),
    );
    heartbeat::telemetry::init(config.log_format);
    match body(config) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("heartbeat: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Starts the embedded cluster when no DATABASE_URL is given. Missing server
/// binaries: one line saying what to install, exit 2.
fn database(config: &Config) -> Result<(String, Option<EmbeddedCluster>), ExitCode> {
    if let Some(url) = &config.database_url {
        return Ok((url.clone(), None));
    }
    let started = EmbeddedCluster::init(&config.data_dir, false).and_then(|mut c| {
        c.start()?;
        Ok(c)
    });
    match started {
        Ok(cluster) => {
            tracing::info!(dir = %cluster.root().display(), port = cluster.port(), "embedded PostgreSQL running");
            Ok((
                cluster.connection_string(db::embedded::DATABASE),
                Some(cluster),
            ))
        }
        Err(e) => {
            eprintln!("heartbeat: {e}");
            Err(ExitCode::from(2))
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    let (url, cluster) = match tokio::task::block_in_place(|| database(&config)) {
        Ok(db) => db,
        Err(code) => return Ok(code),
    };
    tracing::info!(database = %heartbeat::ops::redact::dsn(&url), "using database");
    let app = Application::build(config, url).await?;
    let stop = CancellationToken::new();
    tokio::spawn(stop_on_signal(stop.clone()));
    let cluster = cluster.map(|c| std::sync::Arc::new(std::sync::Mutex::new(c)));
    let supervisor = cluster.clone().map(|cluster| {
        tokio::spawn(db::supervise::run(db::supervise::SupervisorDeps {
            cluster,
            restarts: app
                .state()
                .metrics
                .counter("heartbeat_embedded_postgres_restarts_total", &[]),
            shutdown: stop.clone(),
        }))
    });
    app.run_until_stopped(stop).await?;
    if let Some(supervisor) = supervisor {
        let _ = supervisor.await;
    }
    if let Some(cluster) = cluster {
        tokio::task::block_in_place(|| cluster.lock().unwrap().stop());
        tracing::info!("embedded PostgreSQL stopped");
    }
    Ok(ExitCode::SUCCESS)
}

async fn migrate(config: Config) -> anyhow::Result<ExitCode> {
    let (url, cluster) = match tokio::task::block_in_place(|| database(&config)) {
        Ok(db) => db,
        Err(code) => return Ok(code),
    };
    let explain = |e: tokio_postgres::Error| anyhow::anyhow!("database: {}", db::explain(&e, &url));
    let mut client = db::connect_direct(&url).await.map_err(explain)?;
    let applied = db::migrate::run(&mut client).await.map_err(explain)?;
    println!(
        "schema at version {} ({} applied now)",
        db::migrate::latest_version(),
        applied.len()
    );
    drop(cluster);
    Ok(ExitCode::SUCCESS)
}

/// Cancels `stop` on SIGINT or SIGTERM.
async fn stop_on_signal(stop: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    stop.cancel();
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Every command that takes a key, parsed from `extra` flags, with the key each
    /// resolves when `HEARTBEAT_ADMIN_KEY` is `admin_env`.
    fn keys(extra: &[&str], admin_env: Option<&str>) -> Vec<(String, Option<String>)> {
        let commands: [&[&str]; 6] = [
            &["serve"],
            &["migrate"],
            &["project", "create", "p"],
            &["status"],
            &["refresh", "all"],
            &["schedule"],
        ];
        commands
            .iter()
            .map(|words| {
                let mut argv = vec!["heartbeat"];
                argv.extend_from_slice(words);
                // The daemon's flag is --admin-key, a client verb's --key.
                let daemon = matches!(words[0], "serve" | "migrate");
                for flag in extra {
                    argv.push(if daemon {
                        flag.strip_prefix("--key").map_or(*flag, |_| "--admin-key")
                    } else {
                        flag
                    });
                }
                let cli = Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
                let key = cli.command.key(admin_env.map(str::to_string));
                (words.join(" "), key)
            })
            .collect()
    }

    #[test]
    fn every_command_resolves_the_admin_key_the_same_way() {
        let admin = "an-admin-key-of-some-length";
        let given = "a-given-key-of-some-length";
        // (flags, HEARTBEAT_ADMIN_KEY, the key every command must resolve)
        let cases: [(&[&str], Option<&str>, Option<&str>); 6] = [
            (&["--key", ""], None, None),
            (&["--key", ""], Some(""), None),
            (&["--key", ""], Some(admin), Some(admin)),
            (&["--key", given], Some(admin), Some(given)),
            (&["--key", given], Some(""), Some(given)),
            (&["--key", given], None, Some(given)),
        ];
        for (flags, env, want) in cases {
            for (command, key) in keys(flags, env) {
                assert_eq!(
                    key.as_deref(),
                    want,
                    "heartbeat {command} {flags:?} with HEARTBEAT_ADMIN_KEY={env:?}"
                );
            }
        }
    }

    #[test]
    fn commands_without_a_key_resolve_none() {
        for argv in [
            &["heartbeat", "version"][..],
            &[
                "heartbeat",
                "run",
                "--ping-url",
                "http://x/hb/t",
                "--",
                "true",
            ],
        ] {
            let cli = Cli::try_parse_from(argv).unwrap();
            assert_eq!(
                cli.command.key(Some("an-admin-key-of-some-length".into())),
                None
            );
        }
    }
}
