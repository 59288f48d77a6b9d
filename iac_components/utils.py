"""Small helpers shared across the package: atomic file writes."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["as_bool", "atomic_write", "machine_info", "write_json_atomic"]


def as_bool(value: Any) -> bool:
    """A boolean from a config or command-line value: fire passes ``--amp false`` as the string "false", which
    Python finds true; ``"false"``, ``"False"``, ``"0"``, ``"no"``, ``"off"`` and ``""`` are False.

    Raises:
        ValueError: a string that is not a boolean.
    """
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("false", "0", "no", "off", "none", ""):
            return False
        if low in ("true", "1", "yes", "on"):
            return True
        raise ValueError(f"not a boolean: {value!r}")
    return bool(value)


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` for a temporary file next to ``path``, then rename it onto ``path``.

    A reader never sees a half-written file and an interrupted write leaves only the old file (or none).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give the result the permissions open() would
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json_atomic(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=indent)
            f.write("\n")

    return atomic_write(path, write)


def machine_info() -> dict[str, Any]:
    """What a measurement ran on: CPU model (/proc/cpuinfo), cores, load average, GPU if any, versions."""
    import monai
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = []
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_at_start": load,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "monai": monai.__version__,
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def machine_line(machine: Mapping[str, Any]) -> str:
    """The ``Machine: ...`` line of a benchmark's markdown, from :func:`machine_info`'s record (torch's version as
    recorded there)."""
    return (f"Machine: {machine['cpu']}, {machine['cores']} cores, load {' '.join(machine['load_average_at_start'])} at "
            f"the start, {machine['torch_threads']} torch threads, torch {machine['torch']}")
