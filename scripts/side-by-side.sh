#!/usr/bin/env bash
# Side by side: the same call scenarios against WebCall and against Janus 1.1.2's VideoRoom
# (Debian's `janus`), in one run, on one machine, with the same WebRTC clients, the server on
# one core and the clients on another. Writes bench/reports/side-by-side.{jsonl,md,svg}.
#
#   cargo build --release -p api --bin webcall -p bench --bin webcall-bench
#   scripts/side-by-side.sh            # the report (~15 min)
#   scripts/side-by-side.sh --short    # a 1 x 4 call (+1 coming and going) on each for 5 s (CI)
#   ONLY=webinar scripts/side-by-side.sh   # rerun some scenarios, keeping the other results
#
# Janus skips loopback interfaces when it gathers ICE candidates, so everything runs in a
# private network namespace (root; `unshare -n`) where 127.0.0.1 also sits on an `ifb`
# device: nothing leaves it. SERVER_CPU / CLIENT_CPU choose the cores (default 0 and 1).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${SIDE_BY_SIDE_NETNS:-}" ]; then
    exec unshare -n env SIDE_BY_SIDE_NETNS=1 "$0" "$@"
fi
ip link set lo up
ip link add sbs0 type ifb
ip link set sbs0 up
ip addr add 127.0.0.1/32 dev sbs0

. "$root/scripts/lib/serve.sh"
. "$root/scripts/lib/janus.sh"
pick_binaries
command -v janus >/dev/null || { echo "janus is missing (apt-get install janus)" >&2; exit 2; }
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"

short=false
[ "${1:-}" = "--short" ] && short=true
server_cpu=${SERVER_CPU:-0}
client_cpu=${CLIENT_CPU:-1}
if $short; then out=$work/report; else out=$root/bench/reports; fi
mkdir -p "$out"
runs=$out/side-by-side.jsonl
# ONLY=PATTERN reruns just the scenarios whose name contains it, adding to the last results.
only=${ONLY:-}
[ -n "$only" ] || : > "$runs"
secret=side-by-side-secret

janus_pid=
stop_janus() {
    if [ -n "$janus_pid" ]; then
        kill "$janus_pid" 2>/dev/null || true
        wait "$janus_pid" 2>/dev/null || true
        janus_pid=
    fi
}
trap 'stop_webcall; stop_janus; rm -rf "$work"' EXIT

# run_webcall LABEL "SERVER VARS" LOAD ARGS...: a fresh server per run, pinned alone.
run_webcall() {
    local label=$1 vars=$2
    shift 2
    local port
    port=$(free_port)
    # shellcheck disable=SC2086
    start_webcall "$bin" PORT="$port" STATIC_DIR="$root/static" REGISTRATION_SECRET="$secret" \
        BCRYPT_COST=4 RATE_LIMIT_REGISTER=1000000 RATE_LIMIT_LOGIN=1000000 \
        RATE_LIMIT_ROOM_CREATE=1000000 RATE_LIMIT_LOGIN_ACCOUNT=1000000 SFU_SHARDS=1 $vars
    taskset -a -pc "$server_cpu" "$server_pid" >/dev/null
    echo "webcall  $label" >&2
    REGISTRATION_SECRET="$secret" taskset -c "$client_cpu" "$bench" load --json \
        --url "http://127.0.0.1:$port" --server-pid "$server_pid" --label "$label" "$@" >> "$runs"
    stop_webcall
}

# run_janus LABEL JANUS-LOAD ARGS...: a fresh Janus per run, pinned alone.
run_janus() {
    local label=$1
    shift
    janus_config "$work/janus"
    taskset -c "$server_cpu" janus -C "$work/janus/janus.jcfg" -F "$work/janus" -o \
        -L "$work/janus.log" >/dev/null 2>&1 &
    janus_pid=$!
    for _ in $(seq 1 100); do
        curl -fsS http://127.0.0.1:8088/janus/info >/dev/null 2>&1 && break
        kill -0 "$janus_pid" 2>/dev/null || { cat "$work/janus.log" >&2; return 1; }
        sleep 0.1
    done
    echo "janus    $label" >&2
    taskset -c "$client_cpu" "$bench" janus-load --json --url http://127.0.0.1:8088/janus \
        --server-pid "$janus_pid" --label "$label" "$@" >> "$runs"
    stop_janus
}

# both LABEL "WEBCALL SERVER VARS" ARGS...: the scenario on each SFU, back to back.
both() {
    local label=$1 vars=$2
    shift 2
    [[ -z "$only" || "$label" == *"$only"* ]] || return 0
    run_webcall "$label" "$vars" "$@"
    run_janus "$label" "$@"
}

if $short; then
    both "short 1x4" "" --rooms 1 --participants 4 --seconds 5 --churners 1 --churn-stay-ms 1000
    "$bench" side-by-side-report --runs "$runs" --out "$out"
    # Both SFUs carried the call: every stream flowed in every 5 s slice.
    python3 - "$runs" <<'PY'
import json, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
assert [r["sfu"] for r in runs] == ["webcall", "janus"], runs
for r in runs:
    if r["packets_received"] == 0 or r["stalled_streams"] or r["subscriber_streams"] < 12:
        sys.exit(f"{r['sfu']} did not carry the 1 x 4 call: {r}")
    churn = r["churn"]
    if churn["joins"] < 1 or churn["failed_joins"]:
        sys.exit(f"{r['sfu']}: the participant coming and going did not get in every time: {churn}")
PY
    exit 0
fi

# (a) Conference: everyone talks and hears everyone. WebCall forwards every stream here
# (SFU_AUDIO_SLOTS=0), exactly what Janus does: the same work, so CPU compares.
# Raised until either SFU loses packets: the capacity knee.
for p in 4 8 12 16 20 24 28 32 36 40; do
    both "conference 1x$p" "SFU_AUDIO_SLOTS=0" --rooms 1 --participants "$p" --seconds 20
done
both "conference 4x6" "SFU_AUDIO_SLOTS=0" --rooms 4 --participants 6 --seconds 20
# (d) Large room: 3 talk, the rest keep an open, silent microphone. WebCall as shipped
# (loudest 3 forwarded above 12 participants) against Janus forwarding every stream.
for p in 20 40; do
    both "large room 1x$p, 3 talk" "" --rooms 1 --participants "$p" --speakers 3 --seconds 20
done
# (b) Webinar: 2 presenters, everyone else listening with the microphone muted.
both "webinar 1x40, 2 talk, 38 muted" "" --rooms 1 --participants 40 --speakers 2 \
    --muted-listeners --seconds 20
# (c) Churn: 8 in the call (2 talk), 8 more joining and leaving every 2 s, for 30 s; then the
# leak check once everyone has left.
both "churn 1x8 + 8 coming and going" "" --rooms 1 --participants 8 --speakers 2 \
    --churners 8 --churn-stay-ms 2000 --seconds 30
"$bench" side-by-side-report --runs "$runs" --out "$out"
