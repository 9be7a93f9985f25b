"""An L1 out-of-memory caused by fragmentation, unmodified ttnn (no ttalloc import).

Ten 8 MiB interleaved L1 tensors fill the L1 banks; freeing every other one leaves
enough free L1 in total for a 16 MiB tensor, but no hole big enough for its share
of each bank. tt-metal refuses it; the program prints the allocator's message.
"""

import ttnn


def l1_tensor(device, height, width):
    shape = ttnn.Shape([1, 1, height, width])
    return ttnn.allocate_tensor_on_device(shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, ttnn.L1_MEMORY_CONFIG)


def fill(device):
    blocks = [l1_tensor(device, 2048, 2048) for _ in range(10)]
    print("filled: " + " ".join(str(t.buffer_address()) for t in blocks))
    return blocks


def evict_odd(blocks):
    for index in (1, 3, 5, 7, 9):
        ttnn.deallocate(blocks[index])
    return [blocks[index] for index in (0, 2, 4, 6, 8)]


def grow(device):
    try:
        l1_tensor(device, 2048, 4096)
    except RuntimeError as error:
        # tt-metal's text is the line of the error that starts with "Out of Memory:".
        lines = [line for line in str(error).splitlines() if line.startswith("Out of Memory:")]
        print("refused: " + lines[0])
        return
    print("unexpected: the 16 MiB tensor fit")


device = ttnn.open_device(device_id=0)
kept = evict_odd(fill(device))
grow(device)
for tensor in kept:
    ttnn.deallocate(tensor)
ttnn.close_device(device)
print("closed")
