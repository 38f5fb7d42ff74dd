#!/usr/bin/env bash
# Where the SFU's forwarding time goes: `webcall serve` (release) alone on one core under a
# conference load from `webcall-bench load` on the other, sampled by `perf record` for 10 s
# mid-call; prints the functions with the most server CPU (self time) and perf's totals.
#
#   cargo build --release -p api --bin webcall -p bench --bin webcall-bench
#   scripts/profile-forwarding.sh [-- LOAD ARGS]   # default: --rooms 1 --participants 16
#
# Needs `perf` (Debian: linux-perf) and root or kernel.perf_event_paranoid <= 1.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib/serve.sh"
pick_binaries
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || set -- --rooms 1 --participants 16
ulimit -n 16384 2>/dev/null || true

port=$(free_port)
secret=profile-registration-secret
start_webcall "$bin" PORT="$port" STATIC_DIR="$root/static" REGISTRATION_SECRET="$secret" \
    BCRYPT_COST=4 RATE_LIMIT_REGISTER=1000000 RATE_LIMIT_LOGIN=1000000 \
    RATE_LIMIT_ROOM_CREATE=1000000 RATE_LIMIT_LOGIN_ACCOUNT=1000000 SFU_SHARDS=1 \
    SFU_AUDIO_SLOTS="${SFU_AUDIO_SLOTS:-0}"
taskset -a -pc "${SERVER_CPU:-0}" "$server_pid" >/dev/null

REGISTRATION_SECRET="$secret" taskset -c "${CLIENT_CPU:-1}" "$bench" load \
    --url "http://127.0.0.1:$port" --server-pid "$server_pid" --seconds 25 "$@" >"$work/load.txt" &
load_pid=$!
# Joins take a few seconds; sample the steady call in the middle of the window.
sleep 12
perf record -q -F 1999 ${PERF_CALL_GRAPH:+--call-graph "$PERF_CALL_GRAPH"} -p "$server_pid" -o "$work/perf.data" -- sleep 10 2>/dev/null
wait "$load_pid"
cat "$work/load.txt"
echo
perf report -i "$work/perf.data" --stdio --no-children --sort symbol 2>/dev/null |
    grep -v '^#' | grep -v '^$' | head -40
