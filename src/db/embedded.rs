//! The embedded default: a private PostgreSQL cluster provisioned from the server
//! binaries already installed on the machine.
//!
//! `heartbeat serve` without `DATABASE_URL` and the test harness both use this one
//! implementation (the harness in a throwaway directory). The cluster listens on a
//! unix socket in a private directory (trust auth, only the owner can reach it) and
//! on a loopback port (password auth; the password is in `<dir>/pg-password`).
//!
//! Why a guardian process: the server must not outlive us, even on SIGKILL. A tiny
//! `sh` reads a pipe whose write end only this process holds; when the pipe closes
//! (exit, crash or kill) it stops the server and, for throwaway clusters, deletes the
//! directory. Graceful shutdown stops whichever server runs on the data directory
//! (`pg_ctl stop -D`: ours, or one an operator restarted) and waits for it.
//!
//! Why [`EmbeddedCluster::restart`]: the daemon is a dead man's switch, so its own
//! database dying must not leave it up and useless. `db::supervise` watches the
//! server and restarts it; PostgreSQL runs crash recovery from its WAL on start.
//!
//! As root, initdb refuses to run, so every server command runs as the `postgres`
//! user (or `nobody`) and that user owns the cluster directory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use nix::unistd::{Gid, Uid, User};

/// The database the daemon uses inside the embedded cluster.
pub const DATABASE: &str = "heartbeat";
/// The superuser role initdb creates.
pub const ROLE: &str = "heartbeat";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("PostgreSQL server binaries not found (looked in `pg_config --bindir` and /usr/lib/postgresql/*/bin); install them with `apt-get install postgresql` or set DATABASE_URL")]
    BinariesMissing,
    #[error("{0}")]
    Setup(String),
    #[error("{action}: {source}")]
    Io {
        action: String,
        source: std::io::Error,
    },
}

fn io(action: impl Into<String>) -> impl FnOnce(std::io::Error) -> EmbeddedError {
    let action = action.into();
    move |source| EmbeddedError::Io { action, source }
}

/// Finds `initdb` and `postgres`: `pg_config --bindir` first, then the newest
/// `/usr/lib/postgresql/<major>/bin`.
pub fn find_bin_dir() -> Result<PathBuf, EmbeddedError> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if has_server(&dir) {
                return Ok(dir);
            }
        }
    }
    let mut candidates: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_server(dir))
        .collect();
    candidates.sort();
    candidates
        .pop()
        .map(|(_, dir)| dir)
        .ok_or(EmbeddedError::BinariesMissing)
}

/// Who runs the server: ourselves, or an unprivileged user when we are root.
#[derive(Debug, Clone)]
struct ServerUser {
    uid: Uid,
    gid: Gid,
}

impl ServerUser {
    fn pick() -> Result<Option<Self>, EmbeddedError> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        for name in ["postgres", "nobody"] {
            if let Ok(Some(u)) = User::from_name(name) {
                return Ok(Some(Self {
                    uid: u.uid,
                    gid: u.gid,
                }));
            }
        }
        Err(EmbeddedError::Setup(
            "running as root but neither a `postgres` nor a `nobody` user exists to run the server"
                .into(),
        ))
    }
}

/// A configured (and possibly running) embedded cluster.
pub struct EmbeddedCluster {
    root: PathBuf,
    bin_dir: PathBuf,
    user: Option<ServerUser>,
    port: u16,
    server: Option<Child>,
    guardian: Option<(Child, ChildStdin)>,
    throwaway: bool,
    /// Whether this value stops the server when stopped or dropped (false once
    /// detached: the harness's server lives until the guardian stops it).
    owns_server: bool,
}

/// What [`EmbeddedCluster::restart`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restarted {
    /// A new server was started (with crash recovery, if the old one died).
    Started,
    /// A server already runs on the data directory (an operator started one):
    /// it is used as is.
    Adopted,
}

impl EmbeddedCluster {
    /// Prepares (initdb on first use) the cluster under `root`. `throwaway` clusters
    /// are deleted when this process ends.
    pub fn init(root: &Path, throwaway: bool) -> Result<Self, EmbeddedError> {
        let bin_dir = find_bin_dir()?;
        let user = ServerUser::pick()?;
        fs::create_dir_all(root).map_err(io(format!("create {}", root.display())))?;
        let root = root
            .canonicalize()
            .map_err(io(format!("resolve {}", root.display())))?;
        let cluster = Self {
            root,
            bin_dir,
            user,
            port: 0,
            server: None,
            guardian: None,
            throwaway,
            owns_server: false,
        };
        cluster.prepare_dirs()?;
        if !cluster.pgdata().join("PG_VERSION").exists() {
            cluster.initdb()?;
        }
        Ok(cluster)
    }

    fn pgdata(&self) -> PathBuf {
        self.root.join("pg")
    }
    fn socket_dir(&self) -> PathBuf {
        self.root.join("run")
    }
    fn password_file(&self) -> PathBuf {
        self.root.join("pg-password")
    }
    fn log_file(&self) -> PathBuf {
        self.root.join("postgres.log")
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn port(&self) -> u16 {
        self.port
    }

    fn chown(&self, path: &Path) -> Result<(), EmbeddedError> {
        if let Some(u) = &self.user {
            nix::unistd::chown(path, Some(u.uid), Some(u.gid))
                .map_err(|e| EmbeddedError::Setup(format!("chown {}: {e}", path.display())))?;
        }
        Ok(())
    }

    fn prepare_dirs(&self) -> Result<(), EmbeddedError> {
        for dir in [self.root.clone(), self.socket_dir()] {
            fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                .map_err(io(format!("chmod {}", dir.display())))?;
            self.chown(&dir)?;
        }
        if self.user.is_some() {
            // The server user must be able to reach the directory through its parents.
            let probe = Command::new("test")
                .arg("-x")
                .arg(&self.root)
                .as_server_user(self.user.as_ref())
                .status();
            if !matches!(probe, Ok(s) if s.success()) {
                return Err(EmbeddedError::Setup(format!(
                    "the unprivileged server user cannot enter {}; choose a data directory outside root's home (HEARTBEAT_DATA_DIR)",
                    self.root.display()
                )));
            }
        }
        Ok(())
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        cmd.as_server_user(self.user.as_ref());
        cmd.env_remove("PGDATA")
            .env_remove("PGHOST")
            .env_remove("PGPORT");
        cmd
    }

    fn initdb(&self) -> Result<(), EmbeddedError> {
        let password: String = {
            use rand::Rng;
            rand::thread_rng()
                .sample_iter(&rand::distributions::Alphanumeric)
                .take(32)
                .map(char::from)
                .collect()
        };
        let pwfile = self.password_file();
        fs::write(&pwfile, &password).map_err(io("write the password file"))?;
        fs::set_permissions(&pwfile, fs::Permissions::from_mode(0o600))
            .map_err(io("chmod the password file"))?;
        self.chown(&pwfile)?;
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.pgdata())
            .args([
                "-U",
                ROLE,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["-E", "UTF8", "--no-locale", "--no-sync"])
            .stdin(Stdio::null())
            .output()
            .map_err(io("run initdb"))?;
        if !out.status.success() {
            let _ = fs::remove_dir_all(self.pgdata());
            return Err(EmbeddedError::Setup(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Recovers from a run that was killed: a server still running from it is
    /// stopped; a stale `postmaster.pid` is removed.
    fn recover_stale_server(&self) -> Result<(), EmbeddedError> {
        let pidfile = self.pgdata().join("postmaster.pid");
        let Ok(text) = fs::read_to_string(&pidfile) else {
            return Ok(());
        };
        let pid = text
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok());
        let alive = pid.is_some_and(is_postgres_process);
        if alive {
            tracing::warn!(
                pid,
                "stopping a PostgreSQL server left running by an earlier run"
            );
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.pgdata())
                .args(["stop", "-m", "fast", "-w", "-t", "30"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        } else {
            tracing::info!("removing a stale postmaster.pid left by an earlier run");
            let _ = fs::remove_file(&pidfile);
        }
        Ok(())
    }

    /// Starts the server and waits until it accepts connections, then makes sure
    /// the `heartbeat` database exists.
    pub fn start(&mut self) -> Result<(), EmbeddedError> {
        self.recover_stale_server()?;
        self.port = free_loopback_port()?;
        self.owns_server = true;
        self.spawn_server()?;
        self.create_database()?;
        let _ = fs::write(self.root.join("postgres.port"), self.port.to_string());
        Ok(())
    }

    /// The exit status of the server this value started, once it has exited
    /// (None while it runs, or if none was started).
    pub fn server_exited(&mut self) -> Option<std::process::ExitStatus> {
        self.server.as_mut()?.try_wait().ok().flatten()
    }

    /// The pid of a live PostgreSQL server on the data directory, whoever started it.
    pub fn running_pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.pgdata().join("postmaster.pid")).ok()?;
        let pid = text.lines().next()?.trim().parse::<i32>().ok()?;
        is_postgres_process(pid).then_some(pid)
    }

    /// Starts the server again on the same port and socket (the pool's connection
    /// string names them) after it died. PostgreSQL does crash recovery itself; a
    /// start while backends of the dead server still hold its shared memory fails,
    /// and the caller retries. A server already running on the data directory
    /// (an operator's) is adopted instead.
    pub fn restart(&mut self) -> Result<Restarted, EmbeddedError> {
        if let Some(server) = self.server.as_mut() {
            if server.try_wait().ok().flatten().is_none() {
                return Ok(Restarted::Adopted);
            }
        }
        self.server = None;
        // The guardian watched the dead server: let it go, a new one watches the next.
        if let Some((mut child, stdin)) = self.guardian.take() {
            drop(stdin);
            let _ = child.wait();
        }
        if self.running_pid().is_some() {
            return Ok(Restarted::Adopted);
        }
        self.spawn_server()?;
        Ok(Restarted::Started)
    }

    /// Spawns the postmaster on `self.port` with its guardian, and waits until it
    /// accepts connections.
    fn spawn_server(&mut self) -> Result<(), EmbeddedError> {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .map_err(io("open the PostgreSQL log"))?;
        self.chown(&self.log_file())?;
        let server = self
            .command("postgres")
            .arg("-D")
            .arg(self.pgdata())
            .arg("-k")
            .arg(self.socket_dir())
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-c", "max_connections=200"])
            .args(self.fast_crash_recovery())
            // A throwaway cluster trades durability for speed; a kept one keeps it.
            .args(if self.throwaway {
                &[
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ][..]
            } else {
                &[][..]
            })
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("dup log"))?)
            .stderr(log)
            // Its own process group: a terminal's Ctrl-C reaches the daemon, which then
            // stops the server after its own graceful shutdown.
            .process_group(0)
            .spawn()
            .map_err(io("start postgres"))?;
        let pid = server.id();
        self.server = Some(server);
        self.spawn_guardian(pid)?;
        self.wait_ready()
    }

    fn spawn_guardian(&mut self, pid: u32) -> Result<(), EmbeddedError> {
        let cleanup = if self.throwaway {
            format!("rm -rf '{}'", self.root.display())
        } else {
            String::new()
        };
        let script = format!(
            "cat >/dev/null; kill -INT {pid} 2>/dev/null; i=0; while kill -0 {pid} 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; {cleanup}"
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(io("start the guardian"))?;
        let stdin = child.stdin.take().expect("piped stdin");
        self.guardian = Some((child, stdin));
        Ok(())
    }

    /// Crash recovery starts by fsyncing every file of the data directory one by
    /// one (seconds on a slow disk, during which the dead man's switch is down);
    /// `syncfs` makes it one call per file system. PostgreSQL 14 and later.
    fn fast_crash_recovery(&self) -> Vec<&'static str> {
        let major = fs::read_to_string(self.pgdata().join("PG_VERSION"))
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(0);
        if cfg!(target_os = "linux") && major >= 14 {
            vec!["-c", "recovery_init_sync_method=syncfs"]
        } else {
            Vec::new()
        }
    }

    fn wait_ready(&mut self) -> Result<(), EmbeddedError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(server) = self.server.as_mut() {
                if let Ok(Some(status)) = server.try_wait() {
                    let tail = fs::read_to_string(self.log_file()).unwrap_or_default();
                    let tail: Vec<&str> = tail.lines().rev().take(5).collect();
                    return Err(EmbeddedError::Setup(format!(
                        "postgres exited with {status} while starting: {}",
                        tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
                    )));
                }
            }
            let ok = self
                .command("pg_isready")
                .arg("-h")
                .arg(self.socket_dir())
                .args(["-p", &self.port.to_string(), "-U", ROLE, "-d", "postgres"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(EmbeddedError::Setup(
                    "PostgreSQL did not accept connections within 60 s".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn create_database(&self) -> Result<(), EmbeddedError> {
        let out = self
            .command("psql")
            .arg("-h")
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string(), "-U", ROLE, "-d", "postgres"])
            .args([
                "-XAtqc",
                &format!("SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"),
            ])
            .output()
            .map_err(io("run psql"))?;
        if String::from_utf8_lossy(&out.stdout).trim() == "1" {
            return Ok(());
        }
        let out = self
            .command("createdb")
            .arg("-h")
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string(), "-U", ROLE, DATABASE])
            .output()
            .map_err(io("run createdb"))?;
        if !out.status.success() {
            return Err(EmbeddedError::Setup(format!(
                "createdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Connection string for `dbname` over the private unix socket.
    pub fn connection_string(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user={ROLE} dbname={dbname}",
            self.socket_dir().display(),
            self.port
        )
    }

    /// Where the server's binaries are (tests use pg_ctl to restart it).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// Stops whichever server runs on the data directory (fast shutdown) and waits
    /// for it to exit: the one this value started, or one an operator restarted.
    pub fn stop(&mut self) {
        if !self.owns_server {
            return;
        }
        self.owns_server = false;
        if self.running_pid().is_some() {
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.pgdata())
                .args(["stop", "-m", "fast", "-w", "-t", "30"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut server) = self.server.take() {
            let pid = nix::unistd::Pid::from_raw(server.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if matches!(server.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if let Some((mut child, stdin)) = self.guardian.take() {
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Keeps the server running until this process exits, then the guardian stops
    /// it. For the test harness, whose cluster lives in a static.
    pub fn detach(mut self) {
        self.owns_server = false;
        self.server.take();
        if let Some((child, stdin)) = self.guardian.take() {
            std::mem::forget(child);
            std::mem::forget(stdin);
        }
    }

    /// The server's log, for diagnostics.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.log_file()).unwrap_or_default();
        let mut tail: Vec<&str> = text.lines().rev().take(lines).collect();
        tail.reverse();
        tail.join("\n")
    }
}

impl Drop for EmbeddedCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

trait AsServerUser {
    fn as_server_user(&mut self, user: Option<&ServerUser>) -> &mut Self;
}

impl AsServerUser for Command {
    fn as_server_user(&mut self, user: Option<&ServerUser>) -> &mut Self {
        if let Some(u) = user {
            // std drops root's supplementary groups when it sets the uid.
            self.uid(u.uid.as_raw()).gid(u.gid.as_raw());
            self.env("HOME", "/tmp");
        }
        self
    }
}

fn is_postgres_process(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim().starts_with("postgres"))
        .unwrap_or(false)
}

fn free_loopback_port() -> Result<u16, EmbeddedError> {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io("find a free loopback port"))?;
    let port = listener
        .local_addr()
        .map_err(io("read the free port"))?
        .port();
    drop(listener);
    Ok(port)
}

/// Writes one line to stderr; used for the "what to install" message before
/// tracing is set up.
pub fn print_line(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}
