#!/usr/bin/env bash
# Soak: does the daemon run for a long time without growing? (docs/benchmarks.md,
# "Soak").
#
#   bench/soak.sh [MINUTES] [BINARY]
#
# Starts BINARY (default target/release/heartbeat; `cargo build --release` first)
# on its own embedded PostgreSQL in a temporary directory, with 10,000
# heartbeats (inserted with psql), a webhook to a local receiver and NO
# Prometheus scraper, then for
# MINUTES (default 10) drives mixed traffic (bench/soak_load.py):
#   - pings at a fixed rate (PING_RATE, default 200/s) across the 10,000 heartbeats;
#   - API reads (heartbeat list, one heartbeat, schedule, jobs) at 20/s;
#   - a recompute a minute (POST /api/metrics/recompute);
#   - 20 "flapping" heartbeats pinged fail / success in turn, so flips and alerts
#     to the local receiver never stop.
# The daemon's RSS is sampled every 10 s from /proc. At the end it prints the RSS
# slope over the second half (least squares, MB per 10 minutes; pass: < 1), the
# alerts received, runs the maintenance job and prints the retained tables' rows,
# then the RSS after 30 s idle. Loopback only; needs python3 and curl.
set -euo pipefail
MINUTES=${1:-10}
BIN=$(realpath "${2:-target/release/heartbeat}")
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d /tmp/hb-soak.XXXXXX)
chmod 755 "$DIR"
PORT=$((20000 + RANDOM % 20000))
HOOK_PORT=$((PORT + 1))
# Under `set -e` a failing `kill` (the process already gone) would end the trap
# early and leave the daemon running, hence `|| true`.
cleanup() {
  if [ -n "${LOAD:-}" ]; then kill "$LOAD" 2>/dev/null || true; fi
  if [ -n "${PID:-}" ]; then kill "$PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
cat > "$DIR/hb.toml" <<EOT
no_scheduler = true
demo = true
[monitor]
max_heartbeats_per_project = 1000000
pings_kept = 10
[retention]
flips_keep_per_heartbeat = 5
EOT
"$BIN" serve --config "$DIR/hb.toml" --data-dir "$DIR/data" --bind "127.0.0.1:$PORT" > "$DIR/log" 2>&1 &
PID=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
URL="http://127.0.0.1:$PORT"
PGBIN=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PSQL() {
  PGPASSWORD=$(cat "$DIR/data/pg-password") "$PGBIN/psql" -h 127.0.0.1 \
    -p "$(cat "$DIR/data/postgres.port")" -U heartbeat -d heartbeat -X -Atq "$@"
}
# The 10,000 heartbeats in one statement (through the API it takes minutes).
PSQL -c "INSERT INTO heartbeat.heartbeat (heartbeat_id, project_id, name, token, period_seconds, grace_seconds)
         SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 'soak-' || i,
                'hb_' || substr(md5(i::text), 1, 16), 3600, 600 FROM generate_series(1, 10000) i" \
     -c "VACUUM ANALYZE heartbeat.heartbeat"
PSQL -c "SELECT heartbeat_id || ' ' || token FROM heartbeat.heartbeat WHERE name LIKE 'soak-%'" > "$DIR/heartbeats"
python3 "$HERE/soak_load.py" "$URL" "$HOOK_PORT" "$((MINUTES * 60))" "${PING_RATE:-200}" "$DIR/heartbeats" > "$DIR/load.out" 2>&1 &
LOAD=$!
# Sampling starts with the traffic.
until grep -q '^traffic' "$DIR/load.out" 2>/dev/null; do kill -0 "$LOAD"; sleep 0.2; done
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$PID/status"; }
echo "# t_s rss_mb"
: > "$DIR/rss"
T0=$(date +%s)
while kill -0 "$LOAD" 2>/dev/null; do
  t=$(( $(date +%s) - T0 ))
  r=$(rss_kb)
  echo "$t $r" >> "$DIR/rss"
  awk -v t="$t" -v r="$r" 'BEGIN{printf "%d %.1f\n", t, r / 1024}'
  sleep 10
done
cat "$DIR/load.out"
awk -v half=$((MINUTES * 30)) '$1 >= half { n++; sx += $1; sy += $2 / 1024; sxx += $1 * $1; sxy += $1 * $2 / 1024 }
  END { b = (n * sxy - sx * sy) / (n * sxx - sx * sx);
        printf "RSS slope over the second half: %.2f MB per 10 min (%d samples; pass: < 1)\n", b * 600, n }' "$DIR/rss"
# Ten minutes leave nothing old enough to delete, so every time-stamped row is
# aged past its retention first: what maintenance keeps afterwards is exactly
# what the retention allows (the newest flips per heartbeat; pending alerts).
PSQL -c "UPDATE heartbeat.flip SET at = at - interval '1000 days', detected_at = detected_at - interval '1000 days'" \
     -c "UPDATE heartbeat.alert SET created_at = created_at - interval '1000 days',
                delivered_at = delivered_at - interval '1000 days',
                next_attempt_at = next_attempt_at - interval '1000 days' WHERE state <> 'pending'" \
     -c "UPDATE heartbeat.event SET occurred_at = occurred_at - interval '1000 days'" \
     -c "UPDATE heartbeat.client_segment_snapshot SET snapshot_date = snapshot_date - 1000" \
     -c "UPDATE heartbeat.audit_cut_snapshot SET computed_at = computed_at - interval '1000 days'"
echo "rows before maintenance (aged 1000 days):"
COUNTS="SELECT 'flip ' || (SELECT count(*) FROM heartbeat.flip)
          || ' (most per heartbeat: ' || coalesce((SELECT max(n) FROM (SELECT count(*) n FROM heartbeat.flip GROUP BY heartbeat_id) f), 0) || ')'
     UNION ALL SELECT 'alert (not pending) ' || count(*) FROM heartbeat.alert WHERE state <> 'pending'
     UNION ALL SELECT 'event ' || count(*) FROM heartbeat.event
     UNION ALL SELECT 'client_segment_snapshot ' || count(*) FROM heartbeat.client_segment_snapshot
     UNION ALL SELECT 'audit_cut_snapshot ' || count(*) FROM heartbeat.audit_cut_snapshot"
PSQL -c "$COUNTS" | sed 's/^/  /'
JOB=$(curl -sf -X POST "$URL/api/jobs/maintenance" -H 'content-type: application/json' -d '{}' |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
for _ in $(seq 600); do
  STATE=$(curl -sf "$URL/api/jobs/$JOB" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  case "$STATE" in succeeded|failed|cancelled) break ;; esac
  sleep 0.5
done
echo "maintenance job: $STATE"
curl -sf "$URL/api/jobs/$JOB" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin).get("result")))'
echo "rows after maintenance:"
PSQL -c "$COUNTS" | sed 's/^/  /'
PSQL -At -c "SELECT (SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM heartbeat.flip GROUP BY heartbeat_id) f) <= 5
                AND (SELECT count(*) FROM heartbeat.alert WHERE state <> 'pending') = 0
                AND (SELECT count(*) FROM heartbeat.event) = 0
                AND (SELECT count(*) FROM heartbeat.client_segment_snapshot) = 0
                AND (SELECT count(*) FROM heartbeat.audit_cut_snapshot) = 0" |
  sed 's/^t$/retention check: pass (only what the retention allows is left)/; s/^f$/retention check: FAIL/'
sleep 30
awk -v r="$(rss_kb)" 'BEGIN{printf "idle RSS after 30 s: %.1f MB\n", r / 1024}'
