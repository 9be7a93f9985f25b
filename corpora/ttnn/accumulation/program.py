"""The seed's accumulation pattern on one N150 chip, unmodified ttnn (no ttalloc import).

Three runs: open the device, upload a scratch tensor, add it to itself, allocate a
"cache" tensor, free the scratch and the sum, and close the device while the cache is
still alive. The cache of every run outlives its device: that is the leak to find.
"""

import ttnn

kept = []  # the bug: tensors kept past the close of the device they live on


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
    kept.append(cache)
    ttnn.close_device(device)


for index in (1, 2, 3):
    run(index)
print(f"kept {len(kept)} cache tensors past the close of their device")
