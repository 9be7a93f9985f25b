"""Circular buffers that are released only by free-all.

tt-metal's `track_deallocate_cb(device)` carries no address: it means "every
CB of this device is gone". A tracker that waits for per-CB frees sees every
CB as leaked; ttalloc records the free-all and must honour it. Each run starts
with an op whose large L1 output reaches below the CBs of the previous run's
last op: only the free-all keeps that op's own CB from clashing with it.

`--skip-free-all` leaves the free-alls out (the tests use it to show that
the clash then appears).
"""
import sys

import ttalloc

TILE = 2048
RUNS = 3
OPS = ["ttnn.matmul", "ttnn.softmax", "ttnn.layernorm"]
CORES = 64
# wormhole_b0 worker L1: 1499136 B per core, 134208 B reserved for firmware.
L1 = dict(l1_banks=64, l1_bank_size=1364928, l1_alignment=16,
          l1_unreserved_base=134208, l1_small_size=0, worker_l1_size=1499136)
WORKER_L1 = 1499136
CB_BASE = 134208
CB_IN = 8192  # 4 tiles
CB_OUT = 4096  # 2 tiles
# The concat output: 656 pages per bank on all 64 banks, placed top-down at
# 1499136 - 656 * 2048 = 155648, above the concat's own CB (ends at 142400)
# but below the end of the previous run's CBs (171072).
GATHERED_PER_BANK = 656 * TILE
GATHERED = L1["l1_banks"] * GATHERED_PER_BANK


def concat(run):
    with ttalloc.op("ttnn.concat"):
        ttalloc.alloc(0, ("gathered", run), "L1", GATHERED, page_size=TILE)
        ttalloc.cb_alloc(0, CB_BASE, CB_IN, cores=CORES)
    ttalloc.free(0, ("gathered", run))


def run_op(run, k, name):
    with ttalloc.op(name):
        base = CB_BASE + k * (CB_IN + CB_OUT)
        ttalloc.cb_alloc(0, base, CB_IN, cores=CORES)
        ttalloc.cb_alloc(0, base + CB_IN, CB_OUT, cores=CORES)
        ttalloc.alloc(0, ("out", run, k), "L1", 16384, page_size=TILE)
    ttalloc.free(0, ("out", run, k))


def deallocate_circular_buffers():
    if "--skip-free-all" not in sys.argv:
        ttalloc.cb_free_all(0)


def main():
    ttalloc.device_open(0, arch="wormhole_b0", **L1)
    for run in range(1, RUNS + 1):
        ttalloc.mark(f"run {run}")
        concat(run)
        for k, name in enumerate(OPS):
            run_op(run, k, name)
        deallocate_circular_buffers()
    ttalloc.mark("end")
    ttalloc.device_close(0)
    ttalloc.flush()


if __name__ == "__main__":
    main()
