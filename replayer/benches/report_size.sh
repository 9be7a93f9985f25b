#!/usr/bin/env bash
# Size and time of `ttalloc report` (HTML and Markdown) and `ttalloc export`
# on the standard 10M-event synthetic trace (8 devices, 20 cycles, one site
# leaking from cycle 2), and how long headless Chromium takes to load the
# report and run its script (--dump-dom returns once the page has loaded).
# Targets (issue 11): HTML < 5 MB, rendered < 2 s; Markdown < 10 KB.
set -euo pipefail
cd "$(dirname "$0")/../.."
events=${1:-10000000}
cargo build --release -q -p ttalloc -p ttalloc-corpora
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
./target/release/synth -n "$events" --cycles 20 --leak-site 7@2 -o "$dir/synth.zst" >/dev/null
t() { local s=$(date +%s.%N); "$@" >/dev/null; echo "$(echo "$(date +%s.%N) - $s" | bc)"; }
echo "trace: $(stat -c %s "$dir/synth.zst") bytes"
echo "report html: $(t ./target/release/ttalloc report "$dir/synth.zst" -o "$dir/r.html") s, $(stat -c %s "$dir/r.html") bytes"
echo "report md:   $(t ./target/release/ttalloc report "$dir/synth.zst" -o "$dir/r.md") s, $(stat -c %s "$dir/r.md") bytes"
echo "perfetto:    $(t ./target/release/ttalloc export "$dir/synth.zst" --format perfetto -o "$dir/p.json") s, $(stat -c %s "$dir/p.json") bytes"
echo "svg:         $(t ./target/release/ttalloc export "$dir/synth.zst" --format svg -o "$dir/f.svg") s, $(stat -c %s "$dir/f.svg") bytes"
echo "replay:      $(t ./target/release/ttalloc replay "$dir/synth.zst" --bisect) s (for comparison)"
if command -v chromium >/dev/null; then
    render() {
        chromium --headless --no-sandbox --disable-gpu --disable-background-networking \
            --disable-component-update --disable-sync --no-first-run \
            --user-data-dir="$dir/profile" --dump-dom "file://$dir/r.html" 2>/dev/null |
            grep -o '<div id="status"[^>]*>'
    }
    render >/dev/null # warm the profile
    echo "chromium load + script: $(t render) s ($(render))"
fi
