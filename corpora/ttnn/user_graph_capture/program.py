"""A program that runs its own graph captures and asserts on them, unmodified ttnn.

It must print and assert the same with or without a recorder: a NORMAL capture
around one add (3 buffers allocated and freed, the add's 3 circular buffers,
1 program), then a NO_DISPATCH capture around another add, where tt-metal hands
out address 0 and nothing reaches the allocator.
"""

from collections import Counter

import ttnn

graph = ttnn._ttnn.graph


def tensor_64x64(device, memory_config):
    shape = ttnn.Shape([1, 1, 64, 64])
    return ttnn.allocate_tensor_on_device(shape, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, memory_config)


def add_and_free(device):
    a = tensor_64x64(device, ttnn.DRAM_MEMORY_CONFIG)
    b = tensor_64x64(device, ttnn.L1_MEMORY_CONFIG)
    total = ttnn.add(a, b)
    for t in (a, b, total):
        ttnn.deallocate(t)


def census(nodes):
    kinds = Counter(node["node_type"] for node in nodes)
    allocs = [node["params"] for node in nodes if node["node_type"] == "buffer_allocate"]
    return kinds, [(p["type"], p["address"], p["size"]) for p in allocs]


device = ttnn.open_device(device_id=0)

graph.begin_graph_capture(graph.RunMode.NORMAL)
add_and_free(device)
kinds, allocs = census(graph.end_graph_capture())
print(f"normal: {kinds['buffer_allocate']} allocated, {kinds['buffer_deallocate']} freed, "
      f"{kinds['circular_buffer_allocate']} circular buffers, {kinds['program_execution']} programs")
print(f"normal: buffers {allocs}")
assert kinds["buffer_allocate"] == 3 and kinds["buffer_deallocate"] == 3, kinds
assert kinds["circular_buffer_allocate"] == 3 and kinds["program_execution"] == 1, kinds

graph.begin_graph_capture(graph.RunMode.NO_DISPATCH)
add_and_free(device)
kinds, allocs = census(graph.end_graph_capture())
print(f"no_dispatch: {kinds['buffer_allocate']} allocated, {kinds['buffer_deallocate']} freed, "
      f"{kinds['circular_buffer_allocate']} circular buffers, {kinds['program_execution']} programs")
print(f"no_dispatch: buffers {allocs}")
assert all(address == 0 for _, address, _ in allocs), allocs

ttnn.close_device(device)
print("closed")
