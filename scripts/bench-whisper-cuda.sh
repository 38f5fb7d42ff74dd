#!/usr/bin/env bash
# Benchmarks whisper.cpp's CPU and CUDA backends the way WebCall uses them (the `cuda` feature
# of transcriber/ is `whisper-rs/cuda`, i.e. whisper.cpp 1.8.3 built with GGML_CUDA=ON).
# Results and method: bench/reports/whisper-cuda.md.
#
# It builds whisper.cpp twice with CMake + ninja (CPU only, and CUDA for sm_90), then runs
#   * whisper-cli (greedy: -bs 1 -bo 1, -l en), 3 separate processes per clip: wall time and
#     whisper's own timing lines (encode/decode ms);
#   * whisper-rt, a small harness written out below, with the parameters of
#     transcriber/src/worker.rs (greedy best_of 1, no_context, single_segment, no_timestamps,
#     temperature_inc 0, audio_ctx = audio_ctx_for(), flash attention off): warm per-utterance
#     latency, and N concurrent workers (one whisper_state each, like transcriber's Pool);
#   * whisper-bench -w 0 (encoder + decoder micro-benchmark at the full 30 s window).
# CUDA goes first, so a run cut short still has the GPU numbers.
#
# Needs, in $CARRY (default .benchcarry/ at the repository root, ignored through
# .git/info/exclude so it travels only when `carry` names it):
#   whisper.cpp.tar.xz   the whisper.cpp tree that whisper-rs-sys 0.15 vendors (1.8.3:
#                        CMakeLists.txt cmake/ ggml/ include/ src/ bindings/javascript/
#                        package-tmpl.json) plus examples/ from the v1.8.3 tag (common*,
#                        grammar-parser*, json.hpp, miniaudio.h, stb_vorbis.c, cli/, bench/,
#                        quantize/, CMakeLists.txt trimmed to those three); unpacked at top level
#                        as whisper.cpp/
#   model.bin            a ggml whisper model (the report used base quantized to q5_0 with
#                        whisper-quantize, to fit the 64 MiB a device call may carry)
#   audio/long.wav audio/short.wav (+ .txt with the spoken text)   16 kHz mono
# Tools: cmake, ninja, a C++ compiler; nvcc for the CUDA build (skipped, with a note, without).
#
# Preparing the carry folder (here, before the device call; about 57 MB):
#   echo /.benchcarry/ >> .git/info/exclude
#   build whisper-quantize from the same tree (cmake -DGGML_NATIVE=OFF, ninja whisper-quantize),
#   whisper-quantize "$(scripts/make-test-model.sh)" .benchcarry/model.bin q5_0
#   espeak-ng -v en-us -s 160 -f long.txt -w x.wav && sox x.wav -r 16000 -c 1 -b 16 long.wav
#   tar -cJf .benchcarry/whisper.cpp.tar.xz whisper.cpp        (the tree described above)
# On the H100 the whole script took 378 s (CUDA build 246 s of it); empty .benchcarry after.
#
# Through the device tool (one call; it tees everything to $OUT/log.txt and $OUT/summary.txt):
#   run(command="bash scripts/bench-whisper-cuda.sh", carry=[".benchcarry"], timeout_s=600)
# Locally (CPU only, quick dry run):
#   BUILDS=cpu JOBS=2 CPU_THREADS="2" CLIPS=short REPS=1 CPU_CONC=1 bash scripts/bench-whisper-cuda.sh
#
# Knobs (environment): BUILDS (cuda,cpu), JOBS (nproc), CPU_THREADS ("4 16"), CLIPS
# ("long short"), REPS (3), CONC ("4 8 16": concurrent GPU workers), CPU_CONC (4: concurrent
# CPU workers of 4 threads each), BUDGET_S (520: later
# sections are skipped once the script has run this long), WORK (/tmp/wbench: builds are kept
# there, so a rerun on the same warm machine does not rebuild), CUDA_ARCH (90).
set -uo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CARRY="${CARRY:-$ROOT/.benchcarry}"
OUT="${OUT:-/tmp/bench-whisper-out}"
WORK="${WORK:-/tmp/wbench}"
JOBS="${JOBS:-$(nproc)}"
BUILDS="${BUILDS:-cuda,cpu}"
CPU_THREADS="${CPU_THREADS:-4 16}"
CLIPS="${CLIPS:-long short}"
REPS="${REPS:-3}"
CONC="${CONC:-4 8 16}"
CPU_CONC="${CPU_CONC:-4}"
BUDGET_S="${BUDGET_S:-520}"
CUDA_ARCH="${CUDA_ARCH:-90}"
MODEL="$CARRY/model.bin"
START=$SECONDS
mkdir -p "$OUT" "$WORK"

left() { (( SECONDS - START < BUDGET_S )) || { echo "SKIP (time budget $BUDGET_S s spent): $*"; return 1; }; }
sec() { echo; echo "======== $* (t+$((SECONDS - START))s)"; }

write_rt() {
  mkdir -p "$1/examples/rt"
  cat > "$1/examples/rt/CMakeLists.txt" <<'EOF'
add_executable(whisper-rt whisper-rt.cpp)
include(DefaultTargetOptions)
target_link_libraries(whisper-rt PRIVATE common whisper ${CMAKE_THREAD_LIBS_INIT})
EOF
  cat > "$1/examples/rt/whisper-rt.cpp" <<'EOF'
// whisper-rt: WebCall-style utterance benchmark. Loads the model once, then transcribes one
// WAV with the parameters of transcriber/src/worker.rs (greedy best_of 1, no_context,
// single_segment, no_timestamps, temperature_inc 0, audio_ctx from audio_ctx_for, flash
// attention off unless -fa). Prints per-run wall ms, whisper's timings for the last run, the
// text, then N concurrent workers (own whisper_state each, like transcriber's Pool) doing
// `reps` runs each, and the aggregate audio-seconds per wall-second.
#include "whisper.h"
#include "common-whisper.h"
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

static double now_ms() {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static int audio_ctx_for(size_t samples) {  // transcriber/src/worker.rs
    size_t needed = (samples + 319) / 320 + 64;
    size_t rounded = (needed + 63) / 64 * 64;
    return (int) std::clamp<size_t>(rounded, 384, 1500);
}

int main(int argc, char ** argv) {
    std::string model, wav, lang = "en";
    int threads = 4, reps = 3, conc = 0, use_gpu = 1, fa = 0, full_ctx = 0;
    for (int i = 1; i < argc; i++) {
        std::string a = argv[i];
        auto next = [&]() { return std::string(i + 1 < argc ? argv[++i] : ""); };
        if (a == "-m") model = next();
        else if (a == "-f") wav = next();
        else if (a == "-l") lang = next();
        else if (a == "-t") threads = std::stoi(next());
        else if (a == "-r") reps = std::stoi(next());
        else if (a == "-c") conc = std::stoi(next());
        else if (a == "-ng") use_gpu = 0;
        else if (a == "-fa") fa = 1;
        else if (a == "-full") full_ctx = 1;
        else { fprintf(stderr, "unknown arg %s\n", a.c_str()); return 2; }
    }
    if (reps < 1) reps = 1;
    std::vector<float> pcm; std::vector<std::vector<float>> st;
    if (!read_audio_data(wav, pcm, st, false)) { fprintf(stderr, "cannot read %s\n", wav.c_str()); return 1; }
    const double audio_s = pcm.size() / 16000.0;
    const int actx = full_ctx ? 0 : audio_ctx_for(pcm.size());

    whisper_context_params cp = whisper_context_default_params();
    cp.use_gpu = use_gpu; cp.flash_attn = fa;
    double t0 = now_ms();
    whisper_context * ctx = whisper_init_from_file_with_params(model.c_str(), cp);
    if (!ctx) { fprintf(stderr, "cannot load %s\n", model.c_str()); return 1; }
    const double load_ms = now_ms() - t0;

    auto params = [&]() {
        whisper_full_params p = whisper_full_default_params(WHISPER_SAMPLING_GREEDY);
        p.greedy.best_of = 1;
        p.language = lang.c_str();
        p.n_threads = threads;
        p.no_context = true; p.single_segment = true; p.no_timestamps = true;
        p.print_progress = false; p.print_realtime = false; p.print_special = false; p.print_timestamps = false;
        p.suppress_blank = true; p.temperature_inc = 0.0f; p.audio_ctx = actx;
        return p;
    };
    auto text_of = [](whisper_context * c, whisper_state * s) {
        std::string t;
        int n = s ? whisper_full_n_segments_from_state(s) : whisper_full_n_segments(c);
        for (int i = 0; i < n; i++) t += s ? whisper_full_get_segment_text_from_state(s, i) : whisper_full_get_segment_text(c, i);
        return t;
    };

    printf("RT config wav=%s audio_s=%.2f lang=%s threads=%d gpu=%d fa=%d audio_ctx=%d load_ms=%.0f\n",
           wav.c_str(), audio_s, lang.c_str(), threads, use_gpu, fa, actx, load_ms);
    std::vector<double> ms;
    for (int r = 0; r <= reps; r++) {  // run 0 is the warm-up
        whisper_reset_timings(ctx);
        auto p = params();
        double a = now_ms();
        if (whisper_full(ctx, p, pcm.data(), (int) pcm.size()) != 0) { fprintf(stderr, "whisper_full failed\n"); return 1; }
        double d = now_ms() - a;
        printf("RT run %d%s ms=%.1f rtf=%.4f\n", r, r == 0 ? " (warm-up)" : "", d, d / 1000.0 / audio_s);
        if (r > 0) ms.push_back(d);
    }
    fflush(stdout);
    whisper_print_timings(ctx);  // the last run only (timings were reset before it)
    fflush(stderr);
    std::sort(ms.begin(), ms.end());
    double med = ms[ms.size() / 2];
    printf("RT median wav=%s threads=%d gpu=%d fa=%d lang=%s ms=%.1f rtf=%.4f min_ms=%.1f max_ms=%.1f\n",
           wav.c_str(), threads, use_gpu, fa, lang.c_str(), med, med / 1000.0 / audio_s, ms.front(), ms.back());
    printf("RT text:%s\n", text_of(ctx, nullptr).c_str());
    fflush(stdout);

    if (conc > 0) {
        std::vector<whisper_state *> states(conc);
        for (auto & s : states) { s = whisper_init_state(ctx); if (!s) { fprintf(stderr, "init_state failed\n"); return 1; } }
        for (auto * s : states) { auto p = params(); whisper_full_with_state(ctx, s, p, pcm.data(), (int) pcm.size()); }  // warm each
        std::vector<std::thread> th; std::vector<double> worst(conc, 0); std::atomic<int> fails{0};
        double a = now_ms();
        for (int w = 0; w < conc; w++) th.emplace_back([&, w]() {
            for (int r = 0; r < reps; r++) {
                auto p = params();
                double b = now_ms();
                if (whisper_full_with_state(ctx, states[w], p, pcm.data(), (int) pcm.size()) != 0) fails++;
                worst[w] = std::max(worst[w], now_ms() - b);
            }
        });
        for (auto & t : th) t.join();
        double wall = now_ms() - a;
        double wmax = *std::max_element(worst.begin(), worst.end());
        printf("RT concurrent wav=%s workers=%d threads=%d gpu=%d runs=%d wall_ms=%.0f audio_s_per_wall_s=%.1f worst_latency_ms=%.0f fails=%d text0:%s\n",
               wav.c_str(), conc, threads, use_gpu, conc * reps, wall, conc * reps * audio_s / (wall / 1000.0), wmax, fails.load(),
               text_of(ctx, states[0]).c_str());
        for (auto * s : states) whisper_free_state(s);
    }
    whisper_free(ctx);
    return 0;
}
EOF
  grep -q 'add_subdirectory(rt)' "$1/examples/CMakeLists.txt" || echo 'add_subdirectory(rt)' >> "$1/examples/CMakeLists.txt"
}

# build NAME CMAKE_FLAGS...: configures once, then (re)builds the three programs, timed.
build() {
  local name=$1; shift
  local dir="$WORK/build-$name"
  sec "build $name: $*"
  if [[ ! -f "$dir/build.ninja" ]]; then
    cmake -G Ninja -S "$WORK/src/whisper.cpp" -B "$dir" -DCMAKE_BUILD_TYPE=Release \
      -DBUILD_SHARED_LIBS=OFF -DWHISPER_BUILD_TESTS=OFF -DWHISPER_BUILD_EXAMPLES=ON \
      -DWHISPER_SDL2=OFF -DWHISPER_FFMPEG=OFF "$@" > "$dir.configure.log" 2>&1 \
      || { tail -40 "$dir.configure.log"; echo "BUILD $name FAILED (configure)"; return 1; }
    grep -E 'CUDA|native|Including' "$dir.configure.log" | head -20
  fi
  local t0=$SECONDS
  if ninja -C "$dir" -j "$JOBS" whisper-cli whisper-bench whisper-rt > "$dir.ninja.log" 2>&1; then
    echo "BUILD $name seconds=$((SECONDS - t0)) jobs=$JOBS (0-ish = already built on this machine)"
  else
    tail -40 "$dir.ninja.log"; echo "BUILD $name FAILED"; return 1
  fi
}

# cli NAME THREADS CLIP: whisper-cli greedy, REPS separate processes.
cli() {
  local name=$1 t=$2 clip=$3 i
  for ((i = 1; i <= REPS; i++)); do
    left "cli $name t$t $clip" || return 0
    echo "--- CLI $name t=$t clip=$clip rep=$i"
    local a=$(date +%s.%N)
    "$WORK/build-$name/bin/whisper-cli" -m "$MODEL" -f "$CARRY/audio/$clip.wav" -t "$t" -l en -bs 1 -bo 1 -nt 2>&1 \
      | grep -E 'whisper_print_timings|^ *[A-Za-z\[]|error|CUDA|flash' | grep -vE '^(system_info|main:|whisper_model_load|whisper_init|whisper_backend|whisper_context|ggml_)' 
    local b=$(date +%s.%N)
    echo "CLI $name t=$t clip=$clip rep=$i wall_s=$(awk "BEGIN{printf \"%.3f\", $b - $a}")"
  done
}

# rt NAME ARGS...: the WebCall-parameter harness.
rt() {
  local name=$1; shift
  left "rt $name $*" || return 0
  echo "--- RT $name $*"
  "$WORK/build-$name/bin/whisper-rt" -m "$MODEL" "$@" 2>&1 | grep -E '^RT|whisper_print_timings|error|fail'
}

bench() {
  local name=$1; shift
  left "bench $name $*" || return 0
  echo "--- BENCH $name $*"
  "$WORK/build-$name/bin/whisper-bench" -m "$MODEL" -w 0 "$@" 2>&1 | grep -E 'whisper_print_timings|error|fail|system_info'
}

main() {
  sec "machine"
  nvidia-smi -L 2>&1 || echo "no nvidia-smi"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | head -3
  (nvcc --version 2>&1 || echo "no nvcc") | tail -2
  cmake --version | head -1; echo "ninja $(ninja --version)"; c++ --version | head -1
  echo "nproc $(nproc)"; grep -m1 'model name' /proc/cpuinfo; grep -m1 -o 'avx512[a-z_]*' /proc/cpuinfo | head -1
  echo "rust: $(command -v cargo || echo none)"
  echo "CUDA libs that whisper-rs-sys links (cublas cudart cublasLt cuda culibos):"
  ls /usr/local/cuda/lib64/ /usr/local/cuda/lib64/stubs/ 2>/dev/null \
    | grep -E '^lib(cublas|cublasLt|cudart|cuda|culibos)\.(so|a)$' | tr '\n' ' '; echo
  ls -la "$MODEL" "$CARRY"/audio/*.wav
  for c in $CLIPS; do echo "$c.txt: $(cat "$CARRY/audio/$c.txt" 2>/dev/null)"; done

  if [[ ! -d "$WORK/src/whisper.cpp" ]]; then
    mkdir -p "$WORK/src"
    if [[ -f "$CARRY/whisper.cpp.tar.xz" ]]; then tar -xJf "$CARRY/whisper.cpp.tar.xz" -C "$WORK/src"
    else cp -r "$CARRY/whisper.cpp" "$WORK/src/"; fi
  fi
  write_rt "$WORK/src/whisper.cpp"

  if [[ ",$BUILDS," == *,cuda,* ]]; then
    if command -v nvcc > /dev/null; then
      if build cuda -DGGML_NATIVE=ON -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH"; then
        sec "cuda runs"
        for c in $CLIPS; do rt cuda -f "$CARRY/audio/$c.wav" -t 4 -r 5; done
        for c in $CLIPS; do cli cuda 4 "$c"; done
        for c in $CLIPS; do rt cuda -f "$CARRY/audio/$c.wav" -t 4 -r 5 -fa; done
        rt cuda -f "$CARRY/audio/short.wav" -t 4 -r 5 -l auto
        for n in $CONC; do rt cuda -f "$CARRY/audio/short.wav" -t 2 -r 5 -c "$n"; done
        rt cuda -f "$CARRY/audio/short.wav" -t 2 -r 5 -c 16 -fa
        bench cuda -t 4
        nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw --format=csv 2>&1 | head -2
      fi
    else
      echo "BUILD cuda SKIPPED: no nvcc"
    fi
  fi

  if [[ ",$BUILDS," == *,cpu,* ]]; then
    if left "cpu build" && build cpu -DGGML_NATIVE=ON; then
      sec "cpu runs"
      for t in $CPU_THREADS; do
        for c in $CLIPS; do rt cpu -f "$CARRY/audio/$c.wav" -t "$t" -r "$REPS"; done
      done
      for t in $CPU_THREADS; do
        for c in $CLIPS; do cli cpu "$t" "$c"; done
      done
      for t in $CPU_THREADS; do bench cpu -t "$t"; done
      # A 16-core CPU box serving utterances: CPU_CONC workers x 4 threads.
      rt cpu -f "$CARRY/audio/short.wav" -t 4 -r 2 -c "$CPU_CONC"
    fi
  fi
  sec "done"
}

main 2>&1 | tee "$OUT/log.txt"
grep -E '^(BUILD|RT (median|concurrent|text)|CLI .*wall_s|SKIP|nvcc|Cuda compilation|GPU|NVIDIA)|whisper_print_timings: +(load|encode|decode|total) time|^--- |^ *Cuda' "$OUT/log.txt" > "$OUT/summary.txt"
