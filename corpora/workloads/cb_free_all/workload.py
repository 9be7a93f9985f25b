"""Circular buffers that are released only by free-all.

tt-metal's `track_deallocate_cb(device)` carries no address: it means "every
CB of this device is gone". A tracker that waits for per-CB frees sees every
CB as leaked; ttalloc records the free-all and must honour it.
"""
import ttalloc

TILE = 2048
RUNS = 3
OPS = ["ttnn.matmul", "ttnn.softmax", "ttnn.layernorm"]
CORES = 64
# wormhole_b0 worker L1: 1499136 B per core, 134208 B reserved for firmware.
L1 = dict(l1_banks=64, l1_bank_size=1364928, l1_alignment=16,
          l1_unreserved_base=134208, l1_small_size=0, worker_l1_size=1499136)
CB_BASE = 134208
CB_IN = 8192  # 4 tiles
CB_OUT = 4096  # 2 tiles


def run_op(run, k, name):
    with ttalloc.op(name):
        base = CB_BASE + k * (CB_IN + CB_OUT)
        ttalloc.cb_alloc(0, base, CB_IN, cores=CORES)
        ttalloc.cb_alloc(0, base + CB_IN, CB_OUT, cores=CORES)
        ttalloc.alloc(0, ("out", run, k), "L1", 16384, page_size=TILE)
    ttalloc.free(0, ("out", run, k))


def deallocate_circular_buffers():
    ttalloc.cb_free_all(0)


def main():
    ttalloc.device_open(0, arch="wormhole_b0", **L1)
    for run in range(1, RUNS + 1):
        ttalloc.mark(f"run {run}")
        for k, name in enumerate(OPS):
            run_op(run, k, name)
        deallocate_circular_buffers()
    ttalloc.mark("end")
    ttalloc.device_close(0)
    ttalloc.flush()


if __name__ == "__main__":
    main()
