"""The `device` fixture of tt-metal's test suites: one device per test,
closed in the test's teardown (so what a test leaves behind outlives it)."""

import pytest
import ttnn


@pytest.fixture
def device():
    d = ttnn.open_device(device_id=0)
    yield d
    ttnn.close_device(d)
