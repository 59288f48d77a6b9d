"""Independent runs side by side: a task graph run on a fixed set of slots (one process per slot at a time).

``iac benchmark --devices cuda`` gives each visible GPU a slot (``CUDA_VISIBLE_DEVICES`` set to that GPU alone, so
the process sees it as ``cuda:0``); ``--jobs N`` gives each device N slots (on the CPU: N processes sharing the
cores, each with its share of the threads). A task starts when everything it needs has finished and a slot is
free; tasks are taken in the order given, so listing the longest first (the full searches) keeps the slots busy.
A failed task starts nothing more: the running ones finish, then the error names the task and its log.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ScheduleError", "Slot", "device_slots", "run_graph", "topological"]


class ScheduleError(ValueError):
    """A step that failed, or slots or a task graph that cannot run; the message is one line."""


@dataclass(frozen=True)
class Slot:
    """Where one process runs: the torch ``device`` it is told to use, extra environment, torch threads."""

    device: str
    env: Mapping[str, str] = field(default_factory=dict)
    threads: int | None = None


def _visible_gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [v.strip() for v in visible.split(",") if v.strip() not in ("", "-1")]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def device_slots(devices: str | int | Sequence[str | int] = "cpu", jobs: int = 1, threads: int | None = None) -> list[Slot]:
    """The slots for ``devices``: ``"cpu"``; ``"cuda"`` (every visible GPU); or GPU ids ``"0,1"`` / ``"cuda:0,cuda:1"``
    (as the machine numbers them, before any ``CUDA_VISIBLE_DEVICES``); ``jobs`` processes per device.

    Raises:
        ScheduleError: one line, for ``jobs < 1``, an unknown device, or ``"cuda"`` with no GPU visible.
    """
    if int(jobs) < 1:
        raise ScheduleError(f"jobs={jobs}: give at least 1 process per device")
    names = [str(d).strip() for d in (devices.split(",") if isinstance(devices, str) else
                                      [devices] if isinstance(devices, int) else devices)]  # fmt: skip
    if names == ["cpu"]:
        per = threads or max(1, (os.cpu_count() or 1) // int(jobs))
        return [Slot("cpu", {}, per) for _ in range(int(jobs))]
    if names == ["cuda"]:
        gpus = _visible_gpus()
        if not gpus:
            raise ScheduleError("devices='cuda' but no CUDA device is visible; run with --devices cpu")
    else:
        gpus = [n.removeprefix("cuda:") for n in names]
        bad = [n for n, g in zip(names, gpus) if not g.isdigit()]
        if bad:
            raise ScheduleError(f"unknown device {bad[0]!r}: use 'cpu', 'cuda' (every visible GPU) or GPU ids like '0,1'")
    # each process its share of the cores (torch would give every process all of them)
    per = threads or max(1, (os.cpu_count() or 1) // (len(gpus) * int(jobs)))
    return [Slot("cuda:0", {"CUDA_VISIBLE_DEVICES": g}, per) for g in gpus for _ in range(int(jobs))]


def topological(tasks: Mapping[str, Sequence[str]]) -> list[str]:
    """The tasks in an order that runs every task after what it needs, keeping the given order where it can.

    Raises:
        ScheduleError: one line naming a task that needs an unknown task, or one on a cycle.
    """
    for name, needs in tasks.items():
        for n in needs:
            if n not in tasks:
                raise ScheduleError(f"task {name!r} needs {n!r}, which is not a task")
    done: list[str] = []
    left = list(tasks)
    while left:
        ready = next((t for t in left if all(n in done for n in tasks[t])), None)
        if ready is None:
            raise ScheduleError(f"tasks {left} need each other (a cycle)")
        done.append(ready)
        left.remove(ready)
    return done


def run_graph(
    tasks: Mapping[str, Sequence[str]],
    start: Callable[[str, Slot], tuple[subprocess.Popen, Path | None]],
    slots: Sequence[Slot],
    poll_s: float = 0.2,
) -> list[str]:
    """Run every task once what it ``needs`` has finished, at most one per slot at a time; returns the tasks in the
    order they finished. ``start(name, slot)`` launches a task and returns its process and its log file.

    Raises:
        ScheduleError: one line naming the first task that failed (exit code and log); nothing new starts after it.
    """
    topological(tasks)  # unknown needs and cycles fail before anything starts
    pending = list(tasks)
    running: dict[int, tuple[str, subprocess.Popen, Path | None]] = {}
    finished: list[str] = []
    failed: str | None = None
    while pending or running:
        for i, (name, proc, log) in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            del running[i]
            if code == 0:
                finished.append(name)
            elif failed is None:
                failed = f"task {name!r} failed with exit code {code}" + (f"; its log: {log}" if log else "")
        if failed is None:
            for i, slot in enumerate(slots):
                if i in running:
                    continue
                ready = next((t for t in pending if all(n in finished for n in tasks[t])), None)
                if ready is None:
                    break
                pending.remove(ready)
                proc, log = start(ready, slot)
                running[i] = (ready, proc, log)
        elif not running:
            break
        if running:
            time.sleep(poll_s)
    if failed is not None:
        raise ScheduleError(failed)
    return finished
