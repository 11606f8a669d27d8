#!/usr/bin/env bash
# Benchmark: throughput and p99 of POST /api/metrics/recompute (coalescing onto a
# running job) against GET /healthz on the same server, in the same run.
# Loopback only; every wrk run is bounded by -d.
#
#   bench/recompute_gate.sh [runs] [seconds]
#
# Needs: wrk (apt-get install wrk), PostgreSQL server binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
SECS=${2:-5}
cargo build --release --quiet
work=$(mktemp -d)
chmod 755 "$work"  # the embedded server runs as an unprivileged user when we are root
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/heartbeat.toml" <<TOML
demo = false
[jobs]
probe_body_ms = 3600000
TOML
HEARTBEAT_DATA_DIR="$work/data" HEARTBEAT_CONFIG="$work/heartbeat.toml" HEARTBEAT_NO_SCHEDULER=1 \
  HEARTBEAT_BIND="127.0.0.1:$port" RUST_LOG=warn target/release/heartbeat serve >"$work/serve.log" 2>&1 &
pid=$!
trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 240); do curl -sf "127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.25; done
# The job every POST coalesces onto.
curl -sf -XPOST -H 'content-type: application/json' -d '{"metric_ids":"all"}' "127.0.0.1:$port/api/metrics/recompute" >/dev/null
run() { # $1 = label, rest = wrk args; prints "req/s p99_ms"
  shift
  local out; out=$(wrk -t2 -c64 -d"${SECS}s" --latency "$@")
  local rps p99
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v=v/1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v=v*1000}; print v}')
  echo "$rps $p99"
}
echo "run healthz_rps healthz_p99_ms recompute_rps recompute_p99_ms ratio"
for i in $(seq 1 "$RUNS"); do
  read -r hr hp < <(run healthz "http://127.0.0.1:$port/healthz")
  read -r rr rp < <(run recompute -s bench/post.lua "http://127.0.0.1:$port/api/metrics/recompute")
  ratio=$(python3 -c "print(f'{$rr/$hr:.2f}')")
  echo "$i $hr $hp $rr $rp $ratio"
done
echo "coalesced requests on the one job: $(curl -sf "127.0.0.1:$port/api/metrics/active-job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["coalesced_requests"])')"
