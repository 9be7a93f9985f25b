"""Recording-overhead benchmark: an op-heavy ttnn loop, plain vs `ttalloc record`.

    source /opt/ttnn-mock/env.sh
    cargo build --release
    python corpora/ttnn/bench_overhead.py [--iterations 1000] [--repeats 3] [--ttalloc PATH]

Each iteration of the loop allocates a 32x32 DRAM tensor, adds it to itself
and deallocates both: 4 small ttnn ops, 2 buffers. The loop runs in a child
process (this file with `--loop N`) on the mock N150, plain and under
`ttalloc record`, `--repeats` times each; the median is reported for

- the loop's own wall time (measured inside the child, the op-heavy part),
- the whole run's wall time (interpreter start, `import ttnn`, open, close,
  and for the recorded run the recorder's start and the trace's sealing),
- the whole run's CPU time (user + system of every child process, the
  recorder included),

and per captured event (`ttalloc info --json`) the extra wall time of the
loop. Target (issue 9): recorded loop wall <= 1.5x plain. A benchmark, not a
test: it prints figures and exits 0 unless a run fails.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def loop(iterations):
    import ttnn

    device = ttnn.open_device(device_id=0)
    shape = ttnn.Shape([1, 1, 32, 32])
    start = time.perf_counter()
    for _ in range(iterations):
        a = ttnn.allocate_tensor_on_device(shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, ttnn.DRAM_MEMORY_CONFIG)
        b = ttnn.add(a, a)
        ttnn.deallocate(b)
        ttnn.deallocate(a)
    seconds = time.perf_counter() - start
    ttnn.close_device(device)
    sys.stderr.write("bench-loop-seconds %.6f\n" % seconds)


def timed(cmd, env):
    """(loop seconds, wall seconds, cpu seconds) of one run of `cmd`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit("bench: %s failed with status %d:\n%s" % (" ".join(cmd), done.returncode, done.stderr))
    loop_lines = [line for line in done.stderr.splitlines() if line.startswith("bench-loop-seconds ")]
    if not loop_lines:
        sys.exit("bench: %s printed no loop time:\n%s" % (" ".join(cmd), done.stderr))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(loop_lines[0].split()[1]), wall, cpu


def default_ttalloc():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for profile in ("release", "debug"):
        path = os.path.join(root, "target", profile, "ttalloc")
        if os.path.exists(path):
            return path
    return "ttalloc"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=1000, help="loop iterations (4 ops each)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each kind; the median is reported")
    parser.add_argument("--ttalloc", default=default_ttalloc(), help="the ttalloc binary")
    parser.add_argument("--loop", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop is not None:
        loop(args.loop)
        return

    env = dict(os.environ, TT_LOGGER_LEVEL="off")
    program = [sys.executable, os.path.abspath(__file__), "--loop", str(args.iterations)]
    with tempfile.TemporaryDirectory() as tmp:
        trace = os.path.join(tmp, "bench.zst")
        timed(program, env)  # warm tt-metal's JIT cache and the page cache
        plain, recorded = [], []
        for _ in range(args.repeats):
            plain.append(timed(program, env))
            recorded.append(timed([args.ttalloc, "record", "--force", "-o", trace, "--"] + program, env))
        info = subprocess.run([args.ttalloc, "info", trace, "--json"], capture_output=True, text=True, check=True)
        events = json.loads(info.stdout)["events"]
    if events == 0:
        print("bench: the recorded run captured no events: is zero-edit ttnn capture in this ttalloc?")

    def median(runs, i):
        return statistics.median(r[i] for r in runs)

    ops = 4 * args.iterations
    print("ttnn recording overhead: %d iterations, %d ttnn ops, %d captured events, median of %d runs"
          % (args.iterations, ops, events, args.repeats))
    print("%-22s %10s %10s %7s" % ("", "plain", "recorded", "ratio"))
    for label, i in (("loop wall (s)", 0), ("whole run wall (s)", 1), ("whole run CPU (s)", 2)):
        p, r = median(plain, i), median(recorded, i)
        print("%-22s %10.3f %10.3f %6.2fx" % (label, p, r, r / p))
    extra = median(recorded, 0) - median(plain, 0)
    print("loop: %.1f us per op plain, %.1f us per op recorded; %.1f us extra per captured event"
          % (1e6 * median(plain, 0) / ops, 1e6 * median(recorded, 0) / ops, 1e6 * extra / max(events, 1)))
    ratio = median(recorded, 0) / median(plain, 0)
    print("target: recorded loop wall <= 1.5x plain: %s (%.2fx)" % ("met" if ratio <= 1.5 else "NOT met", ratio))


if __name__ == "__main__":
    main()
