//! Every client verb against the one exit-code table (`heartbeat::cli::exit`,
//! README "Exit codes"), verb by verb: unreachable daemon and refused key are 2
//! with a line saying which, and what the help texts say a flag accepts is
//! accepted (and what they exclude is refused with 2).

use heartbeat::cli::exit;

use crate::helpers::{spawn_app, spawn_app_with, test_config};

const ADMIN: &str = "an-admin-key-of-some-length";

/// Runs the binary with `args`; returns (exit code, stdout, stderr).
async fn heartbeat(args: &[&str]) -> (u8, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_heartbeat"))
        .args(args)
        .env_remove("HEARTBEAT_KEY")
        .env_remove("HEARTBEAT_ADMIN_KEY")
        .env_remove("HEARTBEAT_URL")
        .env_remove("HEARTBEAT_CONFIG")
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1) as u8,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A URL nothing listens on.
fn nowhere() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

/// Every verb that talks to the daemon, as a user types it (`--url` added).
const VERBS: [&[&str]; 9] = [
    &["status"],
    &["status", "--json"],
    &["schedule"],
    &["schedule", "pause", "recompute"],
    &["schedule", "resume", "recompute"],
    &["schedule", "trigger", "segments"],
    &["project", "create", "shop"],
    &["refresh", "all"],
    &["refresh", "audit"],
];

#[tokio::test]
async fn every_client_verb_exits_2_when_the_daemon_is_unreachable() {
    let url = nowhere();
    for verb in VERBS {
        let args: Vec<&str> = verb.iter().copied().chain(["--url", &url]).collect();
        let (code, _, err) = heartbeat(&args).await;
        assert_eq!(code, exit::USAGE_OR_CONNECTION, "{verb:?}: {err}");
        assert!(err.contains("cannot reach"), "{verb:?} says why: {err}");
    }
}

#[tokio::test]
async fn every_client_verb_exits_2_naming_the_401_when_the_key_is_missing_or_wrong() {
    let mut config = test_config();
    config.admin_key = Some(ADMIN.into());
    let app = spawn_app_with(config).await;
    for verb in VERBS {
        for key in [None, Some("not-the-admin-key-at-all")] {
            let mut args: Vec<&str> = verb.to_vec();
            args.extend(["--url", &app.address]);
            if let Some(k) = key {
                args.extend(["--key", k]);
            }
            let (code, _, err) = heartbeat(&args).await;
            assert_eq!(code, exit::USAGE_OR_CONNECTION, "{verb:?} {key:?}: {err}");
            assert!(err.contains("401"), "{verb:?} {key:?} names the 401: {err}");
        }
    }
}

#[tokio::test]
async fn the_schedule_controls_exit_0_when_done_and_2_when_refused() {
    let app = spawn_app().await;
    let url = app.address.as_str();
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for args in [
        &["schedule", "pause", "recompute", "--until", &tomorrow][..],
        &["schedule", "resume", "recompute"],
        &["schedule", "trigger", "segments"],
    ] {
        let args: Vec<&str> = args.iter().copied().chain(["--url", url]).collect();
        let (code, out, err) = heartbeat(&args).await;
        assert_eq!(code, exit::SUCCESS, "{args:?}: {out}{err}");
    }
    let (code, out, err) = heartbeat(&[
        "schedule",
        "next",
        "@midnight",
        "--tz",
        "Europe/Berlin",
        "-n",
        "2",
    ])
    .await;
    assert_eq!(code, exit::SUCCESS, "{out}{err}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let yesterday = "2020-01-01T00:00:00Z";
    for args in [
        &["schedule", "pause", "no-such-entry"][..],
        &["schedule", "trigger", "no-such-entry"],
        &["schedule", "pause", "recompute", "--until", yesterday],
        &["schedule", "pause", "recompute", "--until", "tomorrow"],
    ] {
        let args: Vec<&str> = args.iter().copied().chain(["--url", url]).collect();
        let (code, _, err) = heartbeat(&args).await;
        assert_eq!(code, exit::USAGE_OR_CONNECTION, "{args:?}: {err}");
    }
}

/// The help of `args`, as `--help` prints it.
async fn help(args: &[&str]) -> String {
    let mut all = args.to_vec();
    all.push("--help");
    let (code, out, err) = heartbeat(&all).await;
    assert_eq!(code, 0, "{err}");
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn what_the_help_says_a_flag_accepts_is_accepted_and_what_it_excludes_is_refused() {
    let refresh = help(&["refresh"]).await;
    for claim in [
        "`recompute` is the same",
        "30s, 10m, 1h, 1d",
        "plain seconds",
    ] {
        assert!(refresh.contains(claim), "refresh --help: {refresh}");
    }
    // Accepted as the help says: the verb then only fails to reach the daemon.
    let url = nowhere();
    for args in [
        &["refresh", "recompute", "--metric", "orders"][..],
        &["refresh", "all", "--timeout", "1d"],
        &["refresh", "all", "--timeout", "90"],
        &["refresh", "maintenance", "--trigger", "deploy"],
    ] {
        let args: Vec<&str> = args.iter().copied().chain(["--url", &url]).collect();
        let (code, _, err) = heartbeat(&args).await;
        assert_eq!(code, exit::USAGE_OR_CONNECTION, "{args:?}: {err}");
        assert!(err.contains("cannot reach"), "{args:?} was accepted: {err}");
    }
    for args in [
        &["refresh", "all", "--timeout", "5y"][..],
        &["refresh", "all", "--trigger", "someone"],
        &["refresh", "audit", "--metric", "orders"],
        &["refresh", "laundry"],
    ] {
        let (code, _, err) = heartbeat(args).await;
        assert_eq!(code, exit::USAGE_OR_CONNECTION, "{args:?}: {err}");
        assert!(!err.contains("cannot reach"), "{args:?} was refused: {err}");
    }

    let serve = help(&["serve"]).await;
    for claim in [
        "no host names",
        "key=value",
        "at least 16 characters",
        "true/false",
    ] {
        assert!(
            serve.contains(claim),
            "serve --help lacks '{claim}': {serve}"
        );
    }
    for (flag, value, named) in [
        ("--bind", "localhost:8000", "bind"),
        ("--log-format", "yaml", "log_format"),
        ("--admin-key", "short", "admin_key"),
        ("--self-ping-url", "ftp://example.com/x", "self_ping_url"),
    ] {
        let (code, _, err) = heartbeat(&["migrate", flag, value]).await;
        assert_eq!(code, exit::USAGE_OR_CONNECTION, "{flag} {value}: {err}");
        assert!(err.contains(named), "{flag} {value}: {err}");
    }

    let status = help(&["status"]).await;
    assert!(status.contains("1 to 50 ASCII letters"), "{status}");
    let next = help(&["schedule", "next"]).await;
    assert!(next.contains("@reboot is refused"), "{next}");
    let (code, _, _) = heartbeat(&["schedule", "next", "@reboot"]).await;
    assert_eq!(code, exit::USAGE_OR_CONNECTION);
    let create = help(&["project", "create"]).await;
    assert!(create.contains("admin key"), "{create}");
    assert!(create.contains("1 to 100 characters"), "{create}");
}
