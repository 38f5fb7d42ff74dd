#!/usr/bin/env bash
# Transcription load: N participants speaking at once through the SFU into whisper, swept over
# N and WHISPER_WORKERS, so the owner of a box can size it (issue 15, part 4). Each point is one
# run of the ignored test `transcription_load_of_simultaneous_speakers`
# (api/tests/api/transcription_load.rs) in its own process; the table goes to
# bench/reports/transcription-load.md and the raw results to bench/reports/transcription-load.jsonl.
#
#   scripts/transcription-load.sh                           # N = 1 2 4 6, workers = 1 2,
#                                                           # and N = 4 6 in a large room
#   LARGE_SPEAKERS= scripts/transcription-load.sh           # small rooms only
#   SPEAKERS="1 2" WORKERS="1" scripts/transcription-load.sh --short   # CI-sized: 2 sentences
#   OUT=/tmp/tl scripts/transcription-load.sh               # write the report elsewhere
#
# WEBCALL_TEST_WHISPER_MODEL: the model (default: scripts/make-test-model.sh builds or finds it).
# CARGO_FEATURES: e.g. "api/cuda" for the whisper.cpp CUDA build on a GPU box.
# Run it on a quiet machine: whisper, the server and the clients share the cores.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
speakers=${SPEAKERS:-"1 2 4 6"}
workers=${WORKERS:-"1 2"}
# Rows in a large room (SFU_AUDIO_SLOTS=$slots from the first join): the room hears only its
# loudest $slots speakers, and the transcriber, when behind, keeps what the room heard.
large_speakers=${LARGE_SPEAKERS-"4 6"}
slots=${SLOTS:-3}
sentences=${SENTENCES:-4}
if [ "${1:-}" = "--short" ]; then sentences=2; fi
out=${OUT:-"$root/bench/reports"}
mkdir -p "$out"
model=${WEBCALL_TEST_WHISPER_MODEL:-$(scripts/make-test-model.sh)}
features=()
if [ -n "${CARGO_FEATURES:-}" ]; then features=(--features "$CARGO_FEATURES"); fi

# Build once, then run the test binary per point: no cargo in the timed part. The whole
# workspace, as `cargo test --workspace` builds it: `-p api` alone unifies other features and
# would rebuild half the tree.
cargo test --workspace "${features[@]}" --no-run >&2
test_bin=$(cargo test --workspace "${features[@]}" --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    t = m.get("target", {})
    if m.get("executable") and t.get("name") == "api" and t.get("kind") == ["test"]:
        print(m["executable"])')
[ -x "$test_bin" ] || { echo "could not find the api test binary" >&2; exit 1; }

jsonl="$out/transcription-load.jsonl"
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
: > "$jsonl"
points=()
for w in $workers; do
    for n in $speakers; do points+=("$w $n 0"); done
    for n in $large_speakers; do points+=("$w $n $slots"); done
done
for point in "${points[@]}"; do
    read -r w n k <<< "$point"
    {
        echo "==> $n speakers, WHISPER_WORKERS=$w, audio slots $k"
        log=$(mktemp)
        if ! WEBCALL_TEST_WHISPER_MODEL="$model" LOAD_SPEAKERS="$n" LOAD_SENTENCES="$sentences" \
            LOAD_SLOTS="$k" WHISPER_WORKERS="$w" RUST_LOG=warn \
            "$test_bin" --ignored --exact --nocapture \
            transcription_load::transcription_load_of_simultaneous_speakers >"$log" 2>&1; then
            tail -n 40 "$log" >&2
            rm -f "$log"
            exit 1
        fi
        grep '^RESULT ' "$log" | cut -d' ' -f2- >> "$jsonl"
        grep '^ROW ' "$log" | cut -d' ' -f2- >> "$rows"
        rm -f "$log"
    } >&2
done

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
simd=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx|avx2|avx512f|fma|f16c)$' | tr '\n' ' ' | sed 's/ $//')
# The hand-written reading of the numbers survives a rerun (it should be revised with them).
reading=$(mktemp)
if [ -f "$out/transcription-load.md" ]; then
    sed -n '/^## Reading it/,$p' "$out/transcription-load.md" > "$reading"
fi
{
    echo "# Transcription load: simultaneous speakers vs whisper workers"
    echo
    echo "Written by \`scripts/transcription-load.sh\` on $(date -u +%Y-%m-%d). Machine: $cpu ($simd), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r)${CARGO_FEATURES:+, features \`$CARGO_FEATURES\`}."
    echo "Model: \`$(basename "$model")\`. Each row is one run: N participants publish Opus speech"
    echo "(espeak-ng, $sentences sentences each with 2 s pauses, speaker i starting 0.7 x i s late, so"
    echo "up to N talk at once) into one room over WebRTC, a listener in the same room turns the"
    echo "transcription on and stamps each final caption on arrival. The server, whisper and the"
    echo "clients share this machine's cores (dev build, whisper.cpp at -O3)."
    echo
    echo "- **final after end of speech**: from the end of a sentence to its final caption at the"
    echo "  listener, p50 / p95 / max over the sentences that got one in time."
    echo "- **room**: *small* forwards every speaker to everyone; *large* (\`SFU_AUDIO_SLOTS\`, forced"
    echo "  from the first join) forwards only the loudest few, so some sentences nobody hears."
    echo "- **late or missing, heard / not heard**: sentences with no final before the speaker's next"
    echo "  sentence ended, among those the listener heard (half their frames or more arrived) and"
    echo "  the others."
    echo "- **dropped (heard / not heard)**: utterances the transcriber's bounded queue dropped to"
    echo "  stay live; when behind it drops audio the room did not hear first, then the quietest,"
    echo "  then the oldest (\`transcriber_dropped_utterances_total{heard}\`)."
    echo "- **queue / whisper**: the transcriber's own p50 stage times (\`transcriber_stage_seconds\`)."
    echo "- **CPU**: cores used by the whole process (server + whisper + clients) while it ran."
    echo
    echo "| speakers at once | room | workers x threads | sentences (all speakers) | final after end of speech p50 / p95 / max s | late or missing, heard / not heard | dropped (heard / not heard) | queue / whisper p50 s | WER | CPU cores |"
    echo "|---|---|---|---|---|---|---|---|---|---|"
    cat "$rows"
    echo
    echo "Raw results: \`transcription-load.jsonl\`."
    if [ -s "$reading" ]; then echo; cat "$reading"; fi
} > "$out/transcription-load.md"
rm -f "$reading"
echo "$out/transcription-load.md"
