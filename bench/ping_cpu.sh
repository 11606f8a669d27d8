#!/usr/bin/env bash
# CPU per ping, by process: where a ping's cost goes (docs/benchmarks.md,
# "Dead man's switch", CPU per ping).
#
#   bench/ping_cpu.sh [BINARY] [RUNS] [SECONDS]
#
# Starts BINARY (default target/release/heartbeat; build it first with
# `cargo build --release`) on its own embedded PostgreSQL in a temporary
# directory, with 10,000 heartbeats keeping 10 pings each, then alternates
# `wrk -t2 -c64` runs on /healthz and on /hb/{token} (random tokens, the Lua
# script of bench/monitor.rs). For each run it prints requests/s and the CPU
# time (user + system, from /proc) per request of the PostgreSQL server
# processes, of the daemon and of wrk, plus pings per commit. Loopback only.
#
# NO_FLUSH_WAIT=1 is a diagnostic: the cluster's commits stop waiting for the
# WAL flush (synchronous_commit = off, not durable), which shows what the ping
# path reaches when only CPU and the pipeline bound it.
set -euo pipefail
BIN=${1:-target/release/heartbeat}
RUNS=${2:-3}
SECS=${3:-8}
BIN=$(realpath "$BIN")
DIR=$(mktemp -d /tmp/hb-ping-cpu.XXXXXX)
chmod 755 "$DIR"
PORT=$((20000 + RANDOM % 20000))
cleanup() { if [ -n "${PID:-}" ]; then kill "$PID" 2>/dev/null || true; fi; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
cat > "$DIR/hb.toml" <<EOT
no_scheduler = true
demo = false
[monitor]
max_heartbeats_per_project = 1000000
pings_kept = 10
EOT
"$BIN" serve --config "$DIR/hb.toml" --data-dir "$DIR/data" --bind "127.0.0.1:$PORT" > "$DIR/log" 2>&1 &
PID=$!
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.2; done
PGBIN=$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PSQL() {
  PGPASSWORD=$(cat "$DIR/data/pg-password") "$PGBIN/psql" -h 127.0.0.1 \
    -p "$(cat "$DIR/data/postgres.port")" -U heartbeat -d heartbeat -X -Atq "$@"
}
PSQL -c "INSERT INTO heartbeat.heartbeat (heartbeat_id, project_id, name, token, period_seconds, grace_seconds)
         SELECT gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 'cpu-' || i,
                'hb_' || substr(md5(i::text), 1, 16), 3600, 600 FROM generate_series(1, 10000) i" \
     -c "VACUUM ANALYZE heartbeat.heartbeat"
{
  printf 'local tokens = {'
  PSQL -c "SELECT string_agg('\"' || token || '\"', ',') FROM heartbeat.heartbeat WHERE name LIKE 'cpu-%'"
  printf '}\nlocal requests = {}\nfor i, t in ipairs(tokens) do requests[i] = wrk.format("GET", "/hb/" .. t) end\n'
  printf 'local n = #requests\nmath.randomseed(os.time())\nrequest = function()\n  return requests[math.random(n)]\nend\n'
} > "$DIR/ping.lua"
if [ -n "${NO_FLUSH_WAIT:-}" ]; then
  PSQL -c "ALTER SYSTEM SET synchronous_commit = off" -c "SELECT pg_reload_conf()" >/dev/null
  echo "diagnostic: synchronous_commit = off (commits do not wait for the WAL flush; not durable)"
fi
# Fill every ring once, so the runs measure the steady state (each ping overwrites).
wrk -t2 -c64 -d10s -s "$DIR/ping.lua" "http://127.0.0.1:$PORT/" >/dev/null
PM=$(head -1 "$(find "$DIR/data" -name postmaster.pid | head -1)")
ticks() { # user + system clock ticks of the given processes
  local t=0 p s
  for p in "$@"; do
    s=$(cut -d' ' -f14,15 "/proc/$p/stat" 2>/dev/null) || continue
    t=$((t + ${s% *} + ${s#* }))
  done
  echo "$t"
}
pg_ticks() { ticks "$PM" $(pgrep -P "$PM"); } # the server: postmaster, backends, WAL writer...
commits() { PSQL -c "SELECT xact_commit FROM pg_stat_database WHERE datname = 'heartbeat'"; }
run() { # run NAME WRK-ARGS...
  local name=$1; shift
  local pg0 d0 c0 out n rps pg1 d1 c1
  pg0=$(pg_ticks); d0=$(ticks "$PID"); c0=$(commits)
  out=$( { /usr/bin/time -f 'WRKCPU %U %S' wrk -t2 -c64 -d"${SECS}s" "$@"; } 2>&1 )
  pg1=$(pg_ticks); d1=$(ticks "$PID"); c1=$(commits)
  n=$(awk '/requests in/{print $1}' <<<"$out")
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  if grep -q Non-2xx <<<"$out"; then echo "$name: non-2xx answers, run discarded"; return; fi
  awk -v name="$name" -v rps="$rps" -v n="$n" -v pg=$((pg1 - pg0)) -v d=$((d1 - d0)) \
      -v c=$((c1 - c0)) -v w="$(awk '/WRKCPU/{print $2 + $3}' <<<"$out")" 'BEGIN {
    printf "%-8s %8.0f req/s   CPU us per request: postgres %5.1f  daemon %5.1f  wrk %5.1f   requests per commit %s\n",
      name, rps, pg * 1e4 / n, d * 1e4 / n, w * 1e6 / n, (name == "ping" ? sprintf("%.1f", n / c) : "-") }'
}
for r in $(seq "$RUNS"); do
  run healthz "http://127.0.0.1:$PORT/healthz"
  run ping -s "$DIR/ping.lua" "http://127.0.0.1:$PORT/"
done
