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

For checkpoint selection, :func:`evaluate_volumes` computes the same per-volume Dice on the preprocessed
cache with ``SliceInferer``; :class:`VolumeValidationHandler` runs it from an Ignite trainer and puts
``val_mean_dice`` in ``engine.state.metrics`` (attach it before a ``CheckpointSaver`` that keys on it). An
equivalent MONAI ``SupervisedEvaluator`` uses ``MeanDice(include_background=False, ignore_empty=False)`` on
whole volumes with ``SliceInferer(roi_size=(H, W), spatial_dim=2)`` and one-hot post-processing.
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
    "evaluate_volumes",
    "VolumeValidationHandler",
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


def _predict_volume(network: torch.nn.Module, image: torch.Tensor, sw_batch_size: int, device: torch.device) -> torch.Tensor:
    """Slice-wise class indices (H, W, D) of one (C, H, W, D) volume with ``SliceInferer``."""
    from monai.inferers import SliceInferer

    x = torch.as_tensor(image).float()[None].to(device)
    inferer = SliceInferer(roi_size=tuple(x.shape[2:4]), sw_batch_size=sw_batch_size, spatial_dim=2, progress=False)
    logits = inferer(x, network)
    return torch.as_tensor(logits).argmax(1)[0].cpu()


def evaluate_volumes(
    network: torch.nn.Module,
    data: Iterable[Mapping[str, Any]],
    class_names: Sequence[str],
    regions: Mapping[str, Sequence[int]] | None = None,
    device: str | torch.device | None = None,
    sw_batch_size: int = 16,
    hd95: bool = False,
    spacing: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Per-volume Dice (and optionally HD95) on preprocessed volumes: the validation metric.

    Args:
        network: a 2-D segmentation network returning logits (N, K, H, W).
        data: items with ``image`` (C, H, W, D) and ``label`` (1, H, W, D) (e.g. a
            :class:`~iac_components.data.datasets.VolumeDataset`), optionally ``case_id``/``patient_id``.
        class_names: class names (background first).
        regions: extra regions (name -> class indices).
        device: where to run the network; default: the network's device.
        sw_batch_size: slices per forward pass.
        hd95: also compute HD95 (in the preprocessed grid, with ``spacing``).
        spacing: voxel spacing for HD95.

    Returns:
        ``{"mean_dice": float, "summary": summarize_metrics(...), "rows": per-case results}``.
    """
    dev = torch.device(device) if device is not None else next(network.parameters()).device
    was_training = network.training
    network.eval()
    rows = []
    try:
        with torch.no_grad():
            for item in data:
                pred = _predict_volume(network, item["image"], sw_batch_size, dev)
                r = case_metrics(pred, item["label"], class_names, spacing, regions, hd95=hd95)
                r["case_id"] = item.get("case_id", str(len(rows)))
                r["patient_id"] = item.get("patient_id", r["case_id"])
                rows.append(r)
    finally:
        network.train(was_training)
    summary = summarize_metrics(rows, class_names, list(regions or {}))
    return {"mean_dice": summary["mean_dice"], "summary": summary, "rows": rows}


class VolumeValidationHandler:
    """Ignite handler: per-volume validation Dice on the cache, stored in ``engine.state.metrics``.

    Runs :func:`evaluate_volumes` every ``interval`` epochs and sets ``engine.state.metrics[metric_name]``
    (default ``val_mean_dice``) plus ``val_dice_<class>``; keeps ``best_metric`` / ``best_metric_epoch``.
    Attach it before a ``CheckpointSaver(key_metric_name="val_mean_dice")`` on the same engine.

    Args:
        network: the 2-D network being trained.
        data: validation volumes (e.g. ``VolumeDataset(cache_dir, fold="validation")``).
        class_names: class names (background first).
        interval: epochs between validations.
        metric_name: key in ``engine.state.metrics``.
        device: device for inference; default: the network's.
        sw_batch_size: slices per forward pass.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        data: Iterable[Mapping[str, Any]],
        class_names: Sequence[str],
        interval: int = 1,
        metric_name: str = "val_mean_dice",
        device: str | torch.device | None = None,
        sw_batch_size: int = 16,
    ) -> None:
        self.network = network
        self.data = data
        self.class_names = list(class_names)
        self.interval = int(interval)
        self.metric_name = metric_name
        self.device = device
        self.sw_batch_size = sw_batch_size
        self.best_metric = -1.0
        self.best_metric_epoch = -1

    def attach(self, engine: Any) -> None:
        """Register on ``EPOCH_COMPLETED(every=interval)``."""
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.interval), self)

    def __call__(self, engine: Any) -> None:
        res = evaluate_volumes(self.network, self.data, self.class_names, device=self.device, sw_batch_size=self.sw_batch_size)
        value = float(res["mean_dice"]) if res["mean_dice"] is not None else 0.0
        engine.state.metrics[self.metric_name] = value
        for n, v in res["summary"]["classes"].items():
            engine.state.metrics[f"val_dice_{n}"] = v["dice"]["mean"]
        if value > self.best_metric:
            self.best_metric, self.best_metric_epoch = value, int(engine.state.epoch)
        engine.state.best_metric = self.best_metric
        engine.state.best_metric_epoch = self.best_metric_epoch

    def state_dict(self) -> dict[str, Any]:
        """Best metric so far (for ``CheckpointSaver``/``CheckpointLoader``)."""
        return {"best_metric": self.best_metric, "best_metric_epoch": self.best_metric_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.best_metric = float(state["best_metric"])
        self.best_metric_epoch = int(state["best_metric_epoch"])
