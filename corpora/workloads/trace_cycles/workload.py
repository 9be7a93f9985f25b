"""Trace capture/release cycles in the DRAM trace region.

Each run captures a prefill trace and a decode trace, replays them, and
releases only the decode trace: the prefill trace of every run stays in the
trace region, which fills up run after run.
"""
import ttalloc

TILE = 2048
RUNS = 3
PREFILL = 3145728  # 3 MiB: 262144 B in each of the 12 DRAM banks
DECODE = 1572864  # 1.5 MiB: 131072 B per bank
DRAM = dict(dram_banks=12, dram_bank_size=1072693216, dram_alignment=32,
            trace_region_size=1048576)


def capture_prefill(run):
    ttalloc.trace_capture(0, 2 * run - 1, PREFILL)


def capture_decode(run):
    ttalloc.trace_capture(0, 2 * run, DECODE)


def main():
    ttalloc.device_open(0, arch="wormhole_b0", **DRAM)
    for run in range(1, RUNS + 1):
        ttalloc.mark(f"run {run}")
        with ttalloc.op("ttnn.from_torch"):
            ttalloc.alloc(0, ("input", run), "DRAM", 262144, page_size=TILE)
        capture_prefill(run)
        capture_decode(run)
        with ttalloc.op("ttnn.execute_trace"):
            pass
        ttalloc.trace_release(0, 2 * run)
        ttalloc.free(0, ("input", run))
    ttalloc.mark("end")
    ttalloc.device_close(0)
    ttalloc.flush()


if __name__ == "__main__":
    main()
