"""A clean run: the accumulation test without the remainder. Nothing is left behind."""
import ttalloc

MESH = list(range(8))
TILE = 2048
RUNS = 3


def open_mesh(run):
    for d in MESH:
        ttalloc.device_open(d, arch="wormhole_b0")
    for d in MESH:
        ttalloc.alloc(d, ("dispatch", run, d), "DRAM", 65536, page_size=TILE)
    # Command-queue and L1 scratch buffers exist here too, but are released at close.
    ttalloc.alloc(0, ("cq", run), "DRAM", 36864, page_size=TILE)
    ttalloc.alloc(0, ("dispatch_l1", run), "L1", 22528, page_size=TILE)


def run_model(run):
    with ttalloc.op("ttnn.from_torch"):
        for d in MESH:
            ttalloc.alloc(d, ("tensor", run, d), "DRAM", 16384, page_size=TILE)
    with ttalloc.op("ttnn.add"):
        for d in MESH:
            ttalloc.alloc(d, ("out", run, d), "L1", 16384, page_size=TILE)
    with ttalloc.op("ttnn.deallocate"):
        for d in MESH:
            ttalloc.free(d, ("tensor", run, d))
            ttalloc.free(d, ("out", run, d))


def close_mesh(run):
    ttalloc.free(0, ("cq", run))
    ttalloc.free(0, ("dispatch_l1", run))
    for d in MESH:
        ttalloc.free(d, ("dispatch", run, d))
    for d in MESH:
        ttalloc.device_close(d)


def main():
    for run in range(1, RUNS + 1):
        ttalloc.mark(f"run {run}")
        open_mesh(run)
        run_model(run)
        close_mesh(run)
    ttalloc.mark("end")
    ttalloc.flush()


if __name__ == "__main__":
    main()
