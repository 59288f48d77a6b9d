"""Patient-level segmentation metrics: per-class 3-D Dice and HD95, BraTS regions, the empty-class convention.

Dice comes from ``monai.metrics.compute_dice(ignore_empty=False)`` and HD95 from
``monai.metrics.compute_hausdorff_distance(percentile=95, spacing=...)`` (spacing-aware, in mm), per class
(background excluded) and per region (e.g. BraTS WT/TC/ET, unions of classes).

Empty classes follow the BraTS convention:

* empty in both prediction and ground truth: Dice 1, HD95 0;
* empty in exactly one of them: Dice 0, HD95 = ``hd95_max``, by default the diagonal of the case's image in
  mm (``sqrt(sum((shape * spacing) ** 2))``); BraTS settings use 373.13 mm as the BraTS evaluation does.

Summaries report the mean and standard deviation per class and how many cases were empty in the ground
truth, in the prediction, and in both.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from iac_components.utils import atomic_write, write_json_atomic

__all__ = [
    "case_metrics",
    "summarize_metrics",
    "write_metrics",
    "EMPTY_CONVENTION",
]

EMPTY_CONVENTION = (
    "BraTS convention: a class empty in both prediction and ground truth scores Dice 1 and HD95 0; empty in "
    "exactly one scores Dice 0 and HD95 = hd95_max (default: the image diagonal in mm; BraTS: 373.13 mm)"
)


def _masks(labels: torch.Tensor, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """(1, G, *spatial) bool: channel g is ``labels`` in ``groups[g]``."""
    return torch.stack([torch.isin(labels, torch.as_tensor(list(g), device=labels.device)) for g in groups])[None]


def case_metrics(
    pred: np.ndarray | torch.Tensor,
    label: np.ndarray | torch.Tensor,
    class_names: Sequence[str],
    spacing: Sequence[float] | None = None,
    regions: Mapping[str, Sequence[int]] | None = None,
    hd95_max: float | None = None,
    hd95: bool = True,
) -> dict[str, Any]:
    """Dice and HD95 of one volume for each foreground class and region.

    Args:
        pred: predicted class indices, shape (X, Y, Z) (or (1, X, Y, Z)).
        label: ground-truth class indices, same shape.
        class_names: names of classes ``0..K-1`` (0 is the background and is not scored).
        spacing: voxel spacing in mm along the array axes; ``None``: 1 mm.
        regions: extra scored structures, name -> class indices (e.g. ``{"WT": [1, 2, 3]}``).
        hd95_max: HD95 when exactly one side is empty; ``None``: the image diagonal in mm.
        hd95: compute HD95 (slower than Dice).

    Returns:
        ``{"dice": {name: float}, "hd95": {name: float}, "empty": {name: "both" | "gt" | "pred" | ""}}``.
    """
    from monai.metrics import compute_dice, compute_hausdorff_distance

    p = torch.as_tensor(np.asarray(pred) if not isinstance(pred, torch.Tensor) else pred).long().squeeze()
    y = torch.as_tensor(np.asarray(label) if not isinstance(label, torch.Tensor) else label).long().squeeze()
    if p.shape != y.shape:
        raise ValueError(f"prediction shape {tuple(p.shape)} and label shape {tuple(y.shape)} differ")
    names = [str(n) for n in class_names[1:]]
    groups: list[list[int]] = [[k] for k in range(1, len(class_names))]
    for rname, members in (regions or {}).items():
        names.append(str(rname))
        groups.append([int(v) for v in members])
    if not groups:
        return {"dice": {}, "hd95": {}, "empty": {}}
    sp = [1.0] * p.ndim if spacing is None else [float(s) for s in spacing]
    yp, yt = _masks(p, groups), _masks(y, groups)
    dice = compute_dice(yp.float(), yt.float(), include_background=True, ignore_empty=False)[0]
    gt_any = yt.flatten(2).any(-1)[0]
    pr_any = yp.flatten(2).any(-1)[0]
    if hd95:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hd = compute_hausdorff_distance(yp.float(), yt.float(), include_background=True, percentile=95, spacing=sp)[0]
        diag = float(hd95_max) if hd95_max is not None else math.sqrt(sum((n * s) ** 2 for n, s in zip(p.shape, sp)))
    out: dict[str, Any] = {"dice": {}, "hd95": {}, "empty": {}}
    for i, n in enumerate(names):
        g, q = bool(gt_any[i]), bool(pr_any[i])
        empty = "both" if not (g or q) else "gt" if not g else "pred" if not q else ""
        out["empty"][n] = empty
        out["dice"][n] = 1.0 if empty == "both" else 0.0 if empty else float(dice[i])
        if hd95:
            out["hd95"][n] = 0.0 if empty == "both" else diag if empty else float(hd[i])
    return out


def summarize_metrics(rows: Sequence[Mapping[str, Any]], class_names: Sequence[str], regions: Iterable[str] = ()) -> dict[str, Any]:
    """Mean and std (over cases) of Dice and HD95 per class and region, with empty-case counts.

    Args:
        rows: per-case results of :func:`case_metrics` with ``patient_id`` / ``case_id`` added.
        class_names: all class names (background first; it is skipped).
        regions: region names also present in the rows.
    """

    def stats(values: list[float]) -> dict[str, float | None]:
        v = np.array([x for x in values if x is not None and not math.isnan(x)], dtype=np.float64)
        return {"mean": float(v.mean()) if v.size else None, "std": float(v.std()) if v.size else None}

    def block(names: Iterable[str]) -> dict[str, Any]:
        out = {}
        for n in names:
            e = [r["empty"].get(n, "") for r in rows]
            out[n] = {
                "dice": stats([r["dice"].get(n) for r in rows]),
                "hd95": stats([r["hd95"].get(n) for r in rows]) if any(r.get("hd95") for r in rows) else None,
                "empty_gt": int(sum(x == "gt" for x in e)),
                "empty_pred": int(sum(x == "pred" for x in e)),
                "empty_both": int(sum(x == "both" for x in e)),
            }
        return out

    classes = block([str(n) for n in class_names[1:]])
    class_means = [v["dice"]["mean"] for v in classes.values() if v["dice"]["mean"] is not None]
    hd_means = [v["hd95"]["mean"] for v in classes.values() if v["hd95"] and v["hd95"]["mean"] is not None]
    return {
        "num_cases": len(rows),
        "num_patients": len({r.get("patient_id", r.get("case_id")) for r in rows}),
        "mean_dice": float(np.mean(class_means)) if class_means else None,
        "mean_hd95": float(np.mean(hd_means)) if hd_means else None,
        "classes": classes,
        "regions": block(list(regions)),
        "empty_convention": EMPTY_CONVENTION,
    }


def write_metrics(
    out_dir: str | os.PathLike,
    rows: Sequence[Mapping[str, Any]],
    summary: Mapping[str, Any],
    csv_name: str = "metrics_per_case.csv",
    json_name: str = "metrics_summary.json",
) -> tuple[str, str]:
    """Write the per-case CSV (one row per case, with its patient id) and the JSON summary, atomically."""
    names: list[str] = []
    for r in rows:
        names += [n for n in r["dice"] if n not in names]
    has_hd = any(r.get("hd95") for r in rows)
    header = ["patient_id", "case_id"] + [f"dice_{n}" for n in names] + ([f"hd95_{n}" for n in names] if has_hd else [])
    header.append("empty")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        line = [r.get("patient_id", ""), r.get("case_id", "")]
        line += [f"{r['dice'][n]:.6f}" if n in r["dice"] else "" for n in names]
        if has_hd:
            line += [f"{r['hd95'][n]:.6f}" if n in r.get("hd95", {}) else "" for n in names]
        line.append(";".join(f"{n}:{e}" for n, e in r.get("empty", {}).items() if e))
        w.writerow(line)
    text = buf.getvalue()
    csv_path = os.path.join(os.fspath(out_dir), csv_name)
    def write_csv(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            f.write(text)

    atomic_write(csv_path, write_csv)
    json_path = os.path.join(os.fspath(out_dir), json_name)
    write_json_atomic(json_path, dict(summary))
    return csv_path, json_path

