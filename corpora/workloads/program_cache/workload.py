"""A program cache that keeps buffers alive until the device is closed.

Every op with a new shape misses the program cache: its program is compiled,
its kernel binaries are loaded into DRAM, and a DRAM buffer captured by the
program's runtime-argument callback stays alive with the cached program. The
cache is cleared only when the device closes. Each run uses new shapes, so
device memory grows run after run while the device stays open.
"""
import ttalloc

TILE = 2048
RUNS = 3
OPS_PER_RUN = 4


def program_cache_compile(run, k):
    prog = ("matmul", run, k)
    ttalloc.program_load(0, prog, 20480)
    ttalloc.alloc(0, ("captured", run, k), "DRAM", 65536, page_size=TILE)
    return prog


def matmul(run, k):
    with ttalloc.op("ttnn.matmul"):
        program_cache_compile(run, k)
        ttalloc.alloc(0, ("out", run, k), "L1", 32768, page_size=TILE)
    ttalloc.free(0, ("out", run, k))


def clear_program_cache():
    for run in range(1, RUNS + 1):
        for k in range(OPS_PER_RUN):
            ttalloc.free(0, ("captured", run, k))
            ttalloc.program_unload(0, ("matmul", run, k))


def main():
    ttalloc.device_open(0, arch="wormhole_b0")
    for run in range(1, RUNS + 1):
        ttalloc.mark(f"run {run}")
        for k in range(OPS_PER_RUN):
            matmul(run, k)
    ttalloc.mark("close")
    clear_program_cache()
    ttalloc.device_close(0)
    ttalloc.mark("end")
    ttalloc.flush()


if __name__ == "__main__":
    main()
