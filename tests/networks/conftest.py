"""Fixtures shared by the network tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_intra_op_thread():
    """Run each network test on one intra-op thread, then restore torch's setting.

    These tests push tiny tensors, which gain nothing from a second thread; on a shared 2-core machine (load ~4)
    OpenMP's barrier made two threads 10-500x slower than one (this directory: 51 s with one thread, not done
    after 400 s with two).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
