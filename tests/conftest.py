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


#: Parametrised cases on the heaviest encoder run in the slow tier only: EfficientNetV2-S covers the same family
#: (torchvision's EfficientNetV2 through our adapter) in the fast tier at a third of the cost.
SLOW_CASE_IDS = ("efficientnetv2_m",)


def pytest_collection_modifyitems(config, items):
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and any(part in SLOW_CASE_IDS for part in callspec.id.split("-")):
            item.add_marker(pytest.mark.slow)
