"""The seed's test_accumulation.py on a 2x4 mesh (T3K descriptor), unmodified ttnn.

Three runs: open the 2x4 mesh, upload an 8x2x128x128 bfloat16 tensor sharded on
dim 0 (one 1x2x128x128 shard per chip), deallocate it, close the mesh. Run with
TT_METAL_MOCK_CLUSTER_DESC_PATH=<prefix>/descriptors/t3k.yaml. numpy only, no torch.
"""

import numpy
import ttnn


def run(index, host):
    mesh = ttnn.open_mesh_device(ttnn.MeshShape(2, 4))
    mapper = ttnn.shard_tensor_to_mesh_mapper(mesh, 0)
    sharded = ttnn.distribute_tensor(host, mapper)
    tensor = ttnn.to_device(sharded, mesh, memory_config=ttnn.DRAM_MEMORY_CONFIG)
    shards = ttnn.get_device_tensors(tensor)
    print(
        f"run {index}: chips {sorted(mesh.get_device_ids())}, {len(shards)} shards of "
        f"{list(shards[0].shape)} at {tensor.buffer_address()}"
    )
    ttnn.deallocate(tensor)
    ttnn.close_mesh_device(mesh)


host = ttnn.to_layout(ttnn.Tensor(numpy.zeros((8, 2, 128, 128), dtype=numpy.float32), ttnn.bfloat16), ttnn.TILE_LAYOUT)
for index in (1, 2, 3):
    run(index, host)
print("done")
