#!/usr/bin/env bash
# Issue 14 target 6: compat ingest throughput against tt-metal's
# allocation_server_poc, measured side by side in one run and printed as
# ratios (a busy machine slows both sides alike).
#
# The client is workload W's `compat_client` (../shared/bench/workload-w/):
# 1,000,000 112-byte messages, one blocking send() each, then a QUERY whose
# answer arrives only once the server has handled everything before it; it
# prints events per second from its first send to that answer. Each server
# is measured RUNS times, alternating:
#   - the POC: COMPAT_POC (a built allocation_server_poc taking the socket
#     path as its only argument), else the stand-in `compat_poc_standin.cpp`
#     (same per-message work; the real one needs tt-metal), logging to a file;
#   - `ttalloc serve --compat`, and `ttalloc record --compat -- compat_client`;
#   - `compat_sink.c`, a server that throws the messages away: the client's
#     own ceiling (its one send() per message bounds the rate), so the most
#     any server could reach against the POC on this machine.
# It also prints how busy the ceiling run and the serve run keep the cores
# (the client's CPU and the server's, over the client's wall time).
# Target: ttalloc >= 5x the POC's events per second.
#
#   bash recorder/benches/compat_ratio.sh
# Environment: COMPAT_RUNS (3), COMPAT_BIN (a directory holding a prebuilt
# `ttalloc` to measure instead of building this checkout in release),
# COMPAT_BASE (a directory holding an earlier `ttalloc`: measured too, in the
# same alternation, and compared), COMPAT_POC, COMPAT_W_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${COMPAT_RUNS:-3}
w_dir=${COMPAT_W_DIR:-../shared/bench/workload-w}
[ -d "$w_dir" ] || w_dir=/work/shared/bench/workload-w
if [ -n "${COMPAT_BIN:-}" ]; then
    bin=$COMPAT_BIN
else
    cargo build --release -q -p ttalloc
    bin=$PWD/target/release
fi
dir=$(mktemp -d)
server=
cleanup() {
    [ -n "$server" ] && kill "$server" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

gcc -O2 -I"$w_dir" -o "$dir/compat_client" "$w_dir/compat_client.c"
gcc -O2 -o "$dir/sink" recorder/benches/compat_sink.c
poc=${COMPAT_POC:-}
if [ -z "$poc" ]; then
    g++ -O2 -pthread -o "$dir/poc" recorder/benches/compat_poc_standin.cpp
    poc=$dir/poc
fi
sock=$dir/alloc.sock

# wait_for_socket: until the server listens (the client retries too).
wait_for_socket() {
    for _ in $(seq 200); do
        [ -S "$sock" ] && return 0
        sleep 0.02
    done
    echo "server did not listen on $sock" >&2
    return 1
}

# The client's "ev_per_s=N" from its log line.
rate_of() { sed -n 's/.*ev_per_s=\([0-9]*\).*/\1/p' "$1" | tail -1; }

# cpu OUT CMD...: runs CMD (a SIGINT goes on to it) and appends its CPU
# seconds (user + system, all threads) and wall seconds to OUT: how busy a
# run keeps the machine's cores, the client's and the server's together.
# A script, not a shell function: a server started in the background must
# be this process (`$!`), for `kill -INT` to reach it.
cat >"$dir/cpu.py" <<'PY'
import os, signal, subprocess, sys, time
start = time.perf_counter()
child = subprocess.Popen(sys.argv[2:])
signal.signal(signal.SIGINT, lambda *_: child.send_signal(signal.SIGINT))
while True:
    try:
        _, _, use = os.wait4(child.pid, 0)
        break
    except InterruptedError:
        continue
with open(sys.argv[1], "a") as out:
    out.write("%.4f %.4f\n" % (use.ru_utime + use.ru_stime, time.perf_counter() - start))
PY
cpu() { python3 "$dir/cpu.py" "$@"; }

run_poc() {
    rm -f "$sock"
    "$poc" "$sock" >"$dir/poc.log" 2>&1 &
    server=$!
    wait_for_socket
    "$dir/compat_client" "$sock" "$dir/poc.rates"
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=
}

run_sink() {
    rm -f "$sock"
    python3 "$dir/cpu.py" "$dir/sink.cpu" "$dir/sink" "$sock" &
    server=$!
    wait_for_socket
    cpu "$dir/sink_client.cpu" "$dir/compat_client" "$sock" "$dir/sink.rates"
    wait "$server" 2>/dev/null || true
    server=
}

# run_serve BIN RATES NAME: `BIN/ttalloc serve --compat` under the client
# (the CPU of each side logged under NAME).
run_serve() {
    rm -f "$sock" "$dir/serve.zst"
    python3 "$dir/cpu.py" "$dir/$3.cpu" "$1/ttalloc" serve -o "$dir/serve.zst" --force --compat --compat-socket "$sock" \
        --socket "$dir/native.sock" --stats-interval 0 >"$dir/serve.log" 2>&1 &
    server=$!
    wait_for_socket
    cpu "$dir/$3_client.cpu" "$dir/compat_client" "$sock" "$2"
    kill -INT "$server"
    wait "$server" 2>/dev/null || true
    server=
}

# run_record BIN RATES: `BIN/ttalloc record --compat -- compat_client`.
run_record() {
    rm -f "$sock" "$dir/record.zst"
    "$1/ttalloc" record -o "$dir/record.zst" --compat --compat-socket "$sock" -- \
        "$dir/compat_client" "$sock" "$2" >"$dir/record.log" 2>&1 || true
}

base=${COMPAT_BASE:-}
for i in $(seq "$runs"); do
    run_poc
    run_serve "$bin" "$dir/serve.rates" serve
    run_record "$bin" "$dir/record.rates"
    run_sink
    line="run $i: poc $(rate_of "$dir/poc.rates")  serve $(rate_of "$dir/serve.rates")  record $(rate_of "$dir/record.rates")  sink $(rate_of "$dir/sink.rates")"
    if [ -n "$base" ]; then
        run_serve "$base" "$dir/base_serve.rates" base_serve
        run_record "$base" "$dir/base_record.rates"
        line="$line  (base: serve $(rate_of "$dir/base_serve.rates")  record $(rate_of "$dir/base_record.rates"))"
    fi
    echo "$line events/s"
done

# median FILE: the median events per second of the runs logged in FILE.
median() {
    sed -n 's/.*ev_per_s=\([0-9]*\).*/\1/p' "$1" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
# spread A B: the lowest and highest of the runs' own ratios of A's rate to
# B's (run i of each, measured back to back): how far the median ratio
# stands from the target in this run's noise.
spread() {
    paste -d' ' <(sed -n 's/.*ev_per_s=\([0-9]*\).*/\1/p' "$1") <(sed -n 's/.*ev_per_s=\([0-9]*\).*/\1/p' "$2") |
        awk '{r = ($2 > 0 ? $1 / $2 : 0); if (NR == 1 || r < lo) lo = r; if (NR == 1 || r > hi) hi = r}
            END {printf "per-run ratios %.2fx to %.2fx, of %d", lo, hi, NR}'
}
poc_rate=$(median "$dir/poc.rates")
serve_rate=$(median "$dir/serve.rates")
record_rate=$(median "$dir/record.rates")
echo "POC ($([ -n "${COMPAT_POC:-}" ] && echo "$COMPAT_POC" || echo stand-in)): $poc_rate events/s"
echo "serve --compat:  $serve_rate events/s"
echo "record --compat: $record_rate events/s"
echo "RATIO serve --compat / POC:  $(ratio "$serve_rate" "$poc_rate")x   (target >= 5; $(spread "$dir/serve.rates" "$dir/poc.rates"))"
echo "RATIO record --compat / POC: $(ratio "$record_rate" "$poc_rate")x   (target >= 5; $(spread "$dir/record.rates" "$dir/poc.rates"))"
sink_rate=$(median "$dir/sink.rates")
echo "client ceiling (compat_sink, messages thrown away): $sink_rate events/s"
echo "RATIO ceiling / POC: $(ratio "$sink_rate" "$poc_rate")x   ($(spread "$dir/sink.rates" "$dir/poc.rates"); the most any server reaches here; serve --compat is $(ratio "$serve_rate" "$sink_rate")x of it)"
# busy NAME: the median run's CPU (client and server together) against the
# cores' time over the client's wall time. A ceiling run that keeps the
# cores nearly all busy leaves a server little CPU of its own: what it
# spends beyond the sink's comes out of the client's time.
cores=$(nproc)
busy() {
    paste -d' ' "$dir/$1_client.cpu" "$dir/$1.cpu" | sort -g -k1 |
        awk -v n="$cores" '{c[NR] = $1; w[NR] = $2; s[NR] = $3}
            END {m = int((NR + 1) / 2); printf "client %.2f s + server %.2f s of CPU in %.2f s: %.0f%% of %d cores", c[m], s[m], w[m], 100 * (c[m] + s[m]) / (w[m] * n), n}'
}
echo "CPU, ceiling run: $(busy sink)"
echo "CPU, serve run:   $(busy serve)"
if [ -n "$base" ]; then
    base_serve=$(median "$dir/base_serve.rates")
    base_record=$(median "$dir/base_record.rates")
    echo "base ($base): serve --compat $base_serve, record --compat $base_record events/s"
    echo "RATIO base serve --compat / POC:  $(ratio "$base_serve" "$poc_rate")x;  this / base: $(ratio "$serve_rate" "$base_serve")x"
    echo "RATIO base record --compat / POC: $(ratio "$base_record" "$poc_rate")x;  this / base: $(ratio "$record_rate" "$base_record")x"
fi
