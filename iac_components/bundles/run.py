"""Running a bundle workflow in this process, as ``python -m monai.bundle run`` would: the layer the demo, the
evidence runner, packaging and the benchmark scripts share.

* :func:`find_bundle`: a bundle folder of the collection (the repository's ``bundles/<name>`` in a source
  checkout, else one generated from the installed package's template).
* :func:`run_workflow`: one workflow (``initialize``, ``run``, ``finalize``) with overrides, its output in a log file.
* :class:`LogTo`: everything a workflow prints (loggers, stdout, stderr, warnings) into one file.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

__all__ = ["LogTo", "find_bundle", "run_workflow"]


def find_bundle(name: str = "acdc_iac", out: str | Path | None = None) -> Path:
    """The bundle folder ``name``: the repository's ``bundles/<name>`` in a source checkout, else one generated
    under ``<out>/bundles`` from the installed package's template (the same files, as ``iac bundles check``
    guarantees)."""
    repo = Path(__file__).resolve().parents[2] / "bundles" / name
    if (repo / "configs" / "search.json").is_file():
        return repo
    from iac_components.bundles.generator import generate

    target = Path(out or ".") / "bundles"
    generate(target, [name])
    return target / name


def _stream_handlers(stream: Any | None = None) -> list[logging.StreamHandler]:
    """Every plain stream handler of every logger (only those writing to ``stream`` when it is given)."""
    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]  # fmt: skip
    return [h for lg in loggers for h in lg.handlers
            if type(h) is logging.StreamHandler and (stream is None or h.stream is stream)]  # fmt: skip


class LogTo:
    """Send everything a workflow prints (loggers' stream handlers, stdout, stderr, warnings) to one file.

    Handlers of a subclass of :class:`logging.StreamHandler` (a console a caller wants to keep) are left alone.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __enter__(self) -> LogTo:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "w")  # noqa: SIM115 - closed in __exit__
        self.streams = [(h, h.setStream(self.file)) for h in _stream_handlers()]
        self.stack = contextlib.ExitStack()
        self.stack.enter_context(contextlib.redirect_stdout(self.file))
        self.stack.enter_context(contextlib.redirect_stderr(self.file))
        self.stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore")
        self.root = logging.getLogger()
        self.saved = self.root.handlers[:], self.root.level
        handler = logging.StreamHandler(self.file)
        handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
        self.root.handlers, self.root.level = [handler], logging.INFO
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.stack.close()
        self.root.handlers, self.root.level = self.saved
        # handlers made during the run captured the redirected stdout: point them back at the console
        for h in _stream_handlers(self.file):
            h.setStream(sys.stdout)
        for h, old in self.streams:
            h.setStream(old)
        self.file.close()
        return False


def run_workflow(config: str | Path | list[str | Path], run_id: str = "run", log_file: str | Path | None = None,
                 overrides: dict[str, Any] | None = None) -> float:
    """Run one bundle workflow in this process, as ``python -m monai.bundle run RUN_ID --config_file CONFIG``
    would, with ``overrides`` (config ids to values); returns its wall-clock in seconds.

    Args:
        config: the workflow's config file (an overlay brings the files it is merged over: ``configs/search.json``
            runs train.json with search.json over it, :mod:`.overlays`), or a list merged in order (base first, then
            overlays); the bundle's ``metadata.json`` is read from the first file's folder.
        run_id: the expression to run (``run``, or ``search`` for a search).
        log_file: where its output goes (default: the console).
        overrides: config ids (``#`` for nesting) and their values.
    """
    from monai.bundle import ConfigWorkflow

    from iac_components.bundles.overlays import chain_files

    files = chain_files(config) if not isinstance(config, (list, tuple)) else [Path(c) for c in config]
    t = time.perf_counter()
    with LogTo(log_file) if log_file is not None else contextlib.nullcontext():
        workflow = ConfigWorkflow(
            config_file=[str(f) for f in files] if len(files) > 1 else str(files[0]),
            meta_file=str(files[0].parent / "metadata.json"), logging_file=False, run_id=run_id, workflow_type=None,
            **(overrides or {}),
        )  # fmt: skip
        workflow.initialize()
        workflow.run()
        workflow.finalize()
    return time.perf_counter() - t
