#!/usr/bin/env bash
# Soak: starts `webcall serve` on a free loopback port with a private data dir and runs
# `webcall-bench soak` against it: 1,000 room sockets and 50 media participants for 10 min,
# with churn and chat (bench/reports/soak.md). Fails when the bench finds something a user
# would notice, when the server doesn't get back to idle, or when the server logged an ERROR.
#
#   cargo build --release -p api --bin webcall -p bench --bin webcall-bench
#   scripts/soak.sh                 # the full run (about 11 minutes)
#   scripts/soak.sh --short         # CI: 200 sockets, 10 media participants, 45 s
#   scripts/soak.sh -- --seconds 60 # extra arguments go to `webcall-bench soak`
#
# WEBCALL_BIN / WEBCALL_BENCH_BIN: the binaries (default: target/release, else target/debug).
# SOAK_JSON: where the bench's JSON result goes (default: stdout only).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib/serve.sh"
pick_binaries

args=()
if [ "${1:-}" = "--short" ]; then
    args=(--sockets 200 --rooms 20 --media 10 --seconds 45 --churn-per-second 4 --media-churn-seconds 5)
    shift
fi
[ "${1:-}" = "--" ] && shift
args+=("$@")

# A thousand sockets and their peers need more descriptors than a login shell's default.
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"

port=$(free_port)
base="http://127.0.0.1:$port"
secret=soak-registration-secret
# Limits meant for strangers on the internet are raised: every soak client comes from one
# address. Per-user WebSocket limits stay as shipped; each soak user behaves like one person.
# RUST_LOG unset: the server's default filter, whose WARN and ERROR lines are counted below.
start_webcall "$bin" \
    PORT="$port" STATIC_DIR="$root/static" \
    REGISTRATION_SECRET="$secret" BCRYPT_COST=4 \
    RATE_LIMIT_REGISTER=1000000 RATE_LIMIT_LOGIN=1000000 RATE_LIMIT_ROOM_CREATE=1000000 \
    RATE_LIMIT_CHAT=1000000 RATE_LIMIT_LOGIN_ACCOUNT=1000000 \
    ${RUST_LOG:+RUST_LOG="$RUST_LOG"}

status=0
REGISTRATION_SECRET="$secret" "$bench" soak --url "$base" --server-pid "$server_pid" --json "${args[@]}" \
    >"$work/result.json" || status=$?
cat "$work/result.json"
if [ -n "${SOAK_JSON:-}" ]; then cp "$work/result.json" "$SOAK_JSON"; fi

# What the server logged at WARN and above, by message.
levels() { grep -c '"level":"'"$1"'"' "$work/server.log" || true; }
warns=$(levels WARN)
errors=$(levels ERROR)
echo "server log: $errors ERROR, $warns WARN lines" >&2
grep -E '"level":"(WARN|ERROR)"' "$work/server.log" | sed -E 's/.*"message":"([^"]*)".*/\1/' |
    sort | uniq -c | sort -rn | head -20 >&2 || true
kill -0 "$server_pid" 2>/dev/null || { echo "the server died during the soak" >&2; status=1; }
[ "$errors" -eq 0 ] || { echo "the server logged ERRORs" >&2; status=1; }
exit "$status"
