#!/usr/bin/env bash
# The test suite: cargo-nextest over the whole workspace, each test in a process of its own,
# with the rules in .config/nextest.toml (whisper tests run alone). Installs cargo-nextest
# with cargo if it is missing. Arguments go to `cargo nextest run`, e.g.
#
#   scripts/test.sh                       # everything, on the embedded defaults
#   scripts/test.sh -p api -E 'test(/^media::/)'
#   scripts/test.sh --profile ci          # what .ci/run runs (see .config/nextest.toml)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-nextest >/dev/null || env -u CARGO_TARGET_DIR cargo install --locked cargo-nextest
exec cargo nextest run --workspace "$@"
