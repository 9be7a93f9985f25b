"""Program-cache growth, unmodified ttnn (no ttalloc import).

One device open; four rounds of matmul on a new square shape each (a new
matmul program per round) followed by an add (one add program, reused). Every
tensor is freed each round: the cache grows, device memory does not.
"""

import ttnn


def dram_tensor(device, size):
    shape = ttnn.Shape([1, 1, size, size])
    return ttnn.allocate_tensor_on_device(shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, ttnn.DRAM_MEMORY_CONFIG)


def round_of(device, size):
    a = dram_tensor(device, size)
    b = dram_tensor(device, size)
    product = ttnn.matmul(a, b)
    total = ttnn.add(product, a)
    addresses = [t.buffer_address() for t in (a, b, product, total)]
    print(f"{size}x{size}: tensors at {addresses}, program cache entries {device.num_program_cache_entries()}")
    for t in (a, b, product, total):
        ttnn.deallocate(t)


device = ttnn.open_device(device_id=0)
for size in (64, 128, 256, 512):
    round_of(device, size)
ttnn.close_device(device)
print("closed")
