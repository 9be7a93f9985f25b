"""Fragmentation-driven out-of-memory on a device kept open.

Ten 8 MiB interleaved L1 buffers (131072 B per bank) fill most of L1; every
other one is freed; a 12 MiB buffer (196608 B per bank) then fails although
709568 B per bank are free, because the largest free block is 185280 B.
"""
import ttalloc

TILE = 2048
MIB = 1 << 20
L1 = dict(l1_banks=64, l1_bank_size=1364928, l1_alignment=16,
          l1_unreserved_base=134208, l1_small_size=0, worker_l1_size=1499136)


def fill_kv_cache():
    for i in range(10):
        ttalloc.alloc(0, ("kv", i), "L1", 8 * MIB, page_size=TILE)


def evict():
    for i in range(1, 10, 2):
        ttalloc.free(0, ("kv", i))


def grow():
    with ttalloc.op("ttnn.concat"):
        ttalloc.alloc(0, "grown", "L1", 12 * MIB, page_size=TILE)


def main():
    ttalloc.device_open(0, arch="wormhole_b0", **L1)
    ttalloc.mark("fill")
    fill_kv_cache()
    ttalloc.mark("evict")
    evict()
    ttalloc.mark("grow")
    grow()
    # tt-metal raises here; the device is never closed.
    ttalloc.flush()


if __name__ == "__main__":
    main()
