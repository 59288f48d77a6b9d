"""Project-wide test settings."""

from __future__ import annotations

import os

import pytest
import torch

# the processes the tests start (workflows, torchrun ranks, nnU-Net's entry points, servers) inherit one OpenMP
# thread: two pytest-xdist workers already fill the two cores, and OpenMP threads spin-waiting for a busy core
# slow a process down many times over
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _single_torch_thread():
    # the tests run tiny tensors: one thread is faster, and it does not collapse when another process
    # shares the two cores (OpenMP threads spin-waiting for a busy core)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


#: Parametrised cases on the heaviest encoder run in the slow tier only: EfficientNetV2-S covers the same family
#: (torchvision's EfficientNetV2 through our adapter) in the fast tier at a third of the cost.
SLOW_CASE_IDS = ("efficientnetv2_m",)


def pytest_collection_modifyitems(config, items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and any(part in SLOW_CASE_IDS for part in callspec.id.split("-")):
            item.add_marker(pytest.mark.slow)
