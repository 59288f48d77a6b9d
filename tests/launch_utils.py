"""Launching real processes from tests: a free loopback port, and ``torchrun`` bounded by a timeout."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (a server started right after binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*args: str, nproc: int = 2, cwd: Path | str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node NPROC ARGS`` on 127.0.0.1 (gloo over loopback, one thread per rank); a run
    that does not finish in ``timeout`` seconds (a rank left waiting in a collective) fails the test."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", *map(str, args)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # torchrun and its ranks
        out, err = proc.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s (a rank waiting in a collective?):\n{err[-3000:]}")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-3000:]}\n{err[-5000:]}"
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
