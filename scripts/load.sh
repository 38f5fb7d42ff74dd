#!/usr/bin/env bash
# Load: starts `webcall serve` on a free loopback port with a private data dir and runs
# `webcall-bench load` against it with the server's pid, so the report has server CPU per
# forwarded packet (bench/reports/sfu-load.md, bench/reports/large-room.md).
#
#   cargo build --release -p api --bin webcall -p bench --bin webcall-bench
#   scripts/load.sh -- --rooms 1 --participants 100 --speakers 3 --seconds 30
#   SERVER_CPU=0 CLIENT_CPU=1 scripts/load.sh -- ...   # pin server and clients (taskset)
#
# Server settings pass through: e.g. SFU_AUDIO_SLOTS=0 SFU_SHARDS=1 scripts/load.sh ...
# WEBCALL_BIN / WEBCALL_BENCH_BIN: the binaries (default: target/release, else target/debug).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib/serve.sh"
pick_binaries
[ "${1:-}" = "--" ] && shift
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"

pin() { if [ -n "${1:-}" ]; then echo taskset -c "$1"; fi; }
port=$(free_port)
secret=load-registration-secret
passthrough=()
for var in SFU_SHARDS SFU_AUDIO_SLOTS SFU_AUDIO_SLOTS_ABOVE ROOM_MAX_PARTICIPANTS RUST_LOG; do
    if [ -n "${!var:-}" ]; then passthrough+=("$var=${!var}"); fi
done
# shellcheck disable=SC2046
start_webcall "$bin" \
    PORT="$port" STATIC_DIR="$root/static" REGISTRATION_SECRET="$secret" BCRYPT_COST=4 \
    RATE_LIMIT_REGISTER=1000000 RATE_LIMIT_LOGIN=1000000 RATE_LIMIT_ROOM_CREATE=1000000 \
    RATE_LIMIT_LOGIN_ACCOUNT=1000000 "${passthrough[@]}"
if [ -n "${SERVER_CPU:-}" ]; then taskset -a -pc "$SERVER_CPU" "$server_pid" >/dev/null; fi

status=0
# shellcheck disable=SC2046
REGISTRATION_SECRET="$secret" $(pin "${CLIENT_CPU:-}") "$bench" load --url "http://127.0.0.1:$port" \
    --server-pid "$server_pid" "$@" || status=$?
errors=$(grep -c '"level":"ERROR"' "$work/server.log" || true)
[ "$errors" -eq 0 ] || { echo "the server logged $errors ERROR lines" >&2; status=1; }
exit "$status"
