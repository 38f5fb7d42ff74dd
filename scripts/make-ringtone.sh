#!/usr/bin/env bash
# Builds static/media/special_ringtone.mp3, the incoming-call ring (static/js/ui/
# incoming-call.js plays it in a loop): two soft two-tone chimes, 660 Hz then 880 Hz (a fifth
# apart), each with a quieter octave overtone and a fade so nothing clicks, then a pause;
# 2.46 s in all.
# Mono 22.05 kHz, 48 kbit/s CBR MP3: about 15 KB.
#
#   scripts/make-ringtone.sh [OUT]      (default static/media/special_ringtone.mp3)
#
# Needs sox and lame (Debian: apt-get install -y sox lame); this sox has no MP3 writer, so
# sox makes the WAV and lame encodes it.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/static/media/special_ringtone.mp3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

rate=22050
# One chime: the tone plus its octave at a quarter of the level, 0.30 s, 20 ms attack and a
# long exponential-ish release (fade's `q` curve).
chime() { # freq out
  sox -R -n -r "$rate" -c 1 -b 16 "$2" synth 0.30 sine "$1" sine "$(( $1 * 2 ))" \
    remix 1v0.8,2v0.2 fade q 0.02 0.30 0.22 gain -n -6
}
chime 660 "$tmp/low.wav"
chime 880 "$tmp/high.wav"
sox -R -n -r "$rate" -c 1 -b 16 "$tmp/gap.wav" trim 0 0.08
sox -R -n -r "$rate" -c 1 -b 16 "$tmp/rest.wav" trim 0 1.02
# low high, low high, rest: 4 x 0.30 + 3 x 0.08 + 1.02 = 2.46 s
sox -R "$tmp/low.wav" "$tmp/gap.wav" "$tmp/high.wav" "$tmp/gap.wav" \
    "$tmp/low.wav" "$tmp/gap.wav" "$tmp/high.wav" "$tmp/rest.wav" "$tmp/ring.wav"

mkdir -p "$(dirname "$out")"
lame --quiet -m m -b 48 --cbr --resample 22.05 --tt "WebCall ring" "$tmp/ring.wav" "$out"
echo "$out ($(stat -c %s "$out") bytes, $(soxi -D "$tmp/ring.wav") s)"
