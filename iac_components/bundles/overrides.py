"""Refuse a misspelt override before a workflow does any work.

``python -m monai.bundle run --config_file train.json --epochz 1`` adds a new key ``epochz`` to the config and
trains the default 100 epochs: MONAI accepts any override. Every workflow of the collection calls
:func:`check_cli_overrides` first in its ``initialize`` list: when the process is ``python -m monai.bundle run``,
each ``--key`` of the command line must name an id that one of the run's config files defines (nested ids with
``#``, list items by index) or the id the command runs (``run where --where '$print(@bundle_root)'``), else the
run stops with one line naming the key and the closest valid one.
In-process runs (MONAI Label, :func:`~iac_components.bundles.run.run_workflow`) pass their overrides in code and
are not checked.

The module imports only the standard library, so that ``inference.json`` can call it where iac_components is
installed and skip it where it is not (a release used without the library).
"""

from __future__ import annotations

import ast
import difflib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["MONAI_RUN_ARGS", "SHARED_ARGS", "check_cli_overrides", "config_ids", "run_first_hint", "unknown_overrides"]

#: ``monai.bundle run``'s own arguments (not config ids).
MONAI_RUN_ARGS = frozenset({"run_id", "init_id", "final_id", "meta_file", "config_file", "logging_file", "tracking",
                            "args_file", "workflow_type", "workflow_name"})  # fmt: skip


#: Overrides that every workflow of a bundle takes with the same meaning: a hint to run another workflow first
#: repeats the ones the user gave (their data, folders, geometry, device).
SHARED_ARGS = ("dataset", "dataset_dir", "cache_dir", "ckpt_dir", "output_dir", "device", "amp", "seed", "split_seed",
               "split_fractions", "spacing", "spatial_size", "num_workers", "patch_size", "samples_per_volume",
               "sw_overlap")  # fmt: skip


def run_first_hint(workflow: str, bundle_root: str, argv: Sequence[str] | None = None) -> str:
    """The command that makes a missing input, for the one-line error: ``python -m monai.bundle run`` of
    ``workflow`` in this bundle, with the user's own shared overrides (``--ckpt_dir X`` and so on) repeated."""
    import shlex

    from iac_components.bundles.overlays import command_files

    root = os.path.abspath(bundle_root)
    files = command_files(os.path.join(root, "configs", workflow + ".json"))
    command = (f"python -m monai.bundle run{' search' if workflow == 'search' else ''} --config_file "
               f"{shlex.quote(files)} --bundle_root {shlex.quote(root)}")
    argv = list(sys.argv if argv is None else argv)
    if _is_monai_bundle_run(argv):
        args = argv[2:]
        for n, tok in enumerate(args):
            key, _, inline = tok[2:].partition("=") if tok.startswith("--") else ("", "", "")
            if key in SHARED_ARGS:
                value = inline if inline else (args[n + 1] if n + 1 < len(args) else "")
                command += f" --{key} {shlex.quote(value)}"
    return command


def _as_files(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        return [str(v) for v in ast.literal_eval(value)]
    return [value]


def config_ids(files: Sequence[str]) -> set[str]:
    """Every id the config files define: top-level keys, nested keys joined with ``#`` and list indices, with a
    key that is itself a path (``"train#handlers"``) expanded."""
    ids: set[str] = set()

    def walk(prefix: str, node: Any) -> None:
        if prefix:
            ids.add(prefix)
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            walk(f"{prefix}#{k}" if prefix else str(k), v)

    for f in files:
        with open(f) as fh:
            walk("", json.load(fh))
    return ids


def _parse_argv(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
    """The config files and the ``--key`` overrides of a ``monai.bundle run`` command line."""
    keys: dict[str, str] = {}
    files: list[str] = []
    args = list(argv)
    for n, tok in enumerate(args):
        if not tok.startswith("--") or tok == "--":
            continue
        key, _, inline = tok[2:].partition("=")
        value = inline if inline else (args[n + 1] if n + 1 < len(args) else "")
        if key == "config_file":
            files += _as_files(value)
        keys[key] = tok
    return files, keys


def unknown_overrides(argv: Sequence[str]) -> list[tuple[str, str | None]]:
    """The ``--key`` overrides of ``argv`` (a ``monai.bundle run`` command line) that no config file of the run
    defines, each with the closest id that one does (or None)."""
    files, keys = _parse_argv(argv)
    if not files:
        return []
    ids = config_ids(files)
    # the ids this command runs may be defined on the command line itself (`run where --where '$print(...)'`)
    args = list(argv)
    ran = {args[0]} if args and not args[0].startswith("--") else set()
    for n, tok in enumerate(args[:-1]):
        if tok in ("--run_id", "--init_id", "--final_id"):
            ran.add(args[n + 1])
    ids |= {r.replace("::", "#") for r in ran}
    bad = []
    for key in keys:
        path = key.replace("::", "#")  # MONAI's separator is '::' since 1.5, '#' still works
        if key in MONAI_RUN_ARGS or path in ids or path.startswith("_meta_#"):
            continue
        close = difflib.get_close_matches(key, sorted(ids), n=1, cutoff=0.6)
        bad.append((key, close[0] if close else None))
    return bad


def _is_monai_bundle_run(argv: Sequence[str]) -> bool:
    return bool(argv) and os.path.normpath(argv[0]).endswith(os.path.join("monai", "bundle", "__main__.py")) and (
        len(argv) > 1 and argv[1] == "run"
    )


def check_cli_overrides(argv: Sequence[str] | None = None) -> None:
    """Stop the run (one ``error:`` line, exit status 1) when a ``--key`` of ``python -m monai.bundle run ...``
    names no id of the run's config files. Does nothing in other processes."""
    argv = list(sys.argv if argv is None else argv)
    if not _is_monai_bundle_run(argv):
        return
    bad = unknown_overrides(argv[2:])
    if bad:
        key, close = bad[0]
        hint = f"; did you mean --{close}?" if close else "; see the bundle's docs/README.md for its settings"
        raise SystemExit(f"error: unknown override --{key}: no config file of this run defines '{key}'{hint}")
