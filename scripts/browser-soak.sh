#!/usr/bin/env bash
# The long form of the browser soak (tests/browser/soak.test.mjs), on demand and not in CI:
# CALLS calls of PAGES Chromium pages in a row, each held SECONDS (default 10 x 3 x 60 s; CI
# holds only the first call 60 s and the others 6 s). Every 3 s every page must hear every
# other page's tone on its stream with growing energy, and the server must see no peer drop.
# Writes the result to bench/reports/browser-soak.md (REPORT overrides) and exits non-zero
# if the test failed.
#
#   cargo build -p api --bin webcall && scripts/browser-soak.sh
#   CALLS=1 SECONDS_EACH=600 PAGES=4 scripts/browser-soak.sh      # one call of ten minutes
#
# WEBCALL_BIN: the binary (default $CARGO_TARGET_DIR/debug/webcall, else target/debug/webcall).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
calls=${CALLS:-10}
seconds=${SECONDS_EACH:-60}
pages=${PAGES:-3}
report=${REPORT:-$root/bench/reports/browser-soak.md}
export WEBCALL_BIN="${WEBCALL_BIN:-${CARGO_TARGET_DIR:-$root/target}/debug/webcall}"
[ -x "$WEBCALL_BIN" ] || { echo "no webcall binary at $WEBCALL_BIN (cargo build -p api --bin webcall)" >&2; exit 2; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
cd "$root/tests/browser"
[ -d node_modules ] || npm ci --no-audit --no-fund
started=$(date -u +%FT%TZ)
status=0
WEBCALL_SOAK_CALLS=$calls WEBCALL_SOAK_PAGES=$pages WEBCALL_SOAK_SECONDS=$seconds \
  WEBCALL_SOAK_SHORT_SECONDS=$seconds \
  node --test --test-concurrency=1 soak.test.mjs 2>&1 | tee "$log" || status=$?

{
  echo "# Browser soak: $calls calls of $pages Chromium pages, each held $seconds s"
  echo
  echo "\`scripts/browser-soak.sh\` (CALLS=$calls SECONDS_EACH=$seconds PAGES=$pages), started $started on"
  echo "$(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB; Chromium $(/usr/bin/chromium --version 2>/dev/null | awk '{print $2}'), a debug server."
  echo "Every page has its own tone; every 3 s each page must hear every other page's tone on"
  echo "that page's stream, with energy growing since the last sample, and never its own."
  echo
  echo "Result: **$([ "$status" -eq 0 ] && echo passed || echo "FAILED (exit $status)")**"
  echo
  echo '```'
  grep -E '^(call [0-9]+/|not ok|ok |# (pass|fail|duration_ms))' "$log" || true
  grep -E 'AssertionError|heard|hears' "$log" | head -n 20 || true
  echo '```'
} >"$report"
echo "report: $report" >&2
exit "$status"
