"""Buffers released through a path that never reports the free.

Mesh device-local buffers were released by `mark_as_deallocated()`, which made
no tracking call: the memory is really returned on the device, but the tracker
never hears of it. A recording therefore shows them as never freed.
"""
import ttalloc

MESH = [0, 1]  # a 1x2 mesh
TILE = 2048
RUNS = 3


def allocate_device_local(run, d, i):
    ttalloc.alloc(d, ("local", run, d, i), "DRAM", 32768, page_size=TILE)


def mark_as_deallocated(run, d, i):
    # The bug: releases the device-local buffer without a tracking call.
    pass


def run_once(run):
    for d in MESH:
        ttalloc.device_open(d, arch="wormhole_b0")
    with ttalloc.op("ttnn.distribute_tensor"):
        for d in MESH:
            for i in range(2):
                allocate_device_local(run, d, i)
    with ttalloc.op("ttnn.relu"):
        for d in MESH:
            ttalloc.alloc(d, ("act", run, d), "L1", 8192, page_size=TILE)
    with ttalloc.op("ttnn.deallocate"):
        for d in MESH:
            ttalloc.free(d, ("act", run, d))
            for i in range(2):
                mark_as_deallocated(run, d, i)
    for d in MESH:
        ttalloc.device_close(d)


def main():
    for run in range(1, RUNS + 1):
        ttalloc.mark(f"run {run}")
        run_once(run)
    ttalloc.mark("end")
    ttalloc.flush()


if __name__ == "__main__":
    main()
