"""A height-sharded L1 out-of-memory, unmodified ttnn (no ttalloc import).

Two height-sharded tensors on the four cores (0,0)-(3,0) take 512 KiB of each
of those cores' L1; a third does not fit in what is left there, although the
other sixty cores are empty. tt-metal refuses it across 4 banks (the shards),
not across every L1 bank; the program prints the allocator's message.
"""

import ttnn

FOUR_CORES = ttnn.CoreRangeSet({ttnn.CoreRange(ttnn.CoreCoord(0, 0), ttnn.CoreCoord(3, 0))})
HEIGHT_SHARDED_L1 = ttnn.MemoryConfig(
    ttnn.TensorMemoryLayout.HEIGHT_SHARDED,
    ttnn.BufferType.L1,
    ttnn.ShardSpec(FOUR_CORES, (512, 512), ttnn.ShardOrientation.ROW_MAJOR),
)


def sharded(device):
    shape = ttnn.Shape([1, 1, 2048, 512])
    return ttnn.allocate_tensor_on_device(shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, HEIGHT_SHARDED_L1)


device = ttnn.open_device(device_id=0)
kept = [sharded(device), sharded(device)]
print("placed: " + " ".join(str(t.buffer_address()) for t in kept))
try:
    sharded(device)
    print("unexpected: the third tensor fit")
except RuntimeError as error:
    lines = [line for line in str(error).splitlines() if line.startswith("Out of Memory:")]
    print("refused: " + lines[0])
for tensor in kept:
    ttnn.deallocate(tensor)
ttnn.close_device(device)
print("closed")
