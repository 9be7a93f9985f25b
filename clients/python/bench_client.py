"""Cost of the Python client per call.

    python3 clients/python/bench_client.py                 # disabled: no recorder
    ttalloc record -o /tmp/b.zst -- python3 clients/python/bench_client.py   # enabled

Times are CPU time of this process (time.process_time), so a busy machine
does not inflate them. Enabled, each recorded event carries a 10-frame stack (9 nested functions
plus <module>); half the calls are allocs, half frees.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ttalloc  # noqa: E402

N = int(os.environ.get("N", "200000"))


def leaf(n):
    t0 = time.process_time()
    for i in range(n):
        ttalloc.alloc(0, i, "DRAM", 2048, page_size=2048)
        ttalloc.free(0, i)
    ttalloc.flush()
    return (time.process_time() - t0) / (2 * n)


def f8(n): return leaf(n)
def f7(n): return f8(n)
def f6(n): return f7(n)
def f5(n): return f6(n)
def f4(n): return f5(n)
def f3(n): return f4(n)
def f2(n): return f3(n)
def f1(n): return f2(n)


def baseline(n):
    def nop(device, buffer, buffer_type, size, page_size=None):
        return None
    t0 = time.process_time()
    for i in range(n):
        nop(0, i, "DRAM", 2048, page_size=2048)
    return (time.process_time() - t0) / n


def op_cost(n):
    t0 = time.process_time()
    for _ in range(n):
        with ttalloc.op("ttnn.matmul"):
            pass
    return (time.process_time() - t0) / n


if __name__ == "__main__":
    state = "enabled" if ttalloc.enabled() else "disabled"
    per_event = f1(N)
    base = baseline(N)
    per_op = op_cost(N)
    print("ttalloc client %s: %.0f ns per alloc/free call with a 10-frame stack "
          "(an empty Python call with the same arguments: %.0f ns); %.0f ns per `with op()` scope"
          % (state, per_event * 1e9, base * 1e9, per_op * 1e9))
