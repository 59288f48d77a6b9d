"""Which config files of a bundle are merged for each workflow, and how an overlay is cut from a whole workflow.

A bundle keeps each key in one file, the model zoo's way: ``train.json`` is the base, the other training
workflows are overlays merged over it in order (MONAI merges a list of config files key by key, and an id with
``#`` replaces one nested entry)::

    python -m monai.bundle run search --config_file "['configs/train.json','configs/search.json']"

:data:`CHAINS` says, per config file, the files merged before it. ``inference.json`` stands alone: MONAI Label
and the zoo load it by itself, and it runs without ``iac_components``.

The generator writes every workflow whole first (:mod:`.training_configs`) and keeps, per overlay, only what
differs from the merge of its bases (:func:`overlay_of`), so a merged chain equals the whole workflow
(``tests/bundles/test_overlays.py`` checks that for every bundle).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

__all__ = ["CHAINS", "chain_files", "command_files", "load_merged", "merge", "overlay_of"]

#: config file -> the files merged before it (first to last); a file not named here stands alone
CHAINS: dict[str, tuple[str, ...]] = {
    "search.json": ("train.json",),
    "retrain.json": ("train.json",),
    "evaluate.json": ("train.json",),
    "finetune.json": ("train.json", "retrain.json"),
    "baseline_attention_unet.json": ("train.json",),
    "baseline_unetplusplus.json": ("train.json",),
    "multi_gpu_train.json": ("train.json",),
    "multi_gpu_search.json": ("train.json", "search.json"),
    "multi_gpu_evaluate.json": ("train.json", "evaluate.json"),
}


def chain_files(config: str | Path) -> list[Path]:
    """The files a workflow merges, base first: ``configs/search.json`` -> ``[configs/train.json,
    configs/search.json]``; a file that stands alone (or is not a bundle's) -> ``[config]``."""
    config = Path(config)
    return [config.parent / name for name in CHAINS.get(config.name, ())] + [config]


def command_files(config: str | Path) -> str:
    """The ``--config_file`` argument a user types for ``config``: the file itself, or the list of its chain."""
    files = [str(f) for f in chain_files(config)]
    return files[0] if len(files) == 1 else "[" + ",".join(f"'{f}'" for f in files) + "]"


def merge(configs: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge configs as ``monai.bundle`` merges a list of config files (later keys replace earlier ones; an id
    with ``#`` replaces one nested entry)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser({})
    for config in configs:
        for key, value in config.items():
            parser[key] = copy.deepcopy(value)  # the parser edits what it holds: never the caller's dicts
    return parser.get()


def load_merged(config: str | Path) -> dict[str, Any]:
    """The workflow ``config`` as MONAI runs it: its chain's files merged (``configs/search.json`` -> train.json
    with search.json over it)."""
    return merge([json.loads(f.read_text()) for f in chain_files(config)])


def _entries(config: dict[str, Any] | list[Any]) -> dict[Any, Any]:
    return config if isinstance(config, dict) else dict(enumerate(config))


def _replaces_whole(whole: Any, base: Any) -> bool:
    """Whether ``whole`` must replace ``base`` as one entry: not two dicts or two lists of one length, a key of
    ``base`` that ``whole`` lacks (a merge cannot delete one), or another ``_target_`` (another object, not an
    edit of the same one)."""
    if isinstance(whole, list) and isinstance(base, list):
        return len(whole) != len(base)
    if not (isinstance(whole, dict) and isinstance(base, dict)):
        return True
    return not set(base) <= set(whole) or whole.get("_target_") != base.get("_target_")


def overlay_of(whole: dict[str, Any] | list[Any], base: dict[str, Any] | list[Any], prefix: str = "") -> dict[str, Any]:
    """The smallest overlay that turns ``base`` into ``whole`` under :func:`merge`: the keys ``whole`` adds or
    changes, nested ids (``train#trainer#max_epochs``, ``train#handlers#1#interval``) where only part of an entry
    (a dict, or a list of the same length) changes. Top-level keys of
    ``base`` that ``whole`` lacks stay in the merge (nothing of the workflow refers to them)."""
    overlay: dict[str, Any] = {}
    base = _entries(base)
    for key, value in _entries(whole).items():
        if key in base and base[key] == value:
            continue
        if key in base and not _replaces_whole(value, base[key]):
            overlay.update(overlay_of(value, base[key], f"{prefix}{key}#"))  # a list's items by index
        else:
            overlay[f"{prefix}{key}"] = value
    return overlay
