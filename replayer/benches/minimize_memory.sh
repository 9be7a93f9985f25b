#!/usr/bin/env bash
# Peak memory and time of `ttalloc minimize` on synthetic traces of 2M and
# 10M events (8 devices, one site leaking from a tenth of the way in), and
# the same trace's events as `minimize` held them before it read them back
# from the file (104 bytes an Event): what it keeps per event, and how
# that grows with the trace, measured in one run.
#
#   bash replayer/benches/minimize_memory.sh [SMALL] [LARGE]
# Environment: MINIMIZE_BIN, a directory holding a prebuilt `ttalloc` and
# `synth` to measure instead of building this checkout in release.
# Measured (2-core Intel VM): 2M 65 MB (34 B/event, 0.24 s user), 10M
# 141 MB (15 B/event, 0.89 s user), 2.14x for 5x the events (3af4e9a: 91
# and 283 MB, 3.11x; a 50M-event trace 548 MB against 1,339 MB); at 1f4e483,
# which held every event, 300 MB and 1,368 MB (0.6 s and 3.0 s user).
set -euo pipefail
cd "$(dirname "$0")/../.."
small=${1:-2000000}
large=${2:-10000000}
if [ -n "${MINIMIZE_BIN:-}" ]; then
    bin=$MINIMIZE_BIN
else
    cargo build --release -q -p ttalloc -p ttalloc-corpora
    bin=$PWD/target/release
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
declare -A kb
for n in "$small" "$large"; do
    "$bin/synth" -n "$n" --cycles $((n / 10000)) --leak-site 7@$((n / 25000)) -o "$dir/t.zst" >/dev/null 2>"$dir/synth.log"
    /usr/bin/time -f "%M %U %S %e" -o "$dir/time" \
        "$bin/ttalloc" minimize "$dir/t.zst" -o "$dir/min.zst" --force --json >"$dir/out"
    read -r rss user sys wall <"$dir/time"
    kb[$n]=$rss
    echo "minimize of $n events: peak RSS $((rss / 1024)) MB ($(echo "scale=1; $rss * 1024 / $n" | bc) B/event; the events alone were $((n * 104 / 1000000)) MB), ${user} s user, ${sys} s system, ${wall} s wall: $(cat "$dir/out")"
done
echo "RATIO peak RSS $large / $small events: $(echo "scale=2; ${kb[$large]} / ${kb[$small]}" | bc)x (events $(echo "scale=2; $large / $small" | bc)x)"
