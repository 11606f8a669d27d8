#!/bin/sh
# Runs the parser properties (tests/api/reliability_fuzz.rs) with many more cases
# than the test command does, each bounded in time. Not part of `cargo test`'s
# default budget: run it by hand or nightly.
#   bench/fuzz.sh [cases] [seconds-per-property]
set -eu
cases="${1:-200000}"
limit="${2:-120}"
cd "$(dirname "$0")/.."
cargo test --test api --no-run -q
for prop in \
    the_cron_parser_never_panics_and_what_it_accepts_round_trips \
    the_window_parser_never_panics_and_accepts_only_non_negative_windows \
    the_metric_and_cut_header_parsers_never_panic \
    any_ping_suffix_is_answered_without_a_server_error
do
    n="$cases"
    # Every ping case is an HTTP round trip: keep that one smaller.
    [ "$prop" = any_ping_suffix_is_answered_without_a_server_error ] && n=5000
    start=$(date +%s)
    HEARTBEAT_FUZZ_CASES="$n" timeout "$limit" \
        cargo test -q --test api "reliability_fuzz::$prop" -- --exact --nocapture 2>&1 \
        | grep -E "fuzz seed|test result|panicked" || true
    echo "$prop: $n cases in $(( $(date +%s) - start )) s"
done
