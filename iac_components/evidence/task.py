"""One step of one benchmark seed in its own process: ``python -m iac_components.evidence.task '<json>'``.

The JSON holds a :class:`~iac_components.evidence.runner.SeedRun`'s fields (or, with ``"study": "cells"``, a
:class:`~iac_components.evidence.cells.CellStudy`'s), the ``task`` to run and the torch ``threads``;
:func:`~iac_components.evidence.runner.run_benchmark` launches these when it runs steps side by side.
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str]) -> None:
    import torch

    from iac_components.evidence.cells import CellStudy
    from iac_components.evidence.runner import SeedRun

    spec = json.loads(argv[0])
    task, threads, study = spec.pop("task"), spec.pop("threads", None), spec.pop("study", "seeds")
    if threads:
        torch.set_num_threads(int(threads))
    (CellStudy if study == "cells" else SeedRun)(**spec).run_task(task)


if __name__ == "__main__":
    main(sys.argv[1:])
