"""Project-wide test settings."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_torch_thread():
    # the tests run tiny tensors: one thread is faster, and it does not collapse when another process
    # shares the two cores (OpenMP threads spin-waiting for a busy core)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
