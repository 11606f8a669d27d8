#!/bin/sh
# Runs the parser property tests (tests/api/reliability_fuzz.rs, proptest) with
# many more cases than the test command does (proptest's default, 256), each
# property bounded in time. Not part of `cargo test`'s default budget: run it by
# hand or nightly. A failure is shrunk, printed, and saved under
# tests/proptest-regressions/ so the next run replays it first.
#   bench/fuzz.sh [cases] [seconds-per-property]
set -eu
cases="${1:-100000}"
limit="${2:-120}"
cd "$(dirname "$0")/.."
# Build once and run the test binary itself, so no rebuild lands inside a
# property's time limit.
bin=$(nice -n 19 cargo test --test api --no-run 2>&1 \
    | sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "could not find the test binary" >&2; exit 2; }
props=$("$bin" --list reliability_fuzz:: 2>/dev/null \
    | sed -n 's/^\(reliability_fuzz::[a-z0-9_]*\): test$/\1/p')
status=0
for prop in $props; do
    start=$(date +%s)
    if out=$(PROPTEST_CASES="$cases" timeout "$limit" \
        nice -n 19 "$bin" "$prop" --exact --test-threads 1 2>&1); then
        result=pass
    elif [ $? -eq 124 ]; then
        result="stopped at the ${limit} s limit"
    else
        result=FAIL
        status=1
        printf '%s\n' "$out" | grep -E "minimal failing input|panicked" || true
    fi
    echo "${prop#reliability_fuzz::}: $cases cases, $(( $(date +%s) - start )) s, $result"
done
exit "$status"
