#!/usr/bin/env bash
# Issue 14's figures, measured side by side in one run and printed as ratios
# against their floor or peer (so a busy machine slows both sides alike):
#
#   1. replay CPU / `zstd -d` CPU of the same 10M-event synthetic trace
#      (`synth -n 10000000 --cycles 1000 --leak-site 7@400`), and
#      `replay --bisect` / plain replay;                       target <= 3x
#   2. replay peak RSS at 50M events / at 10M;                 target <= 1.25x, < 64 MB
#      and `replay --bisect` / plain replay at 50M events;     target <= 1.2x
#   3. `decode_columns` scan, events per CPU-second (one core); target >= 100M
#      (and `decode_columns_untimed`, the scan a replay makes)
#   4. bytes per event of the synthetic trace and of workload W; targets 3.0 / 0.6
#   5. replay CPU / `heaptrack_print -l` CPU on workload W;    target <= 0.5x
#
# CPU is user + system of the whole process (from `wait4`, to the
# microsecond: `/usr/bin/time` prints hundredths, a tenth of W's replay),
# the median of RUNS alternating runs (W's, 5 x RUNS: they are short).
# Run from anywhere:
#   bash replayer/benches/ratios.sh
# Environment: RATIOS_EVENTS (10000000), RATIOS_BIG (50000000; 0 skips the
# RSS ratio), RATIOS_RUNS (3), RATIOS_W (1; 0 skips workload W, which needs
# gcc, python3 and heaptrack: `apt-get install -y heaptrack`),
# RATIOS_LONG_CYCLES (1; 0 skips the replays of 20 and 3 cycles),
# RATIOS_SCAN (1; 0 skips the scan, which builds the trace bench of this
# checkout), RATIOS_W_FIXED (a recorded W trace, e.g. /tmp/lp/w.zst:
# its events re-encoded by this checkout's writer give W's size on the same
# events every run, where a fresh recording's timestamps move with the
# machine's load; builds the column_sizes bench; the trace itself, as it is,
# is replayed too, beside the fresh recording, for a CPU ratio on the same
# events every run).
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${RATIOS_EVENTS:-10000000}
big=${RATIOS_BIG:-50000000}
runs=${RATIOS_RUNS:-3}
w_dir=${RATIOS_W_DIR:-../shared/bench/workload-w}
[ -d "$w_dir" ] || w_dir=/work/shared/bench/workload-w

# RATIOS_BIN: a directory holding prebuilt `ttalloc` and `synth` (to measure
# a baseline build); by default this checkout is built.
if [ -n "${RATIOS_BIN:-}" ]; then
    bin=$RATIOS_BIN
else
    cargo build --release -q -p ttalloc -p ttalloc-corpora
    bin=$PWD/target/release
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# measure NAME CMD...: appends "cpu_seconds max_rss_kb user_seconds
# wall_seconds" to $dir/NAME.
# The command's own status is ignored (a replay with findings may exit 1).
measure() {
    local name=$1
    shift
    python3 -c '
import os, subprocess, sys, time
with open(os.devnull, "wb") as null, open(sys.argv[1], "wb") as err:
    start = time.perf_counter()
    child = subprocess.Popen(sys.argv[2:], stdout=null, stderr=err)
    _, _, use = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
print("%.4f %d %.4f %.4f" % (use.ru_utime + use.ru_stime, use.ru_maxrss, use.ru_utime, wall))
' "$dir/stderr" "$@" >>"$dir/$name"
}
# median NAME COLUMN: the median of column 1 (CPU s), 2 (RSS kB), 3
# (user CPU s) or 4 (wall s) of NAME.
median() {
    sort -g -k"$2" "$dir/$1" | awk -v c="$2" '{v[NR] = $c} END {print v[int((NR + 1) / 2)]}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
# spread A B: the lowest and highest of the runs' own ratios of A's CPU to
# B's (run i of each, measured back to back): how far the median ratio
# stands from a target in this run's noise.
spread() {
    paste -d' ' "$dir/$1" "$dir/$2" | awk '{r = ($5 > 0 ? $1 / $5 : 0); if (NR == 1 || r < lo) lo = r; if (NR == 1 || r > hi) hi = r}
        END {printf "per-run ratios %.2fx to %.2fx, of %d", lo, hi, NR}'
}
ratio3() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b > 0 ? a / b : 0)}'; }
size_of() { stat -c %s "$1"; }

echo "== synthetic trace: $n events, 1000 cycles, leak site 7 from cycle 400"
"$bin/synth" -n "$n" --cycles 1000 --leak-site 7@400 -o "$dir/synth.zst" >"$dir/synth.json"
events=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["events"])' "$dir/synth.json")
bytes=$(size_of "$dir/synth.zst")
for _ in $(seq "$runs"); do
    measure zstd zstd -d -q -c "$dir/synth.zst"
    measure replay "$bin/ttalloc" replay "$dir/synth.zst"
    measure replay1 "$bin/ttalloc" replay --threads 1 "$dir/synth.zst"
    # Two of them at once, one per core: whether the cores slow each other
    # (the default replay runs on both).
    measure pair "$bin/ttalloc" replay --threads 1 "$dir/synth.zst" &
    measure pair "$bin/ttalloc" replay --threads 1 "$dir/synth.zst"
    wait
    measure bisect "$bin/ttalloc" replay --bisect "$dir/synth.zst"
done
zstd_cpu=$(median zstd 1)
replay_cpu=$(median replay 1)
bisect_cpu=$(median bisect 1)
zstd_user=$(median zstd 3)
replay_user=$(median replay 3)
rss10=$(median replay 2)
echo "zstd -d CPU:           ${zstd_cpu} s"
echo "replay CPU:            ${replay_cpu} s ($(awk -v n="$events" -v s="$replay_cpu" 'BEGIN {printf "%.1f", n / s / 1e6}') M events per CPU-second)"
echo "replay --bisect CPU:   ${bisect_cpu} s"
replay1_cpu=$(median replay1 1)
# The default decodes the next block on a second thread (on a machine with
# two cores or more); `--threads 1` decodes on the replaying thread: the
# same instructions (callgrind), 3-6% less CPU time on the 2-core VM, more
# wall time when a core is free. The difference is the handover: a block's
# columns are written on one core and read on the other. Two single-threaded
# replays side by side take about the CPU of one alone (0.97x-1.02x there):
# the cores do not slow each other.
echo "replay --threads 1 CPU: ${replay1_cpu} s; wall $(median replay1 4) s (default: $(median replay 4) s)"
echo "replay --threads 1, two at once: $(median pair 1) s CPU each ($(ratio "$(median pair 1)" "$replay1_cpu")x of one alone; the default's two threads: $(ratio "$replay_cpu" "$replay1_cpu")x)"
echo "RATIO replay / zstd -d:          $(ratio "$replay_cpu" "$zstd_cpu")x   (target <= 3; $(spread replay zstd))"
echo "RATIO replay --threads 1 / zstd -d: $(ratio "$replay1_cpu" "$zstd_cpu")x   (target <= 3)"
# zstd -d spends a third or more of its CPU in the kernel (reading the file,
# writing to /dev/null), and that share moves a lot from run to run on a
# VM (0.083 to 0.125 s on the same file): the user-time ratio, beside the
# target's, shows whether a change of the ratio is the replay's.
echo "RATIO replay / zstd -d, user time only: $(ratio "$replay_user" "$zstd_user")x   (replay ${replay_user} s, zstd -d ${zstd_user} s)"
echo "RATIO replay --bisect / replay:  $(ratio "$bisect_cpu" "$replay_cpu")x   (target <= 1.2)"
echo "replay peak RSS at $events events: $((rss10 / 1024)) MB"
echo "SIZE synthetic: $(ratio "$bytes" "$events") B/event ($bytes B)   (target <= 3.0)"

# Long cycles: the same events cut into 20 cycles ("setup done", then
# "cycle N" every 500,000 events: report_size.sh's trace) and into 3. The
# replay's cycle probe (its first 250,000 events) sees no label twice; it
# looks on until one repeats, else the trace is replayed twice (1.9x).
if [ "${RATIOS_LONG_CYCLES:-1}" != 0 ]; then
    echo "== the same length in 20 and in 3 cycles"
    for c in 20 3; do
        "$bin/synth" -n "$n" --cycles "$c" --leak-site 7@2 -o "$dir/cycles$c.zst" >/dev/null 2>&1
    done
    for _ in $(seq "$runs"); do
        measure cycles20 "$bin/ttalloc" replay "$dir/cycles20.zst"
        measure cycles3 "$bin/ttalloc" replay "$dir/cycles3.zst"
        measure cycles1000 "$bin/ttalloc" replay "$dir/synth.zst"
    done
    rm -f "$dir/cycles20.zst" "$dir/cycles3.zst"
    for c in 20 3; do
        echo "RATIO replay of $c cycles / of 1000 cycles: $(ratio "$(median cycles$c 1)" "$(median cycles1000 1)")x   (replayed once: about 1)"
    done
fi

if [ "${RATIOS_SCAN:-1}" != 0 ]; then
    scan=$(TTALLOC_BENCH_COLUMNS_ONLY=1 cargo bench -q -p ttalloc-trace --bench trace_bench -- "$dir/synth.zst" 2>/dev/null |
        grep 'decode_columns' || echo "scan failed")
    echo "SCAN $scan   (target >= 100 M per CPU-second)"
    # What a replay reads: no times (format 2.6: their frames unread).
    untimed=$(TTALLOC_BENCH_UNTIMED=1 TTALLOC_BENCH_COLUMNS_ONLY=1 TTALLOC_BENCH_RUNS=30 \
        cargo bench -q -p ttalloc-trace --bench trace_bench -- "$dir/synth.zst" 2>/dev/null |
        grep 'decode_columns_untimed' || echo "scan failed")
    echo "SCAN $untimed   (a replay's: no times)"
fi

if [ "$big" != 0 ]; then
    echo "== synthetic trace: $big events (same shape)"
    "$bin/synth" -n "$big" --cycles 1000 --leak-site 7@400 -o "$dir/big.zst" >/dev/null
    rm -f "$dir/synth.zst"
    for _ in $(seq "$runs"); do
        measure big "$bin/ttalloc" replay "$dir/big.zst"
        measure big_bisect "$bin/ttalloc" replay --bisect "$dir/big.zst"
    done
    rss_big=$(median big 2)
    echo "replay peak RSS at $big events: $((rss_big / 1024)) MB; CPU $(median big 1) s"
    echo "RATIO replay peak RSS 50M / 10M: $(ratio "$rss_big" "$rss10")x   (target <= 1.25, and < 64 MB)"
    echo "RATIO replay --bisect / replay at $big events: $(ratio "$(median big_bisect 1)" "$(median big 1)")x   (target <= 1.2)"
    rm -f "$dir/big.zst"
fi

if [ "${RATIOS_W:-1}" != 0 ]; then
    echo "== workload W ($w_dir)"
    "$bin/ttalloc" record --force -o "$dir/w.zst" -- python3 "$w_dir/wl_ttalloc.py" >/dev/null 2>&1
    # describe TRACE: "N events, format X.Y, B blocks, S B/event" (what a W replay read).
    describe() {
        "$bin/ttalloc" info --json "$1" | python3 -c 'import json,sys
d = json.load(sys.stdin)
print("%d events, format %s, %d blocks, %.3f B/event" % (d["events"], d["format_version"], d["blocks"], d["bytes_per_event"]))'
    }
    w_events=$("$bin/ttalloc" info --json "$dir/w.zst" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])')
    echo "SIZE W (Python client): $(ratio3 "$(size_of "$dir/w.zst")" "$w_events") B/event, fresh recording   (target <= 0.6)"
    if [ -n "${RATIOS_W_FIXED:-}" ]; then
        # At the trace's own clock tick (a recording keeps 100 ns by
        # default; re-encoding at 1 ns would keep digits it never had).
        tick=$("$bin/ttalloc" info --json "$RATIOS_W_FIXED" |
            python3 -c 'import json,sys; print(json.load(sys.stdin).get("clock_tick_ns") or 1)')
        fixed=$(cargo bench -q -p ttalloc-trace --bench column_sizes -- "$RATIOS_W_FIXED" --reencode --clock-tick="$tick" 2>/dev/null |
            sed -n 's/.* \([0-9.]*\) B\/event in the file/\1/p')
        echo "SIZE W re-encoded from $RATIOS_W_FIXED at its ${tick} ns tick: ${fixed:-failed} B/event   (target <= 0.6)"
    fi
    if command -v heaptrack >/dev/null && command -v heaptrack_print >/dev/null; then
        gcc -O2 -g -fno-omit-frame-pointer -o "$dir/wl_malloc" "$w_dir/wl_malloc.c"
        (cd "$dir" && heaptrack -o "$dir/hw" ./wl_malloc >/dev/null 2>&1)
        hfile=$(ls "$dir"/hw.* 2>/dev/null | head -1 || true)
        for _ in $(seq $((5 * runs))); do
            measure heaptrack_print heaptrack_print -l 1 "$hfile"
            measure w_replay "$bin/ttalloc" replay "$dir/w.zst"
            if [ -n "${RATIOS_W_FIXED:-}" ]; then
                measure w_fixed_replay "$bin/ttalloc" replay "$RATIOS_W_FIXED"
            fi
        done
        h_cpu=$(median heaptrack_print 1)
        w_cpu=$(median w_replay 1)
        echo "heaptrack_print -l CPU: ${h_cpu} s (median of $((5 * runs)), alternating with the replays)"
        echo "W fresh recording: $(describe "$dir/w.zst"); replay CPU ${w_cpu} s, peak RSS $(($(median w_replay 2) / 1024)) MB"
        echo "RATIO replay / heaptrack_print on W: $(ratio "$w_cpu" "$h_cpu")x   (target <= 0.5; the fresh recording)"
        if [ -n "${RATIOS_W_FIXED:-}" ]; then
            # The same events every run (a fresh recording's timestamps, so its
            # size and blocks, move with the machine's load).
            f_cpu=$(median w_fixed_replay 1)
            echo "W fixed trace $RATIOS_W_FIXED: $(describe "$RATIOS_W_FIXED"); replay CPU ${f_cpu} s, peak RSS $(($(median w_fixed_replay 2) / 1024)) MB"
            echo "RATIO replay / heaptrack_print on W, fixed trace: $(ratio "$f_cpu" "$h_cpu")x   (target <= 0.5)"
        fi
    else
        echo "heaptrack is not installed (apt-get install -y heaptrack): W's CPU ratio skipped"
    fi
fi
