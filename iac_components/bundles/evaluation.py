"""What a bundle measures: the per-patient evaluation in the original grid, and the cells' contribution while
retraining."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from iac_components.bundles.bundle_data import BundleData
from iac_components.bundles.errors import fail
from iac_components.bundles.model_record import model_record
from iac_components.utils import as_bool

__all__ = ["CellContributionHandler", "evaluate_models"]


class CellContributionHandler:
    """At the end of a training run, log the cells' γ and ``‖γ·cell‖/‖skip‖`` per level (on the last batch)
    and write them to ``output_file`` (JSON). Does nothing for a network without cells."""

    def __init__(self, output_file: str | None = None) -> None:
        self.output_file = output_file

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        from iac_components.distributed import is_main_process
        from iac_components.search.record import contribution_text, measure_cells
        from iac_components.utils import write_json_atomic

        c = measure_cells(engine)
        if c is None or not is_main_process():
            return
        engine.logger.info("IAC cells at the end of the retrain: " + contribution_text(c))
        if self.output_file:
            write_json_atomic(self.output_file, {"epoch": engine.state.epoch, **c})


def evaluate_models(
    models: Mapping[str, tuple[nn.Module, str]],
    data: BundleData,
    output_dir: str,
    fold: str = "test",
    device: str | torch.device | None = None,
    save_predictions: bool | str = False,
    force_geometry: bool | str = False,
    inferer: Any = None,
) -> dict[str, Any]:
    """Patient-level evaluation in the original grid of each named model, and their paired comparison.

    Args:
        models: name -> (network, checkpoint); a missing checkpoint skips that model with a note (the IAC model
            is required).
        data: the bundle's data.
        output_dir: ``<output_dir>/<name>/metrics_per_case.csv`` and ``metrics_summary.json`` per model, and
            ``comparison.json`` when two or more were evaluated.
        fold: the split to report on.
        device: where to run.
        save_predictions: also write the predicted label maps.
        force_geometry: evaluate even when the data were prepared at another geometry than a model's checkpoint
            records (refused otherwise: the model would be scored on slices it was not trained on).
        inferer: how a volume is predicted (a MONAI inferer: a 3-D bundle's ``SlidingWindowInferer``); None:
            slice by slice over the slice size.
    """
    from iac_components.data import evaluate_patients
    from iac_components.data.evaluate import inferer_predictor
    from iac_components.distributed import is_main_process
    from iac_components.implant import load_network_weights
    from iac_components.utils import write_json_atomic

    results: dict[str, Any] = {}
    for name, (network, checkpoint) in models.items():
        if not os.path.isfile(checkpoint):
            if not results and name == next(iter(models)):
                raise fail(f"no {name} checkpoint at {checkpoint}; run its workflow first")
            print(f"note: skipping {name}: no checkpoint at {checkpoint}")
            continue
        trained = (model_record(checkpoint).get("preprocessing") or {}).get("settings") or {}
        here = data.manifest["settings"]
        differs = [k for k in ("spacing", "spatial_size") if trained.get(k) and list(trained[k]) != list(here[k])]
        if differs and not as_bool(force_geometry):
            raise fail(f"{checkpoint} was trained at {', '.join(f'{k} {list(trained[k])}' for k in differs)}; the data "
                        f"here are prepared at {', '.join(f'{k} {list(here[k])}' for k in differs)}: leave --spacing / "
                        "--spatial_size out (or point --cache_dir at the model's cache), or pass --force_geometry true")
        load_network_weights(network, checkpoint)
        network = network.to(device).eval()
        out = Path(output_dir) / name
        summary = evaluate_patients(
            network, data.manifest, fold=fold, splits=data.splits, out_dir=str(out), device=device,
            save_predictions=as_bool(save_predictions),
            predictor=None if inferer is None else inferer_predictor(network, inferer, device),
        )  # fmt: skip
        results[name] = summary
        if is_main_process():
            print(f"{name}: mean Dice {summary['summary']['mean_dice']:.4f} over {summary['summary']['num_patients']} "
                  f"patients ({fold}); {out}")
    report: dict[str, Any] = {n: r["summary"] for n, r in results.items()}
    if len(results) > 1 and is_main_process():
        from iac_components.stats import compare_runs

        reference = "baseline" if "baseline" in results else None
        report["comparison"] = compare_runs({n: r["rows"] for n, r in results.items()}, reference=reference)
        for n, c in report["comparison"]["vs_reference"].items():
            print(f"{n} - {report['comparison']['reference']}: {c['mean_diff']:+.4f} Dice "
                  f"(95% CI {c['ci95'][0]:+.4f}..{c['ci95'][1]:+.4f}, Wilcoxon p={c['wilcoxon_p']:.3g})")
    if is_main_process():  # under torchrun every rank holds all the rows (gathered); rank 0 writes
        write_json_atomic(Path(output_dir) / "evaluation.json", report)
    return report
