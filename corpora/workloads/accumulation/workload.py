"""The seed's accumulation test (tt-metal memory_utilization_monitor/test_accumulation.py).

Three runs; each run opens a 2x4 mesh (devices 0-7), uploads a 2x2x128x128
bf16 tensor sharded over the mesh (one 16 KiB shard per device), deallocates
it and closes the mesh. MeshDevice initialisation leaves a command-queue DRAM
buffer and an L1 dispatch scratch buffer on device 0 that are never freed, so
every run leaves 36 KiB DRAM + 22 KiB L1 behind.
"""
import ttalloc

MESH = list(range(8))  # 2x4 mesh
TILE = 2048  # bf16 32x32 tile page
RUNS = 3


def open_mesh(run):
    for d in MESH:
        ttalloc.device_open(d, arch="wormhole_b0")
    # Per-device dispatch ring buffer: allocated at open, freed at close.
    for d in MESH:
        ttalloc.alloc(d, ("dispatch", run, d), "DRAM", 65536, page_size=TILE)
    mesh_device_initialize(run)


def mesh_device_initialize(run):
    # The remainder: created on device 0, never freed, outlives the device.
    ttalloc.alloc(0, ("cq", run), "DRAM", 36864, page_size=TILE)
    ttalloc.alloc(0, ("dispatch_l1", run), "L1", 22528, page_size=TILE)


def upload_tensor(run):
    # 2x2x128x128 bf16 = 131072 B, sharded over the 8 devices: 16384 B (8 tiles) each.
    with ttalloc.op("ttnn.from_torch"):
        for d in MESH:
            ttalloc.alloc(d, ("tensor", run, d), "DRAM", 16384, page_size=TILE)


def deallocate_tensor(run):
    with ttalloc.op("ttnn.deallocate"):
        for d in MESH:
            ttalloc.free(d, ("tensor", run, d))


def close_mesh(run):
    for d in MESH:
        ttalloc.free(d, ("dispatch", run, d))
    for d in MESH:
        ttalloc.device_close(d)


def main():
    for run in range(1, RUNS + 1):
        ttalloc.mark(f"run {run}")
        open_mesh(run)
        upload_tensor(run)
        deallocate_tensor(run)
        close_mesh(run)
    ttalloc.mark("end")
    ttalloc.flush()


if __name__ == "__main__":
    main()
