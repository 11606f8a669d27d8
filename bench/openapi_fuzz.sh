#!/usr/bin/env bash
# Checks the daemon against its own OpenAPI document (GET /api/openapi.json)
# with schemathesis: every check (server errors, undocumented statuses, bodies
# that break their schema, invalid input the server accepts, valid input it
# refuses, ...) over the examples, coverage, fuzzing and stateful phases.
# The document is what clients are generated from, so a gap between it and the
# server is a bug on one side or the other.
#
# The daemon runs on a throwaway embedded PostgreSQL under a temp data dir,
# with the internal cron table off, inside a private network namespace that has
# only loopback: the fuzzer creates webhooks with URLs of its own choosing, and
# nothing the daemon delivers may leave this machine. Needs root (unshare) and
# the schemathesis CLI (`pip install schemathesis`; the `st` command).
#
#   bench/openapi_fuzz.sh
#
# Environment:
#   FUZZ_MODE=open|keyed   open (no admin key; default) or keyed (a random admin
#                          key, sent as `Authorization: Bearer` on every request)
#   FUZZ_EXAMPLES=N        test cases per operation and phase (default 25)
#   FUZZ_SEED=N            seed, for a repeatable run (default 1)
#   FUZZ_PHASES=list       default examples,coverage,fuzzing,stateful
#   FUZZ_MAX_TIME=S        optional time budget for the whole schemathesis run
#   FUZZ_REPORT_DIR=dir    where the JUnit XML and NDJSON reports go
#                          (default: $CARGO_TARGET_DIR or target, /openapi-fuzz)
#   FUZZ_RELEASE=1         build and run the release binary (default: debug)
#   ST=path                the schemathesis CLI (default: st on PATH)
#   FUZZ_ST_ARGS="..."     extra arguments for `st run` (e.g. --include-path-regex)
# bench/schemathesis.toml (passed with --config-file) lets a few operations
# answer 422 to schema-valid input, for rules that relate two fields or depend
# on the daemon's state; docs/reliability.md lists them.
# No example database is kept (--generation-database none): a run depends
# only on the code and FUZZ_SEED, and leaves nothing in the work tree.
# Exit status: schemathesis's (non-zero when it found a failure), or 2 when the
# daemon did not come up.
set -euo pipefail

cd "$(dirname "$0")/.."
mode="${FUZZ_MODE:-open}"
examples="${FUZZ_EXAMPLES:-25}"
seed="${FUZZ_SEED:-1}"
phases="${FUZZ_PHASES:-examples,coverage,fuzzing,stateful}"
target_dir="${CARGO_TARGET_DIR:-target}"
report_dir="${FUZZ_REPORT_DIR:-$target_dir/openapi-fuzz}"
st="${ST:-st}"

case "$mode" in open | keyed) ;; *)
    echo "FUZZ_MODE must be open or keyed, not $mode" >&2
    exit 2
    ;;
esac
command -v "$st" >/dev/null || {
    echo "schemathesis CLI not found (pip install schemathesis, or set ST=path/to/st)" >&2
    exit 2
}
command -v unshare >/dev/null || {
    echo "unshare (util-linux) is needed to keep the run on loopback" >&2
    exit 2
}

if [ "${FUZZ_RELEASE:-0}" = 1 ]; then
    nice -n 10 cargo build --release --bin heartbeat
    bin="$target_dir/release/heartbeat"
else
    nice -n 10 cargo build --bin heartbeat
    bin="$target_dir/debug/heartbeat"
fi
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
mkdir -p "$report_dir"
report_dir="$(cd "$report_dir" && pwd)"
st="$(command -v "$st")"
st_config="$(pwd)/bench/schemathesis.toml"

# Everything from here on runs in a new network namespace (loopback only), so
# the port is free by construction and nothing can reach another host.
export bin mode examples seed phases report_dir st st_config FUZZ_MAX_TIME="${FUZZ_MAX_TIME:-}" \
    FUZZ_ST_ARGS="${FUZZ_ST_ARGS:-}"
exec unshare --net bash -euo pipefail -c '
ip link set lo up 2>/dev/null || ifconfig lo up
port=18080
data=$(mktemp -d /tmp/heartbeat-fuzz.XXXXXX)
log="$report_dir/daemon-$mode.log"
pid=
stop() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$data"
}
trap stop EXIT

auth=()
key_env=()
if [ "$mode" = keyed ]; then
    key="fuzz-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d " \n")"
    auth=(-H "Authorization: Bearer $key")
    key_env=(HEARTBEAT_ADMIN_KEY="$key")
fi
env -u DATABASE_URL -u HEARTBEAT_ADMIN_KEY -u HEARTBEAT_CONFIG "${key_env[@]}" \
    HEARTBEAT_DATA_DIR="$data" RUST_LOG="${RUST_LOG:-warn}" \
    "$bin" serve --bind "127.0.0.1:$port" --no-scheduler >"$log" 2>&1 &
pid=$!
base="http://127.0.0.1:$port"
for _ in $(seq 1 600); do
    if curl -fsS "$base/readyz" >/dev/null 2>&1; then break; fi
    kill -0 "$pid" 2>/dev/null || { echo "daemon exited; log: $log" >&2; tail -n 30 "$log" >&2; exit 2; }
    sleep 0.2
done
curl -fsS "$base/readyz" >/dev/null || { echo "daemon not ready after 120 s; log: $log" >&2; exit 2; }

extra=()
[ -n "$FUZZ_MAX_TIME" ] && extra+=(--max-time "$FUZZ_MAX_TIME")
# shellcheck disable=SC2206
[ -n "$FUZZ_ST_ARGS" ] && extra+=($FUZZ_ST_ARGS)
set +e
# schemathesis keeps a crash cache (for `st replay`) in its working directory:
# the report directory, not the work tree.
cd "$report_dir"
"$st" --config-file "$st_config" run "$base/api/openapi.json" \
    --url "$base" \
    "${auth[@]}" \
    --checks all \
    --phases "$phases" \
    --max-examples "$examples" \
    --seed "$seed" \
    --workers 1 \
    --generation-database none \
    --request-timeout 10 \
    --no-color \
    --report junit,ndjson \
    --report-junit-path "$report_dir/junit-$mode.xml" \
    --report-ndjson-path "$report_dir/events-$mode.ndjson" \
    "${extra[@]}"
status=$?
set -e
echo "reports: $report_dir/junit-$mode.xml, $report_dir/events-$mode.ndjson; daemon log: $log"
exit "$status"
'
