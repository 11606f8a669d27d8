#!/usr/bin/env bash
# Deploys Heartbeat on this host: installs the binary and the definition files
# (metric and audit-cut SQL), applies migrations, restarts the systemd service,
# waits for /readyz, then refreshes the audit cuts so a newly deployed cut has its
# snapshots before this script returns (it never answers 404 afterwards).
#
#   deploy/deploy.sh [--dry-run]
#
# --dry-run prints each step, prefixed with "+ ", without running anything.
# Run from the repository root (or set HEARTBEAT_SRC) after `cargo build --release`.
# Every path is overridable through the environment:
#
#   HEARTBEAT_SRC              source tree                      (directory of this script's parent)
#   HEARTBEAT_BIN              binary to install                ($HEARTBEAT_SRC/target/release/heartbeat)
#   HEARTBEAT_PREFIX           install prefix                   (/usr/local)
#   HEARTBEAT_DEFINITIONS_DIR  where metrics/ and cuts/ go      ($HEARTBEAT_PREFIX/share/heartbeat/definitions)
#   HEARTBEAT_CONFIG           config file for `migrate`        (/etc/heartbeat/heartbeat.toml)
#   HEARTBEAT_ENV_FILE         environment file (DATABASE_URL)  (/etc/heartbeat/heartbeat.env)
#   HEARTBEAT_SERVICE          systemd unit name                (heartbeat.service)
#   HEARTBEAT_UNIT_DIR         where the unit file goes         (/etc/systemd/system)
#   HEARTBEAT_URL              where the daemon answers         (http://127.0.0.1:8000)
#   HEARTBEAT_READY_TIMEOUT    seconds to wait for /readyz      (60)
#   HEARTBEAT_REFRESH_TIMEOUT  bound on the audit refresh       (10m)
#   HEARTBEAT_USER             service user, created if absent  (heartbeat)
set -euo pipefail

dry_run=false
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry_run=true ;;
        -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "deploy.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

src="${HEARTBEAT_SRC:-$(cd "$(dirname "$0")/.." && pwd)}"
bin_src="${HEARTBEAT_BIN:-$src/target/release/heartbeat}"
prefix="${HEARTBEAT_PREFIX:-/usr/local}"
bin="$prefix/bin/heartbeat"
defs="${HEARTBEAT_DEFINITIONS_DIR:-$prefix/share/heartbeat/definitions}"
config="${HEARTBEAT_CONFIG:-/etc/heartbeat/heartbeat.toml}"
env_file="${HEARTBEAT_ENV_FILE:-/etc/heartbeat/heartbeat.env}"
service="${HEARTBEAT_SERVICE:-heartbeat.service}"
url="${HEARTBEAT_URL:-http://127.0.0.1:8000}"
ready_timeout="${HEARTBEAT_READY_TIMEOUT:-60}"
refresh_timeout="${HEARTBEAT_REFRESH_TIMEOUT:-10m}"
user="${HEARTBEAT_USER:-heartbeat}"
unit_dir="${HEARTBEAT_UNIT_DIR:-/etc/systemd/system}"

# Prints a step; runs it unless this is a dry run.
step() {
    printf '+'
    printf ' %q' "$@"
    printf '\n'
    if ! $dry_run; then
        "$@"
    fi
}

# Loads DATABASE_URL and friends the way the unit does, for `heartbeat migrate`.
load_env() {
    if [ -r "$env_file" ]; then
        set -a
        # shellcheck disable=SC1090
        . "$env_file"
        set +a
    fi
}

wait_ready() {
    local deadline=$((SECONDS + ready_timeout))
    until curl -fsS -o /dev/null "$url/readyz"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "deploy.sh: $url/readyz not ready after ${ready_timeout}s" >&2
            return 1
        fi
        sleep 1
    done
}

if ! $dry_run; then
    [ -x "$bin_src" ] || { echo "deploy.sh: no binary at $bin_src (cargo build --release?)" >&2; exit 1; }
    [ -d "$src/sql/cuts" ] || { echo "deploy.sh: no $src/sql/cuts" >&2; exit 1; }
fi

echo "# 0. service user and configuration directory"
if $dry_run || ! id -u "$user" >/dev/null 2>&1; then
    step useradd --system --home-dir /var/lib/heartbeat --shell /usr/sbin/nologin "$user"
fi
step install -d -m 0750 -g "$user" "$(dirname "$env_file")"

echo "# 1. binary"
step install -m 0755 "$bin_src" "$bin"

echo "# 2. definition files (replaced whole, so a deleted cut file disappears)"
step install -d "$defs"
for kind in metrics cuts; do
    if $dry_run || [ -d "$src/sql/$kind" ]; then
        step rm -rf "$defs/$kind.new"
        step cp -R "$src/sql/$kind" "$defs/$kind.new"
        step rm -rf "$defs/$kind"
        step mv "$defs/$kind.new" "$defs/$kind"
    fi
done

echo "# 3. migrations"
$dry_run || load_env
if ! $dry_run && [ -z "${DATABASE_URL:-}" ]; then
    # The embedded cluster belongs to the service user and is migrated by the
    # daemon as it starts; running it here as root would fight over the directory.
    echo "+ (skipped: no DATABASE_URL in $env_file; the embedded database migrates at start)"
elif $dry_run || [ -r "$config" ]; then
    step "$bin" migrate --config "$config"
else
    step "$bin" migrate
fi

echo "# 4. service"
step install -m 0644 "$src/deploy/heartbeat.service" "$unit_dir/$service"
step systemctl daemon-reload
step systemctl restart "$service"

echo "# 5. wait for readiness"
printf '+ wait for %s/readyz (up to %ss)\n' "$url" "$ready_timeout"
$dry_run || wait_ready

echo "# 6. refresh audit cuts"
step "$bin" refresh audit --trigger deploy --url "$url" --timeout "$refresh_timeout"

echo "# deployed"
