#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ (docs/fuzzing.md) for a bounded time and fails if any
# of them crashes (panic, sanitizer error, timeout or out-of-memory). CI runs it short
# (`scripts/fuzz.sh 20`); run it longer by hand.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 30 s, every target
#   scripts/fuzz.sh --build-only                          toolchain, cargo-fuzz and the build
#
# (CI starts `--build-only` in the background, at the lowest CPU priority, while its test
# stages mostly wait on real time, then fuzzes on the finished build: a cold run saves the
# ~10 minutes this build takes from scratch.)
#
# Each target starts from $WEBCALL_FUZZ_CORPUS/<target> (default fuzz/corpus; kept between
# runs, ignored by git; CI keeps it in ~/.cache/webcall) and the committed seeds in
# fuzz/seeds/<target>; new interesting inputs go to the corpus. The build goes to
# $WEBCALL_FUZZ_TARGET_DIR (default fuzz/target). A crashing
# input is written to fuzz/artifacts/<target>/, and libFuzzer's output to
# fuzz/artifacts/logs/<target>.log. Prints the executions per target.
#
# Needs a nightly toolchain (installed with rustup if missing) and installs cargo-fuzz with
# `cargo install --locked` if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

build_only=0
if [ "${1:-}" = "--build-only" ]; then
  build_only=1
  shift
fi
seconds="${1:-30}"
shift || true
case "$seconds" in
  '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;;
esac

export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked --version '^0.13'
fi

cd fuzz
corpus="${WEBCALL_FUZZ_CORPUS:-corpus}"
target_dir=(--target-dir "${WEBCALL_FUZZ_TARGET_DIR:-target}")
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# One build for all targets, so the time each target gets is all fuzzing.
build_start=$SECONDS
if [ ${#targets[@]} -eq 1 ]; then
  cargo +nightly fuzz build "${target_dir[@]}" "${targets[0]}"
else
  cargo +nightly fuzz build "${target_dir[@]}"
fi
echo "built the fuzz targets in $(( SECONDS - build_start )) s"
[ "$build_only" -eq 1 ] && exit 0

mkdir -p artifacts/logs
failed=()
summary=()
for target in "${targets[@]}"; do
  mkdir -p "$corpus/$target"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  log="artifacts/logs/$target.log"
  echo "==> $target: ${seconds} s"
  status=0
  cargo +nightly fuzz run "${target_dir[@]}" "$target" "$corpus/$target" "${seeds[@]}" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
  summary+=("$(printf '%-18s %12s executions in %s s' "$target" "${runs:-?}" "$seconds")")
  if [ "$status" -ne 0 ]; then
    failed+=("$target")
    echo "--- $target failed (exit $status); the end of $log:" >&2
    tail -n 40 "$log" >&2
  fi
done

echo
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "crashed: ${failed[*]} (inputs in fuzz/artifacts/<target>/; docs/fuzzing.md)" >&2
  exit 1
fi
