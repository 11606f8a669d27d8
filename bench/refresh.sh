#!/usr/bin/env bash
# Refresh benchmark: full recompute against one hand-made SQL statement, the hourly
# tick with small and large history, and the daemon's memory. Results and how to
# read them: docs/benchmarks.md ("Refresh: ingest and compute").
#
#   cargo build --release && bench/refresh.sh
#
# Environment: EVENTS (default 10000000), SMALL (1000000), RUNS (3), TICK_ROWS
# (5000). Everything runs on loopback against a throwaway PostgreSQL cluster in a
# temp directory (fsync off), stopped and removed at exit.
set -euo pipefail

EVENTS=${EVENTS:-10000000}
SMALL=${SMALL:-1000000}
RUNS=${RUNS:-3}
TICK_ROWS=${TICK_ROWS:-5000}
CLIENTS=2000
DAYS=90
METRICS=20
PORT=${PORT:-55499}
HTTP=${HTTP:-127.0.0.1:18099}
HERE=$(cd "$(dirname "$0")/.." && pwd)
BIN="$HERE/target/release/heartbeat"
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
ROOT=$(mktemp -d /tmp/hb-bench.XXXXXX)
chmod 755 "$ROOT"

as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$*"; else sh -c "$*"; fi; }
psql_() { psql -h 127.0.0.1 -p "$PORT" -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
DAEMON_PID=
cleanup() {
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl -D $ROOT/data -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$ROOT"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] && chown postgres "$ROOT"
as_pg "$PGBIN/initdb -D $ROOT/data -A trust -U postgres" >/dev/null
as_pg "$PGBIN/pg_ctl -D $ROOT/data -l $ROOT/pg.log -w -o \"-p $PORT -k $ROOT -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c shared_buffers=512MB -c max_wal_size=4GB\" start" >/dev/null
psql_ -c "CREATE DATABASE bench" -c "CREATE DATABASE bench_src"
DB="host=127.0.0.1 port=$PORT user=postgres dbname=bench"
SRC="host=127.0.0.1 port=$PORT user=postgres dbname=bench_src"
DATABASE_URL="$DB" "$BIN" migrate >/dev/null

# Twenty hourly metrics over twenty event names: odd ids count, even ids sum.
mkdir -p "$ROOT/defs/metrics"
for i in $(seq 1 $METRICS); do
  id=$(printf 'm%02d' "$i"); name=$(printf 'e%02d' $((i - 1)))
  if [ $((i % 2)) = 1 ]; then agg='count(*)'; else agg='sum(value)'; fi
  cat >"$ROOT/defs/metrics/$id.sql" <<EOF
-- title: Metric $id
-- kind: counter
-- grain: hour
SELECT b.bucket, coalesce(c.value, 0)::float8 AS value
FROM generate_series(\$1, \$2 - interval '1 hour', interval '1 hour') AS b(bucket)
LEFT JOIN (
    SELECT date_trunc('hour', occurred_at) AS bucket, $agg AS value
    FROM heartbeat.event
    WHERE name = '$name' AND occurred_at >= \$1 AND occurred_at < \$2
    GROUP BY 1
) c USING (bucket)
EOF
done

# The baseline: the same twenty aggregates as one statement, one scan of the events.
psql_ -d bench -c "CREATE TABLE baseline_value (LIKE heartbeat.metric_value INCLUDING ALL)"
cat >"$ROOT/baseline.sql" <<'EOF'
SET TIME ZONE 'UTC';
INSERT INTO baseline_value (metric_id, bucket, value, computed_at)
SELECT 'm' || lpad((substr(m.name, 2)::int + 1)::text, 2, '0'), b.bucket,
       coalesce(CASE WHEN substr(m.name, 2)::int % 2 = 0 THEN a.n ELSE a.s END, 0), now()
FROM (SELECT 'e' || lpad(g::text, 2, '0') AS name FROM generate_series(0, 19) g) m
CROSS JOIN generate_series(
    (SELECT min(date_trunc('hour', occurred_at)) FROM heartbeat.event),
    date_trunc('hour', now()) - interval '1 hour', interval '1 hour') AS b(bucket)
LEFT JOIN (
    SELECT name, date_trunc('hour', occurred_at) AS bucket, count(*) AS n, sum(value) AS s
    FROM heartbeat.event
    WHERE occurred_at < date_trunc('hour', now())
    GROUP BY 1, 2
) a ON a.name = m.name AND a.bucket = b.bucket;
EOF

# New events arrive through a postgres source, as in production.
psql_ -d bench_src -c "CREATE TABLE incoming (event_id text PRIMARY KEY, occurred_at timestamptz NOT NULL, client_id text, name text, value float8)"
cat >"$ROOT/config.toml" <<EOF
bind = "$HTTP"
no_scheduler = true
definitions_dir = "$ROOT/defs"
pool_size = 4

[[sources]]
name = "shop"
kind = "postgres"
dsn = "$SRC"
query = "SELECT event_id, occurred_at, client_id, name, value FROM incoming WHERE occurred_at >= \$1 ORDER BY occurred_at"
EOF

DATABASE_URL="$DB" HEARTBEAT_LOG_FORMAT=json "$BIN" serve --config "$ROOT/config.toml" >"$ROOT/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 100); do curl -fs "http://$HTTP/readyz" >/dev/null && break; sleep 0.1; done

now_ms() { date +%s%3N; }
# Runs one recompute through the API; prints the job's duration in ms.
recompute() {
  local id state job
  id=$(curl -fs -X POST -H 'content-type: application/json' -d '{"metric_ids":"all","trigger":"api"}' "http://$HTTP/api/metrics/recompute" | jq -r .job_id)
  while :; do
    job=$(curl -fs "http://$HTTP/api/jobs/$id")
    state=$(jq -r .state <<<"$job")
    case $state in succeeded) break ;; failed|cancelled) echo "job $state: $job" >&2; exit 1 ;; esac
    sleep 0.02
  done
  jq -r '.started_at, .finished_at' <<<"$job" |
    python3 -c 'import sys, re, datetime as d
t = [d.datetime.fromisoformat(re.sub(r"(\.\d{6})\d*", r"\1", l.strip()).replace("Z", "+00:00")) for l in sys.stdin]
print(round((t[1] - t[0]).total_seconds() * 1000))'
}
rss_peak_mb() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$DAEMON_PID/status"; }
stats() { sort -n | awk '{a[NR]=$1} END {printf "min %s / median %s / max %s", a[1], a[int((NR+1)/2)], a[NR]}'; }

load_history() { # $1 events over DAYS days of whole hours ending at the last complete hour
  psql_ -d bench -c "TRUNCATE heartbeat.event, heartbeat.metric_value, baseline_value; DELETE FROM heartbeat.source_cursor;
    UPDATE heartbeat.metric_registry SET computed_batch = 0, computed_through = NULL"
  psql_ -d bench_src -c "TRUNCATE incoming"
  psql_ -d bench >/dev/null -c "SET TIME ZONE 'UTC';
    INSERT INTO heartbeat.event (source, event_id, occurred_at, client_id, name, value, batch_id)
    SELECT 'history', i::text,
           date_trunc('hour', now()) - interval '1 hour' - interval '$DAYS days'
             + (i - 1) * (interval '$DAYS days' / $1),
           'client_' || lpad((i::bigint * 7919 % $CLIENTS)::text, 4, '0'),
           'e' || lpad((i::bigint * 2654435761 % $METRICS)::text, 2, '0'),
           (i::bigint * 40503 % 10000) / 100.0,
           1
    FROM generate_series(1, $1) i;
    SELECT setval('heartbeat.ingest_batch_seq', greatest(1, (SELECT last_value FROM heartbeat.ingest_batch_seq)))"
  psql_ -d bench -c "VACUUM ANALYZE heartbeat.event"
}

TICK=0
tick() { # one hour's worth of new events in the source, then one recompute
  TICK=$((TICK + 1))
  psql_ -d bench_src -c "INSERT INTO incoming
    SELECT 't$TICK-' || i, date_trunc('hour', now()) - interval '1 hour' + interval '5 minutes' * $TICK / 20 + i * interval '1 ms',
           'client_' || lpad((i * 7919 % $CLIENTS)::text, 4, '0'), 'e' || lpad((i % $METRICS)::text, 2, '0'), i % 100
    FROM generate_series(1, $TICK_ROWS) i"
  recompute
}

report() { echo "$*" | tee -a "$ROOT/report.txt"; }
report "# refresh bench: $(date -u +%FT%TZ), $(nproc) cores, PostgreSQL $(psql_ -d bench -At -c 'SHOW server_version')"
for N in "$SMALL" "$EVENTS"; do
  t0=$(now_ms); load_history "$N"; report "history $N events loaded in $(( ($(now_ms) - t0) / 1000 )) s"
  recompute >/dev/null # registry sync and first full compute (warm-up)
  ours=(); base=()
  for r in $(seq 1 "$RUNS"); do
    psql_ -d bench -c "TRUNCATE heartbeat.metric_value; UPDATE heartbeat.metric_registry SET computed_batch = 0, computed_through = NULL"
    ours+=("$(recompute)")
    psql_ -d bench -c "TRUNCATE baseline_value"
    t0=$(now_ms); psql_ -d bench -f "$ROOT/baseline.sql"; base+=("$(( $(now_ms) - t0 ))")
  done
  rows=$(psql_ -d bench -At -c "SELECT count(*) FROM heartbeat.metric_value")
  brows=$(psql_ -d bench -At -c "SELECT count(*) FROM baseline_value")
  diff=$(psql_ -d bench -At -c "SELECT count(*) FROM heartbeat.metric_value v FULL JOIN baseline_value b USING (metric_id, bucket) WHERE v.value IS NULL OR b.value IS NULL OR abs(v.value - b.value) > 1e-9 * greatest(1, abs(b.value))")
  report "N=$N full recompute (ms): heartbeat $(printf '%s\n' "${ours[@]}" | stats) | one SQL statement via psql $(printf '%s\n' "${base[@]}" | stats) | rows $rows vs $brows, differing $diff"
  report "N=$N ratios (heartbeat/baseline per run): $(for i in "${!ours[@]}"; do awk -v a="${ours[$i]}" -v b="${base[$i]}" 'BEGIN {printf "%.2f ", a/b}'; done)"
  report "N=$N daemon peak RSS so far: $(rss_peak_mb) MB"
  tick >/dev/null # warm-up tick
  ticks=()
  for r in $(seq 1 "$RUNS"); do ticks+=("$(tick)"); done
  report "N=$N hourly tick, $TICK_ROWS new events (ms): $(printf '%s\n' "${ticks[@]}" | stats)"
done
report "daemon peak RSS (VmHWM over the whole run): $(rss_peak_mb) MB"
cp "$ROOT/report.txt" "${REPORT:-/tmp/refresh-bench-report.txt}"
