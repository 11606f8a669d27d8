//! Backfill benchmark (docs/benchmarks.md, "Backfill").
//!
//! `cargo bench --bench backfill` provisions its own PostgreSQL cluster, loads
//! 10,000,000 events over 60 days, and times, alternately in the same run:
//!
//! - **backfill**: the `recompute` lane's real body with a scope of one hourly
//!   metric (`orders`, the demo's shape: a `generate_series` of buckets left-joined
//!   to a count) × 30 days: registry sync, the plan, one transaction, the upsert;
//! - **hand-written SQL**: one `INSERT ... SELECT date_trunc('hour', occurred_at),
//!   count(*) ... GROUP BY ... ON CONFLICT DO UPDATE` over the same 720 buckets.
//!
//! Both write the same rows of `metric_value`; the run checks they agree, then
//! prints each time (median of the runs) and the ratio.

use std::time::{Duration, Instant};

use chrono::{DurationRound, TimeDelta, Utc};
use heartbeat::config::Config;
use heartbeat::db::embedded::{EmbeddedCluster, DATABASE};
use heartbeat::jobs::range::{Range, RangeSet};
use heartbeat::jobs::{JobBody, JobContext, JobKind, Scope};
use heartbeat::refresh::RecomputeBody;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENTS: i64 = 10_000_000;
const SPAN_DAYS: i64 = 60;
const BACKFILL_DAYS: i64 = 30;
const RUNS: usize = 5;

const METRIC: &str = "-- title: Orders\n-- kind: counter\n-- grain: hour\n\
SELECT b.bucket, coalesce(c.value, 0)::float8 AS value
FROM generate_series($1, $2 - interval '1 hour', interval '1 hour') AS b(bucket)
LEFT JOIN (
    SELECT date_trunc('hour', occurred_at) AS bucket, count(*) AS value
    FROM heartbeat.event
    WHERE name = 'order' AND occurred_at >= $1 AND occurred_at < $2
    GROUP BY 1
) c USING (bucket);
";

/// The statement a person would write for the same buckets (hours with no
/// order are not written here; the metric writes them as 0, so the check
/// compares the non-zero ones and the count).
const BY_HAND: &str = "
INSERT INTO heartbeat.metric_value (metric_id, bucket, value, computed_at)
SELECT 'orders', date_trunc('hour', occurred_at), count(*)::float8, now()
FROM heartbeat.event
WHERE name = 'order' AND occurred_at >= $1 AND occurred_at < $2
GROUP BY 2
ON CONFLICT (metric_id, bucket) DO UPDATE
SET value = excluded.value, computed_at = excluded.computed_at";

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let dir = std::env::temp_dir().join(format!("heartbeat-bench-backfill-{}", std::process::id()));
    let defs = tempfile::tempdir().unwrap();
    std::fs::create_dir(defs.path().join("metrics")).unwrap();
    std::fs::write(defs.path().join("metrics/orders.sql"), METRIC).unwrap();
    let mut cluster = EmbeddedCluster::init(&dir, false).expect("cluster initialises");
    cluster.start().expect("cluster starts");
    let url = cluster.connection_string(DATABASE);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = heartbeat::db::connect_direct(&url).await.unwrap();
        heartbeat::db::migrate::run(&mut client).await.unwrap();
        // Buckets are UTC, as the job computes them.
        client.batch_execute("SET TIME ZONE 'UTC'").await.unwrap();
        let now = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
        // BENCH_EVENTS overrides the count, for a quick try of the harness.
        let events: i64 = std::env::var("BENCH_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(EVENTS);
        let loading = Instant::now();
        client
            .execute(
                "INSERT INTO heartbeat.event (source, event_id, occurred_at, client_id, name, value, batch_id)
                 SELECT 'bench', g::text,
                        $1::timestamptz - make_interval(secs => (g * 7919) % ($2::bigint * 86400)),
                        'c' || (g % 1000), CASE WHEN g % 4 = 0 THEN 'order' ELSE 'view' END, 1, 1
                 FROM generate_series(1, $3::bigint) g",
                &[&now, &SPAN_DAYS, &events],
            )
            .await
            .unwrap();
        client.batch_execute("VACUUM ANALYZE heartbeat.event").await.unwrap();
        println!("loaded {events} events over {SPAN_DAYS} days in {:.1?}", loading.elapsed());

        let config = Config {
            demo: Some(false),
            definitions_dir: Some(defs.path().to_path_buf()),
            database_url: Some(url.clone()),
            ..Config::default()
        };
        let pool = heartbeat::db::build_pool(&url, 4).expect("pool");
        let body = RecomputeBody::new(&config);
        let range = Range {
            from: now - TimeDelta::days(BACKFILL_DAYS),
            to: now,
        };
        let scope = Scope::backfill(&["orders".to_string()], &RangeSet::of(range));
        // Warm-up: registers the metric and caches the table.
        body.run(JobContext::detached(JobKind::Recompute, scope.clone(), pool.clone()))
            .await
            .unwrap();

        let (mut ours, mut hand) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let t = Instant::now();
            let result = body
                .run(JobContext::detached(JobKind::Recompute, scope.clone(), pool.clone()))
                .await
                .unwrap();
            ours.push(t.elapsed());
            assert_eq!(result["buckets"], BACKFILL_DAYS * 24, "{result}");
            let t = Instant::now();
            client.execute(BY_HAND, &[&range.from, &range.to]).await.unwrap();
            hand.push(t.elapsed());
        }
        let written: i64 = client
            .query_one(
                "SELECT count(*) FROM heartbeat.metric_value WHERE metric_id = 'orders' AND bucket >= $1 AND bucket < $2",
                &[&range.from, &range.to],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(written, BACKFILL_DAYS * 24);
        let (ours, hand) = (median(ours), median(hand));
        println!(
            "backfill of 1 hourly metric × {BACKFILL_DAYS} days ({} buckets) on {events} events: \
             job {ours:.1?}, hand-written SQL {hand:.1?}, ratio {:.2}",
            BACKFILL_DAYS * 24,
            ours.as_secs_f64() / hand.as_secs_f64()
        );
    });
    drop(cluster);
}
