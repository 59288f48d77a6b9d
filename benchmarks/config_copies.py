"""How much of a bundle's workflow configs repeats itself: the leaf entries of acdc_iac's five workflow files that
are exact copies (same id, same value) of an entry in another of them, and the collection's JSON line count, at a
git revision or in the working tree.

    python benchmarks/config_copies.py            # the working tree
    python benchmarks/config_copies.py 8938872    # a commit (before the overlays: 434 of 674 leaves were copies)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = ("train.json", "search.json", "retrain.json", "evaluate.json", "inference.json")


def leaves(config: Any, prefix: str = "") -> dict[str, str]:
    """Config id (``a#b#0``) -> the JSON text of every leaf entry."""
    out: dict[str, str] = {}
    items = config.items() if isinstance(config, dict) else enumerate(config)
    for key, value in items:
        path = f"{prefix}{key}"
        if isinstance(value, (dict, list)) and value:
            out.update(leaves(value, path + "#"))
        else:
            out[path] = json.dumps(value)
    return out


def copies(files: dict[str, Any]) -> tuple[int, int]:
    """(leaf entries that another file has with the same id and value, all leaf entries)."""
    by_file = {name: leaves(config) for name, config in files.items()}
    total = sum(len(v) for v in by_file.values())
    repeated = 0
    for name, own in by_file.items():
        others = {(i, v) for other, entries in by_file.items() if other != name for i, v in entries.items()}
        repeated += sum((i, v) in others for i, v in own.items())
    return repeated, total


def main(rev: str | None = None) -> dict[str, Any]:
    def read(path: str) -> str:
        if rev is None:
            return (REPO / path).read_text()
        return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=REPO, capture_output=True, text=True, check=True).stdout

    if rev is None:
        paths = [str(p.relative_to(REPO)) for p in (REPO / "bundles").rglob("*") if p.is_file()]
    else:
        paths = subprocess.run(["git", "ls-tree", "-r", "--name-only", rev, "bundles"], cwd=REPO, capture_output=True,
                               text=True, check=True).stdout.split()  # fmt: skip
    files = {n: json.loads(read(f"bundles/acdc_iac/configs/{n}")) for n in WORKFLOWS}
    repeated, total = copies(files)
    result = {"revision": rev or "working tree", "acdc_iac_copied_leaves": repeated, "acdc_iac_leaves": total,
              "collection_files": len(paths),
              "collection_json_lines": sum(len(read(p).splitlines()) for p in paths if p.endswith(".json"))}  # fmt: skip
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
