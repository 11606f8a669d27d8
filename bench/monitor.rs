//! Dead man's switch benchmarks (docs/benchmarks.md, "Dead man's switch").
//!
//! `cargo bench --bench monitor` starts a daemon in this process on its own
//! PostgreSQL cluster (durable settings: fsync on, synchronous commit) and:
//!
//! - **pings**: `wrk -c64 -d10s` against `/hb/{token}` on random tokens out of
//!   10,000, alternated with the same load on `/healthz` (a plain 200 route on the
//!   same server), several runs; then checks every 200 was committed (the sum of
//!   the heartbeats' ping counters is at least the number of 200s wrk saw).
//! - **hc**: the same 10,000 heartbeats pinged by healthchecks.io's
//!   `/ping/{uuid}` and by `/hb/{token}`, alternated in one run (`-- hc`); the
//!   ratio of the two is the cost of the UUID form.
//! - **detection**: 100,000 heartbeats (`BENCH_DETECTION_HEARTBEATS`), every
//!   detection rule on, a quarter of them schedule heartbeats with a start
//!   margin, whose deadlines fall over 20 s; the daemon's own deadline loop flips
//!   them; p50/p99/max of (detected − deadline), and the process's CPU use while
//!   idle afterwards (for `BENCH_IDLE_SECONDS`, 30).
//!
//! Needs `wrk` on the PATH (`apt-get install wrk`). Loopback only, bounded in time.

use std::process::Command;
use std::time::{Duration, Instant};

use heartbeat::app::Application;
use heartbeat::config::Config;
use heartbeat::db::embedded::{EmbeddedCluster, DATABASE};
use heartbeat::monitor::heartbeat::HeartbeatToken;
use tokio_util::sync::CancellationToken;

/// The same allocator as the `heartbeat` binary, so the daemon measured here is
/// the one that ships.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 3;
const TOKENS: usize = 10_000;
const DETECTION_HEARTBEATS: i64 = 100_000;
const IDLE_SECONDS: u64 = 30;

/// `name` from the environment as a number, else `default` (a smaller run to
/// check the benchmark works: `BENCH_DETECTION_HEARTBEATS=2000`).
fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let dir = std::env::temp_dir().join(format!("heartbeat-bench-{}", std::process::id()));
    let mut cluster = EmbeddedCluster::init(&dir, false).expect("cluster initialises");
    cluster.start().expect("cluster starts");
    let url = cluster.connection_string(DATABASE);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut config = Config {
            bind: "127.0.0.1:0".parse().unwrap(),
            no_scheduler: true,
            demo: Some(false),
            database_url: Some(url.clone()),
            ..Config::default()
        };
        config.monitor.max_heartbeats_per_project = 1_000_000;
        // A short history, so the runs measure the steady state of a long-lived
        // daemon, where every ping overwrites the oldest one of its heartbeat.
        config.monitor.pings_kept = 10;
        let app = Application::build(config, url.clone()).await.unwrap();
        let port = app.port();
        let stop = CancellationToken::new();
        let server = tokio::spawn(app.run_until_stopped(stop.clone()));
        let base = format!("http://127.0.0.1:{port}");
        wait_ready(&base).await;
        let db = heartbeat::db::connect_direct(&url).await.unwrap();
        if only.as_deref().is_none_or(|o| o == "pings") {
            pings(&db, &base).await;
        }
        if only.as_deref().is_none_or(|o| o == "hc") {
            ping_forms(&db, &base).await;
        }
        if only.as_deref().is_none_or(|o| o == "detection") {
            detection(&db).await;
        }
        stop.cancel();
        let _ = server.await;
    });
    cluster.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn wait_ready(base: &str) {
    for _ in 0..400 {
        if let Ok(r) = reqwest::get(format!("{base}/readyz")).await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("daemon not ready");
}

/// Requests/sec and completed requests from wrk's report; panics on non-2xx.
fn wrk(url: &str, script: Option<&str>) -> (f64, u64) {
    wrk_for(url, script, "10s")
}

/// [`wrk`] for `duration` (`3s`, `10s`).
fn wrk_for(url: &str, script: Option<&str>, duration: &str) -> (f64, u64) {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t2", "-c64", &format!("-d{duration}")]);
    if let Some(s) = script {
        cmd.args(["-s", s]);
    }
    let out = cmd
        .arg(url)
        .output()
        .expect("wrk runs (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !text.contains("Non-2xx"),
        "non-2xx responses from {url}:\n{text}"
    );
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"));
    let total = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (rps, total)
}

fn stats(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

async fn pings(db: &tokio_postgres::Client, base: &str) {
    let tokens: Vec<String> = (0..TOKENS)
        .map(|_| HeartbeatToken::generate().to_string())
        .collect();
    let names: Vec<String> = (0..TOKENS).map(|i| format!("bench-{i}")).collect();
    let ids: Vec<uuid::Uuid> = (0..TOKENS).map(|_| uuid::Uuid::now_v7()).collect();
    db.execute(
        "INSERT INTO heartbeat.heartbeat (heartbeat_id, project_id, name, token, period_seconds, grace_seconds)
         SELECT id, '00000000-0000-0000-0000-000000000001', name, token, 3600, 600
         FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t(id, name, token)",
        &[&ids, &names, &tokens],
    )
    .await
    .unwrap();
    // What autovacuum does within a minute of a bulk insert on a kept cluster:
    // statistics for the planner and the visibility map. Without it the first
    // seconds measure a table the planner believes is empty.
    db.batch_execute("VACUUM ANALYZE heartbeat.heartbeat")
        .await
        .unwrap();
    let paths: Vec<String> = tokens.iter().map(|t| format!("/hb/{t}")).collect();
    let script = random_paths_script("hb", &paths);
    let mut plain = Vec::new();
    let mut ping = Vec::new();
    let mut ratio = Vec::new();
    let mut ping_total = 0u64;
    for run in 1..=RUNS {
        let s = script.clone();
        let b = base.to_string();
        let (p, _) = tokio::task::spawn_blocking(move || wrk(&format!("{b}/healthz"), None))
            .await
            .unwrap();
        let b = base.to_string();
        let (h, n) = tokio::task::spawn_blocking(move || wrk(&format!("{b}/"), Some(&s)))
            .await
            .unwrap();
        println!(
            "run {run}: /healthz {p:.0} req/s, /hb/{{token}} {h:.0} req/s, ratio {:.2}",
            h / p
        );
        plain.push(p);
        ping.push(h);
        ratio.push(h / p);
        ping_total += n;
    }
    // Give in-flight requests of the last run time to finish.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let committed: i64 = db
        .query_one(
            "SELECT coalesce(sum(ping_seq), 0)::int8 FROM heartbeat.heartbeat WHERE name LIKE 'bench-%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let (a, b, c) = stats(&mut plain);
    println!("plain /healthz req/s   min {a:.0} median {b:.0} max {c:.0}");
    let (a, b, c) = stats(&mut ping);
    println!("ping  /hb/{{token}} req/s min {a:.0} median {b:.0} max {c:.0}");
    let (a, b, c) = stats(&mut ratio);
    println!("ratio ping/plain        min {a:.2} median {b:.2} max {c:.2}");
    println!(
        "durability: wrk completed {ping_total} pings (all 200), committed ping rows counted {committed} ({})",
        if committed as u64 >= ping_total { "ok" } else { "MISSING" }
    );
    db.execute(
        "DELETE FROM heartbeat.heartbeat WHERE name LIKE 'bench-%'",
        &[],
    )
    .await
    .unwrap();
    let _ = std::fs::remove_file(&script);
}

/// Writes a wrk script that requests a random one of `paths` (formatted once,
/// at start, so wrk spends the same on each request); returns its path.
fn random_paths_script(name: &str, paths: &[String]) -> String {
    let script = std::env::temp_dir().join(format!("hb-bench-{name}-{}.lua", std::process::id()));
    let list = paths
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(",");
    std::fs::write(
        &script,
        format!(
            "local paths = {{{list}}}\n\
             local requests = {{}}\n\
             for i, p in ipairs(paths) do requests[i] = wrk.format(\"GET\", p) end\n\
             local n = #requests\n\
             math.randomseed(os.time())\n\
             request = function()\n  return requests[math.random(n)]\nend\n"
        ),
    )
    .unwrap();
    script.to_str().unwrap().to_string()
}

/// `/ping/{uuid}` against `/hb/{token}` on the same 10,000 heartbeats, in one
/// run: RUNS pairs, alternating which form goes first, after a 3 s warm-up of
/// each (a long-lived daemon has every UUID in its map). The target is
/// a ratio of at least 0.95.
async fn ping_forms(db: &tokio_postgres::Client, base: &str) {
    const FORM_RUNS: usize = 6;
    let tokens: Vec<String> = (0..TOKENS)
        .map(|_| HeartbeatToken::generate().to_string())
        .collect();
    let names: Vec<String> = (0..TOKENS).map(|i| format!("hcbench-{i}")).collect();
    let ids: Vec<uuid::Uuid> = (0..TOKENS).map(|_| uuid::Uuid::now_v7()).collect();
    let rows = db
        .query(
            "INSERT INTO heartbeat.heartbeat (heartbeat_id, project_id, name, token, period_seconds, grace_seconds)
             SELECT id, '00000000-0000-0000-0000-000000000001', name, token, 3600, 600
             FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t(id, name, token)
             RETURNING token, ping_uuid",
            &[&ids, &names, &tokens],
        )
        .await
        .unwrap();
    db.batch_execute("VACUUM ANALYZE heartbeat.heartbeat")
        .await
        .unwrap();
    let hb_paths: Vec<String> = rows
        .iter()
        .map(|r| format!("/hb/{}", r.get::<_, String>(0)))
        .collect();
    let hc_paths: Vec<String> = rows
        .iter()
        .map(|r| format!("/ping/{}", r.get::<_, uuid::Uuid>(1)))
        .collect();
    let hb_script = random_paths_script("hb", &hb_paths);
    let hc_script = random_paths_script("hc", &hc_paths);
    let run = |script: String, duration: &'static str| {
        let url = format!("{base}/");
        tokio::task::spawn_blocking(move || wrk_for(&url, Some(&script), duration))
    };
    run(hc_script.clone(), "3s").await.unwrap();
    run(hb_script.clone(), "3s").await.unwrap();
    let (mut hb, mut hc, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for i in 1..=FORM_RUNS {
        let (h, u) = if i % 2 == 1 {
            let h = run(hb_script.clone(), "10s").await.unwrap().0;
            (h, run(hc_script.clone(), "10s").await.unwrap().0)
        } else {
            let u = run(hc_script.clone(), "10s").await.unwrap().0;
            (run(hb_script.clone(), "10s").await.unwrap().0, u)
        };
        println!(
            "pair {i}: /hb/{{token}} {h:.0} req/s, /ping/{{uuid}} {u:.0} req/s, ratio {:.3}",
            u / h
        );
        hb.push(h);
        hc.push(u);
        ratio.push(u / h);
    }
    let (a, b, c) = stats(&mut hb);
    println!("/hb/{{token}}   req/s min {a:.0} median {b:.0} max {c:.0}");
    let (a, b, c) = stats(&mut hc);
    println!("/ping/{{uuid}}  req/s min {a:.0} median {b:.0} max {c:.0}");
    let (a, b, c) = stats(&mut ratio);
    println!("ratio uuid/token   min {a:.3} median {b:.3} max {c:.3}");
    db.execute(
        "DELETE FROM heartbeat.heartbeat WHERE name LIKE 'hcbench-%'",
        &[],
    )
    .await
    .unwrap();
    let _ = std::fs::remove_file(&hb_script);
    let _ = std::fs::remove_file(&hc_script);
}

/// CPU seconds this process has used (user + system).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

async fn detection(db: &tokio_postgres::Client) {
    // Every detection rule on (docs/monitoring.md): failure and recovery
    // thresholds (each heartbeat already one failure into a threshold of 2, so
    // its missed deadline is the one that takes it down), a maximum and minimum
    // run time with an open `rid` run each, a minimum interval, a tag a
    // recurring silence names (its window not open now), and a parent (up)
    // whose status the loop must look up for each flip. One in ten is also
    // snoozed by a one-off silence and one in ten has a parent that is down, so
    // their flips are withheld and owed. One in four is a schedule heartbeat
    // (hourly, at the minute that puts its deadline in the 20 s) with a start
    // margin of 2 to 3 minutes, missed as a fire with no start within it.
    // `BENCH_NO_RULES=1` leaves the rules off, for a comparison on the same
    // machine.
    let rules = std::env::var_os("BENCH_NO_RULES").is_none();
    let heartbeats: i64 = env_or("BENCH_DETECTION_HEARTBEATS", DETECTION_HEARTBEATS);
    db.batch_execute(
        "INSERT INTO heartbeat.heartbeat (heartbeat_id, project_id, name, token, period_seconds,
             grace_seconds, status, last_ping_at, last_ping_kind, last_signal_at)
         VALUES ('00000000-0000-0000-0000-0000000000aa', '00000000-0000-0000-0000-000000000001',
                 'det-parent', 'hb_detparent000000', 86400, 0, 'up', now(), 'success', now());
         INSERT INTO heartbeat.heartbeat (heartbeat_id, project_id, name, token, period_seconds,
             grace_seconds, status, last_ping_at, last_ping_kind, last_signal_at,
             last_signal_failed, fail_streak, failing, failing_since, failing_cause)
         VALUES ('00000000-0000-0000-0000-0000000000ab', '00000000-0000-0000-0000-000000000001',
                 'det-parent-down', 'hb_detparentdown00', 86400, 0, 'down', now(), 'fail', now(),
                 true, 1, true, now(), 'fail');
         INSERT INTO heartbeat.silence (silence_id, project_id, tag, cron, duration_seconds, tz)
         VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 'bench',
                 '0 0 1 1 *', 60, 'UTC');
         INSERT INTO heartbeat.silence (silence_id, project_id, tag, until)
         VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 'bench-snoozed',
                 now() + interval '1 day');",
    )
    .await
    .unwrap();
    // Deadlines spread from 10 s to 30 s from now, so the load arrives as it would
    // in production: a steady stream, not one instant. A schedule heartbeat's
    // deadline is its fire time `f` (a whole minute, 2 to 3 minutes before the
    // target) plus its margin; its last success was 59 min 59 s before `f`, so
    // `f` is the fire it owes, and its open run's limit (2 h) is past the test.
    let inserted = db
        .execute(
            "INSERT INTO heartbeat.heartbeat (heartbeat_id, project_id, name, token, period_seconds,
                 schedule, tz, start_margin_seconds,
                 grace_seconds, status, last_ping_at, last_ping_kind, last_signal_at, deadline,
                 failure_threshold, recovery_threshold, fail_streak, max_runtime_seconds,
                 min_runtime_seconds, min_interval_seconds, runs, tags, parents)
             SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 'det-' || i,
                    'hb_' || substr(md5(i::text), 1, 16),
                    CASE WHEN NOT sched THEN 60 END,
                    CASE WHEN sched THEN extract(minute FROM f)::int || ' * * * *' END,
                    'UTC', CASE WHEN sched THEN m END,
                    0, 'up', t, 'success', t,
                    CASE WHEN sched THEN f + make_interval(secs => m) ELSE t + interval '60 seconds' END,
                    CASE WHEN $2 THEN 2 ELSE 1 END, CASE WHEN $2 THEN 2 ELSE 1 END,
                    CASE WHEN $2 THEN 1 ELSE 0 END,
                    CASE WHEN $2 THEN 7200 END, CASE WHEN $2 THEN 1 END, CASE WHEN $2 THEN 30 END,
                    CASE WHEN $2 THEN jsonb_build_array(jsonb_build_array(gen_random_uuid(), t))
                         ELSE '[]' END,
                    CASE WHEN NOT $2 THEN '{}'
                         WHEN i % 10 = 1 THEN '{bench,bench-snoozed}'::text[]
                         ELSE '{bench}'::text[] END,
                    CASE WHEN NOT $2 THEN '{}'
                         WHEN i % 10 = 2 THEN ARRAY['00000000-0000-0000-0000-0000000000ab'::uuid]
                         ELSE ARRAY['00000000-0000-0000-0000-0000000000aa'::uuid] END
             FROM generate_series(1, $1::int8) AS i,
                  LATERAL (SELECT $2 AND i % 4 = 0 AS sched,
                                  now() + interval '10 seconds'
                                  + (i * 20.0 / $1) * interval '1 second' AS target) AS d,
                  LATERAL (SELECT date_trunc('minute', d.target - interval '120 seconds') AS f) AS g,
                  LATERAL (SELECT ceil(extract(epoch FROM d.target - g.f))::int AS m,
                                  CASE WHEN d.sched THEN g.f - interval '3599 seconds'
                                       ELSE d.target - interval '60 seconds' END AS t) AS s",
            &[&heartbeats, &rules],
        )
        .await
        .unwrap();
    let on = if rules {
        "every rule on (a quarter on a schedule with a start margin)"
    } else {
        "no rule on"
    };
    println!("detection: {inserted} heartbeats with {on}, deadlines over 20 s");
    let started = Instant::now();
    loop {
        let n: i64 = db
            .query_one("SELECT count(*) FROM heartbeat.flip", &[])
            .await
            .unwrap()
            .get(0);
        if n >= heartbeats || started.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let row = db
        .query_one(
            "SELECT count(*),
                    percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM detected_at - at)),
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM detected_at - at)),
                    max(extract(epoch FROM detected_at - at))::float8,
                    count(*) FILTER (WHERE withheld IS NOT NULL),
                    count(*) FILTER (WHERE f.heartbeat_id IN
                        (SELECT heartbeat_id FROM heartbeat.heartbeat WHERE schedule IS NOT NULL)),
                    (SELECT count(*) FROM heartbeat.detection_event)
             FROM heartbeat.flip f",
            &[],
        )
        .await
        .unwrap();
    let (n, p50, p99, max): (i64, f64, f64, f64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    let (withheld, scheduled, events): (i64, i64, i64) = (row.get(4), row.get(5), row.get(6));
    println!("detection: {n} flips ({scheduled} of schedule heartbeats, {withheld} withheld), {events} detection events; deadline -> flip committed: p50 {p50:.3} s, p99 {p99:.3} s, max {max:.3} s");
    // Idle: every heartbeat is down now, nothing is due.
    let idle: u64 = env_or("BENCH_IDLE_SECONDS", IDLE_SECONDS);
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let used = cpu_seconds() - cpu0;
    let share = used / t0.elapsed().as_secs_f64() * 100.0;
    println!(
        "idle: the whole daemon process used {used:.2} CPU s in {idle} s = {share:.2}% of a core"
    );
}
