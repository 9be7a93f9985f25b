"""A module-scoped device and a module-scoped fixture holding a DRAM tensor
for every test of the module: what the fixture holds is no test's leak."""

import pytest
import ttnn


@pytest.fixture(scope="module")
def device():
    d = ttnn.open_device(device_id=0)
    yield d
    ttnn.close_device(d)


@pytest.fixture(scope="module")
def weights(device):
    w = ttnn.allocate_tensor_on_device(ttnn.Shape([1, 1, 32, 1024]), ttnn.bfloat16, ttnn.TILE_LAYOUT, device,
                                       ttnn.DRAM_MEMORY_CONFIG)  # 65,536 B DRAM
    yield w
    ttnn.deallocate(w)


def test_uses_weights(device, weights):
    out = ttnn.add(weights, weights)
    ttnn.deallocate(out)


def test_uses_weights_again(device, weights):
    out = ttnn.add(weights, weights)
    ttnn.deallocate(out)
