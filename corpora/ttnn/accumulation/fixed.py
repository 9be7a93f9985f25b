"""program.py with its leak fixed (the pair tests/report_ttnn.rs diffs): each run
deallocates its cache tensor before closing the device instead of keeping it, so
nothing outlives its device. Otherwise the same program, the same addresses and the
same peak (scratch + cache, 163840 B DRAM).
"""

import ttnn

kept = []


def dram_tensor(device, height, width):
    shape = ttnn.Shape([1, 1, height, width])
    return ttnn.allocate_tensor_on_device(shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, ttnn.DRAM_MEMORY_CONFIG)


def run(index):
    device = ttnn.open_device(device_id=0)
    scratch = dram_tensor(device, 128, 128)
    total = ttnn.add(scratch, scratch)
    print(f"run {index}: scratch at {scratch.buffer_address()}, sum at {total.buffer_address()}")
    ttnn.deallocate(total)
    cache = dram_tensor(device, 256, 256)
    print(f"run {index}: cache at {cache.buffer_address()}")
    ttnn.deallocate(scratch)
    ttnn.deallocate(cache)  # the fix
    ttnn.close_device(device)


for index in (1, 2, 3):
    run(index)
print(f"kept {len(kept)} cache tensors past the close of their device")
