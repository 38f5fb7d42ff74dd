# Sourced by scripts that run `webcall serve` for a tool (schemathesis, the soak): a private
# work dir removed on exit, free loopback ports, and a server started with a clean
# environment and waited for.
#
#   . scripts/lib/serve.sh
#   port=$(free_port)
#   start_webcall "$bin" PORT="$port" ...      # sets server_pid; logs to $work/server.log
#   stop_webcall                               # optional: the EXIT trap does it too

work=$(mktemp -d)
server_pid=
stop_webcall() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=
    fi
}
trap 'stop_webcall; rm -rf "$work"' EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_webcall BIN VAR=VALUE...: `BIN serve` with only PATH, HOME, a private DATA_DIR and
# the given variables, on 127.0.0.1; returns once /healthz answers (PORT must be given).
start_webcall() {
    local bin=$1 port=
    shift
    for kv in "$@"; do
        case $kv in PORT=*) port=${kv#PORT=} ;; esac
    done
    mkdir -p -m 700 "$work/data"
    env -i PATH="$PATH" HOME="$work" APP_ENV=dev BIND=127.0.0.1 DATA_DIR="$work/data" "$@" \
        "$bin" serve 2>"$work/server.log" &
    server_pid=$!
    for _ in $(seq 1 100); do
        curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; return 1; }
        sleep 0.1
    done
    curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null
}

# pick_binaries: sets $bin (webcall) and $bench (webcall-bench) for the bench scripts:
# WEBCALL_BIN / WEBCALL_BENCH_BIN, else target/release, else target/debug (under $root).
pick_binaries() {
    local target=${CARGO_TARGET_DIR:-$root/target} b
    pick() { if [ -x "$target/release/$1" ]; then echo "$target/release/$1"; else echo "$target/debug/$1"; fi; }
    bin=${WEBCALL_BIN:-$(pick webcall)}
    bench=${WEBCALL_BENCH_BIN:-$(pick webcall-bench)}
    for b in "$bin" "$bench"; do
        [ -x "$b" ] || { echo "missing $b (cargo build -p api --bin webcall -p bench --bin webcall-bench)" >&2; exit 2; }
    done
}
