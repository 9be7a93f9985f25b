#!/usr/bin/env bash
# Peak RSS (and time) of `ttalloc info` on a synthetic trace (default 10M events).
# Run from the workspace root: bash trace/benches/info_rss.sh [EVENTS]
set -euo pipefail
n=${1:-10000000}
cargo build --release -q -p ttalloc -p ttalloc-corpora
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
target/release/synth -n "$n" -o "$dir/t.zst" >/dev/null
ls -l "$dir/t.zst"
/usr/bin/time -v target/release/ttalloc info "$dir/t.zst" 2>"$dir/time.txt" >"$dir/info.txt"
grep -E '^size:' "$dir/info.txt"
grep -E 'Maximum resident set size|Elapsed \(wall clock\)' "$dir/time.txt"
