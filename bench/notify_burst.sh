#!/usr/bin/env bash
# Alert burst: 10,000 heartbeats go down within one second, each routed to one of
# three channels (local HTTP receivers); p99 from the instant a heartbeat went
# down to its alert's arrival, and the daemon's RSS (docs/benchmarks.md, "Alert
# burst").
#
#   bench/notify_burst.sh [RUNS] [BINARY]
#
# Starts BINARY (default target/release/heartbeat; `cargo build --release`
# first) on its own embedded PostgreSQL in a temporary directory with the
# default [monitor] settings (deadline loop every 500 ms, delivery worker every
# 1000 ms), then runs bench/notify_burst.py: RUNS (default 5) bursts of
# HEARTBEATS (default 10000) heartbeats. Loopback only; needs python3 and curl.
set -euo pipefail
RUNS=${1:-5}
BIN=$(realpath "${2:-target/release/heartbeat}")
HERE=$(cd "$(dirname "$0")" && pwd)
DIR=$(mktemp -d /tmp/hb-burst.XXXXXX)
chmod 755 "$DIR"
PORT=$((20000 + RANDOM % 20000))
cleanup() {
  [ -n "${PID:-}" ] && kill "$PID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$DIR"
}
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
export PGPASSWORD
PGPASSWORD=$(cat "$DIR/data/pg-password")
export PSQL_CMD="$PGBIN/psql -h 127.0.0.1 -p $(cat "$DIR/data/postgres.port") -U heartbeat -d heartbeat -X -Atq"
echo "# $(nproc) cores; $(uname -r); binary $(basename "$BIN")"
awk '/^VmRSS/{printf "# idle RSS before the runs: %.1f MB\n", $2 / 1024}' "/proc/$PID/status"
python3 "$HERE/notify_burst.py" "http://127.0.0.1:$PORT" "$PID" "$RUNS" "${HEARTBEATS:-10000}"
grep -c 'alert delivery will be retried\|alert given up on' "$DIR/log" | sed 's/^/# delivery failures logged: /' || true
