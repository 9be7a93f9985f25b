"""Tests that free everything, leak, leak once (a cache), leak in one
parameter, and stay under or go over a peak limit. The expected results
(reasoned in tests/pytest_plugin.rs) find the allocating lines by their
`# site:` comments."""

import pytest
import ttnn

_kept = []   # tensors a test "forgets" to free (module global: they stay allocated)
_cache = {}  # a cache that fills on first use and is reused after

SHAPE = ttnn.Shape([1, 1, 32, 256])  # 32 x 256 bfloat16 = 16,384 B


def test_frees_everything(device):
    a = ttnn.allocate_tensor_on_device(SHAPE, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, ttnn.L1_MEMORY_CONFIG)
    b = ttnn.add(a, a)
    ttnn.deallocate(a)
    ttnn.deallocate(b)


def test_leaks_l1(device):
    a = ttnn.allocate_tensor_on_device(SHAPE, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, ttnn.L1_MEMORY_CONFIG)  # site: leaks_l1
    _kept.append(a)


def scratch(device, key):
    """A 4,096 B L1 scratch tensor made on first use and kept (a cache)."""
    if key not in _cache:
        _cache[key] = ttnn.allocate_tensor_on_device(  # site: scratch
            ttnn.Shape([1, 1, 32, 64]), ttnn.bfloat16, ttnn.TILE_LAYOUT, device, ttnn.L1_MEMORY_CONFIG)
    return _cache[key]


@pytest.mark.ttalloc_limit_leaks(0, warmups=1)
def test_cache_fills_once(device):
    scratch(device, "warmed")
    a = ttnn.allocate_tensor_on_device(SHAPE, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, ttnn.L1_MEMORY_CONFIG)
    ttnn.deallocate(a)


def test_cache_without_warmup(device):
    scratch(device, "cold")


@pytest.mark.parametrize("keep", [False, True], ids=["clean", "leaky"])
def test_param(device, keep):
    a = ttnn.allocate_tensor_on_device(  # site: param
        ttnn.Shape([1, 1, 32, 128]), ttnn.bfloat16, ttnn.TILE_LAYOUT, device, ttnn.DRAM_MEMORY_CONFIG)
    if keep:
        _kept.append(a)
    else:
        ttnn.deallocate(a)


class TestPeak:
    @pytest.mark.ttalloc_limit_peak(32 * 1024, buffer_type="L1")
    def test_peak_within_limit(self, device):
        a = ttnn.allocate_tensor_on_device(SHAPE, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, ttnn.L1_MEMORY_CONFIG)
        b = ttnn.allocate_tensor_on_device(SHAPE, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, ttnn.L1_MEMORY_CONFIG)
        ttnn.deallocate(a)
        ttnn.deallocate(b)

    @pytest.mark.ttalloc_limit_peak(16 * 1024, buffer_type="L1")
    def test_peak_over_limit(self, device):
        a = ttnn.allocate_tensor_on_device(SHAPE, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, ttnn.L1_MEMORY_CONFIG)
        b = ttnn.allocate_tensor_on_device(SHAPE, ttnn.bfloat16, ttnn.TILE_LAYOUT, device, ttnn.L1_MEMORY_CONFIG)
        ttnn.deallocate(a)
        ttnn.deallocate(b)
