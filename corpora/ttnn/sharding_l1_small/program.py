"""Every sharding layout plus L1_SMALL, unmodified ttnn (no ttalloc import).

Opens the device with 32 KiB of L1_SMALL, allocates height-, width- and
block-sharded L1 tensors, a height-sharded tensor whose last shard is half
padding, and a height-sharded L1_SMALL tensor; frees the L1 ones and closes the
device with the L1_SMALL tensor still alive (the leak to find).
"""

import ttnn

ROW_MAJOR = ttnn.ShardOrientation.ROW_MAJOR


def cores(x0, y0, x1, y1):
    return ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(x0, y0), ttnn.CoreCoord(x1, y1))})


def sharded(layout, buffer_type, core_set, shard_shape):
    spec = ttnn.ShardSpec(core_set, shard_shape, ROW_MAJOR)
    return ttnn.MemoryConfig(layout, buffer_type, spec)


def tensor(device, name, height, width, memory_config):
    shape = ttnn.Shape([1, 1, height, width])
    t = ttnn.allocate_tensor_on_device(shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, memory_config)
    config = t.memory_config()
    print(f"{name}: {config.buffer_type} {config.memory_layout} at {t.buffer_address()}")
    return t


HEIGHT = ttnn.TensorMemoryLayout.HEIGHT_SHARDED
WIDTH = ttnn.TensorMemoryLayout.WIDTH_SHARDED
BLOCK = ttnn.TensorMemoryLayout.BLOCK_SHARDED
L1 = ttnn.BufferType.L1
L1_SMALL = ttnn.BufferType.L1_SMALL

device = ttnn.open_device(device_id=0, l1_small_size=32768)
l1_tensors = [
    tensor(device, "height 256x64 on 4x2 cores", 256, 64, sharded(HEIGHT, L1, cores(0, 0, 3, 1), (32, 64))),
    tensor(device, "width 64x512 on 8x1 cores", 64, 512, sharded(WIDTH, L1, cores(0, 0, 7, 0), (64, 64))),
    tensor(device, "block 256x256 on 2x2 cores", 256, 256, sharded(BLOCK, L1, cores(0, 0, 1, 1), (128, 128))),
    tensor(device, "padded 96x64 in 64x64 shards", 96, 64, sharded(HEIGHT, L1, cores(0, 0, 1, 0), (64, 64))),
]
small = sharded(HEIGHT, L1_SMALL, cores(0, 0, 1, 0), (64, 128))
halo = tensor(device, "l1_small 128x128 on 2 cores", 128, 128, small)
view = ttnn.get_memory_view(device, L1)
print(f"L1 allocated per bank: {view.total_bytes_allocated_per_bank}")
view = ttnn.get_memory_view(device, L1_SMALL)
print(f"L1_SMALL allocated per bank: {view.total_bytes_allocated_per_bank}")
for t in l1_tensors:
    ttnn.deallocate(t)
ttnn.close_device(device)
print("closed with the L1_SMALL tensor alive")
