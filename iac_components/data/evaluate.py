"""Patient-level evaluation in the original image grid.

For each case: run the image-only preprocessing chain stored in the manifest on the original files, predict
slice-wise (``monai.inferers.SliceInferer(spatial_dim=2)`` over a 2-D network), take the argmax, map the
prediction back to the original file's grid with ``monai.transforms.Invertd`` (nearest), load the ORIGINAL
label file separately, and score per-class 3-D Dice and HD95 with the original voxel spacing
(:mod:`iac_components.metrics`, BraTS regions too). Writes ``metrics_per_case.csv`` and
``metrics_summary.json`` atomically, and optionally the predictions as NIfTI in the original grid with the
dataset's label values.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from iac_components.data.base import DatasetError
from iac_components.data.datasets import select_cases
from iac_components.data.files import one_line, save_nifti
from iac_components.data.transforms import instantiate_transforms
from iac_components.metrics import case_metrics, summarize_metrics, write_metrics

__all__ = ["evaluate_patients", "inferer_predictor", "invert_prediction", "load_label_indices", "slice_predictor"]


def slice_predictor(network: torch.nn.Module, device: str | torch.device | None = None, sw_batch_size: int = 16) -> Callable:
    """A predictor for :func:`evaluate_patients`: ``SliceInferer`` over a 2-D network, logits (K, H, W, D)."""
    from monai.inferers import SliceInferer

    dev = torch.device(device) if device is not None else next(network.parameters()).device

    def predict(data: dict[str, Any]) -> torch.Tensor:
        x = torch.as_tensor(data["image"]).float()[None].to(dev)
        inferer = SliceInferer(roi_size=tuple(x.shape[2:4]), sw_batch_size=sw_batch_size, spatial_dim=2, progress=False)
        with torch.no_grad():
            return torch.as_tensor(inferer(x, network))[0].cpu()

    return predict


def inferer_predictor(network: torch.nn.Module, inferer: Callable, device: str | torch.device | None = None) -> Callable:
    """A predictor for :func:`evaluate_patients` from a MONAI inferer over a network that takes the whole volume's
    dimensionality (a 3-D network under ``SlidingWindowInferer``): logits (K, H, W, D)."""
    dev = torch.device(device) if device is not None else next(network.parameters()).device

    def predict(data: dict[str, Any]) -> torch.Tensor:
        x = torch.as_tensor(data["image"]).float()[None].to(dev)
        with torch.no_grad():
            return torch.as_tensor(inferer(x, network))[0].cpu()

    return predict


def invert_prediction(data: dict[str, Any], pred: torch.Tensor, compose: Any) -> torch.Tensor:
    """Map class indices (1, H, W, D) in the preprocessed grid back to the original file grid with ``Invertd``.

    Args:
        data: the chain's output dict (its ``image`` MetaTensor carries the applied operations).
        pred: class indices in the preprocessed grid, (1, H, W, D) or (H, W, D).
        compose: the image-only chain ``Compose`` that produced ``data``.

    Returns:
        (1, X, Y, Z) class indices in the original file's voxel order.
    """
    from monai.data import MetaTensor
    from monai.transforms import Invertd

    image = data["image"]
    p = torch.as_tensor(pred).float()
    if p.ndim == 3:
        p = p[None]
    d = dict(data)
    meta = {k: v for k, v in image.meta.items() if k != "affine"}
    d["pred"] = MetaTensor(p, affine=image.affine, meta=meta)
    inv = Invertd(keys="pred", transform=compose, orig_keys="image", nearest_interp=True, to_tensor=True)
    out = inv(d)["pred"]
    return torch.as_tensor(out).round().long()


def load_label_indices(path: str, label_values: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The original label file as class indices (file voxel order) and its affine.

    Raises:
        DatasetError: unreadable file or a value outside ``label_values``.
    """
    from monai.transforms import LoadImage

    try:
        lab = LoadImage(image_only=True)(path)
    except Exception as e:  # noqa: BLE001
        raise DatasetError(f"cannot read label file {path}: {one_line(e)}") from e
    arr = np.asarray(lab).astype(np.int64)
    values = np.asarray(label_values, dtype=np.int64)
    lut = {int(v): i for i, v in enumerate(values)}
    out = np.zeros(arr.shape, np.int64)
    for v in np.unique(arr).tolist():
        if v not in lut:
            raise DatasetError(f"label file {path} has value {v} outside the dataset's label values {values.tolist()}")
        out[arr == v] = lut[v]
    return out, np.asarray(lab.affine, dtype=np.float64)


def evaluate_patients(
    network: torch.nn.Module | None,
    manifest: dict[str, Any] | str | os.PathLike,
    fold: str | None = "test",
    splits: dict[str, Any] | str | os.PathLike | None = None,
    case_ids: Sequence[str] | None = None,
    out_dir: str | os.PathLike | None = None,
    predictor: Callable[[dict[str, Any]], torch.Tensor] | None = None,
    device: str | torch.device | None = None,
    sw_batch_size: int = 16,
    hd95_max: float | None = None,
    save_predictions: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Per-case Dice/HD95 in the original grid against the original label files; writes CSV + JSON.

    Args:
        network: 2-D network (logits (N, K, H, W)); ignored when ``predictor`` is given.
        manifest: cache dir, manifest path or dict (holds the chain and the source files).
        fold: fold of the splits to evaluate (default ``test``); ``None`` with ``case_ids=None``: all cases.
        splits: splits dict or path; default the cache's ``splits.json``.
        case_ids: explicit case ids instead of a fold.
        out_dir: where to write ``metrics_per_case.csv``, ``metrics_summary.json`` (and ``predictions/``).
        predictor: ``f(data) -> (K, H, W, D) scores or (1, H, W, D) / (H, W, D) class indices`` on the
            preprocessed dict (``image``, ``case_id``, ...); default :func:`slice_predictor` of ``network``.
        device: device for the default predictor.
        sw_batch_size: slices per forward pass for the default predictor.
        hd95_max: HD95 for one-sided empty classes; default the dataset setting (BraTS 373.13 mm), else the
            image diagonal in mm.
        save_predictions: write each inverted prediction (label values, original affine) as NIfTI.
        progress: print one line per case to stderr.

    Returns:
        ``{"summary": ..., "rows": [...], "csv": path | None, "json": path | None}``.
    """
    m, cases = select_cases(manifest, fold, splits, case_ids)
    if not cases:
        raise DatasetError(f"no cases to evaluate (fold={fold!r})")
    s = m["settings"]
    class_names = m["class_names"]
    label_values = m["label_values"] or list(range(len(class_names)))
    index_of = {int(v): i for i, v in enumerate(label_values)}
    regions = {n: [index_of[int(v)] for v in vals] for n, vals in (s.get("regions") or {}).items()}
    hmax = hd95_max if hd95_max is not None else s.get("hd95_max")
    was_training = None
    if predictor is None:
        if network is None:
            raise ValueError("evaluate_patients needs a network or a predictor")
        was_training = network.training
        network.eval()
        predictor = slice_predictor(network, device, sw_batch_size)
    from iac_components.distributed import gather_rows, is_main_process, shard

    try:
        # under torchrun each rank evaluates every world_size-th case; the rows come back in the cases' order
        mine = shard(cases)
        rows = _evaluate_cases(m, mine, predictor, label_values, class_names, regions, hmax, out_dir, save_predictions, progress)
        rows = gather_rows(rows, [c["case_id"] for c in cases], "case_id")
    finally:
        if was_training is not None:
            network.train(was_training)
    summary = summarize_metrics(rows, class_names, list(regions))
    summary.update(dataset=m["dataset"], fold=fold, hd95_max=hmax if hmax is not None else "image diagonal (mm)")
    csv_path = json_path = None
    if out_dir is not None and is_main_process():
        csv_path, json_path = write_metrics(out_dir, rows, summary)
    return {"summary": summary, "rows": rows, "csv": csv_path, "json": json_path}


def _evaluate_cases(m, cases, predictor, label_values, class_names, regions, hmax, out_dir, save_predictions, progress):
    """Per-case loop of :func:`evaluate_patients`."""
    composes: dict[str, Any] = {}
    rows = []
    t0 = time.perf_counter()
    for i, c in enumerate(cases):
        mod = c["modality"]
        if mod not in composes:
            composes[mod] = instantiate_transforms(m["transforms"][mod]["image"])
        compose = composes[mod]
        data = compose({"image": list(c["source"]["image"]), "case_id": c["case_id"], "patient_id": c["patient_id"]})
        out = torch.as_tensor(predictor(data))
        if out.ndim == 4 and out.shape[0] > 1:
            out = out.argmax(0, keepdim=True)
        pred = invert_prediction(data, out, compose)[0].numpy()
        gt, gt_affine = load_label_indices(c["source"]["label"], label_values)
        if pred.shape != gt.shape:
            raise DatasetError(
                f"case {c['case_id']}: inverted prediction shape {pred.shape} differs from label {gt.shape} "
                f"({c['source']['label']})"
            )
        spacing = np.sqrt((gt_affine[:3, :3] ** 2).sum(0)).tolist()
        r = case_metrics(pred, gt, class_names, spacing, regions, hd95_max=hmax)
        r.update(case_id=c["case_id"], patient_id=c["patient_id"], spacing=spacing)
        rows.append(r)
        if save_predictions and out_dir is not None:
            vals = np.asarray(label_values, dtype=np.uint8 if max(label_values) < 256 else np.int16)
            save_nifti(Path(out_dir) / "predictions" / f"{c['case_id']}.nii.gz", vals[pred], gt_affine)
        if progress:
            print(f"evaluate: {i + 1}/{len(cases)} {c['case_id']} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return rows
