#!/usr/bin/env bash
# Runs schemathesis (all checks) against the real `webcall serve` binary, to prove that
# /api/openapi.json tells the truth: every schema-valid request is accepted, every invalid one
# refused with a 4xx, and every status, content type and body the server answers is documented.
#
#   pip install -r tests/schemathesis/requirements.txt
#   cargo build -p api --bin webcall && tests/schemathesis/run.sh
#
# WEBCALL_BIN: the binary (default target/debug/webcall, or $CARGO_TARGET_DIR/debug/webcall).
# ST_MAX_EXAMPLES (default 100), ST_SEED (default 1): generated cases per operation, and the seed.
# Extra arguments go to `schemathesis run`. Exits non-zero on any failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${WEBCALL_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/webcall}
[ -x "$bin" ] || { echo "no webcall binary at $bin (cargo build -p api --bin webcall)" >&2; exit 2; }
command -v schemathesis >/dev/null || { echo "schemathesis missing: pip install -r tests/schemathesis/requirements.txt" >&2; exit 2; }

work=$(mktemp -d)
server_pid=
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# A loopback port nothing listens on: outbound calls (Telegram Bot API, AI model, push
# services on 127.0.0.1) fail fast instead of reaching the internet.
dead=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
secret=schemathesis-registration-secret

mkdir -m 700 "$work/data"
# Generous limits: schemathesis sends hundreds of requests from one address and user.
env -i PATH="$PATH" HOME="$work" \
    APP_ENV=dev BIND=127.0.0.1 PORT="$port" DATA_DIR="$work/data" STATIC_DIR="$root/static" \
    REGISTRATION_SECRET="$secret" BCRYPT_COST=4 \
    RATE_LIMIT_REGISTER=100000 RATE_LIMIT_LOGIN=100000 RATE_LIMIT_ROOM_CREATE=100000 \
    RATE_LIMIT_CHAT=100000 RATE_LIMIT_LOGIN_ACCOUNT=100000 \
    TELEGRAM_BOT_TOKEN=1:schemathesis TELEGRAM_BOT_USERNAME=webcall_test_bot \
    TELEGRAM_WEBHOOK_SECRET=schemathesis-webhook-secret \
    TELEGRAM_API_BASE="http://127.0.0.1:$dead" \
    RUST_LOG="${RUST_LOG:-warn}" \
    "$bin" serve 2>"$work/server.log" &
server_pid=$!

for _ in $(seq 1 100); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
done
curl -fsS "$base/healthz" >/dev/null

post() { curl -fsS -X POST -H 'Content-Type: application/json' "$@"; }
# The user schemathesis acts as, a room it owns and a second user to add and message, so
# the member, chat and DM routes get past their 404s with the examples below.
token=$(post "$base/api/v1/auth/register" \
    -d "{\"username\":\"fuzzer\",\"password\":\"a long fuzzing password\",\"registration_secret\":\"$secret\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
post "$base/api/v1/auth/register" \
    -d "{\"username\":\"peer\",\"password\":\"another long password\",\"registration_secret\":\"$secret\"}" >/dev/null
post "$base/api/v1/rooms" -H "Authorization: Bearer $token" -d '{"name":"fuzz room"}' >/dev/null

status=0
(
    cd "$work"
    schemathesis --config-file "$root/tests/schemathesis/schemathesis.toml" \
        run "$base/api/openapi.json" \
        --checks all \
        --header "Authorization: Bearer $token" \
        --max-examples "${ST_MAX_EXAMPLES:-100}" \
        --seed "${ST_SEED:-1}" \
        --generation-database none \
        --workers 2 \
        --request-timeout 30 \
        --exclude-tag realtime \
        --exclude-path /api/v1/auth/logout \
        --no-color \
        "$@"
) || status=$?

if [ "$status" -ne 0 ]; then
    echo "--- server log (last 50 lines) ---" >&2
    tail -n 50 "$work/server.log" >&2
fi
exit "$status"
