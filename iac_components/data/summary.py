"""What a run chose, in a few lines a user can read: geometry, channels, classes, folds and the export's input shape.

Logged by every bundle workflow once its data are ready, and printed by ``iac bundles show NAME --cache_dir DIR``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["data_summary"]


def data_summary(manifest: Mapping[str, Any], splits: Mapping[str, Any] | None = None,
                 window_slices: int = 16, patch_size: list[int] | None = None) -> list[str]:
    """The lines that describe a prepared cache (its ``manifest.json``) and its folds (``splits.json``);
    ``patch_size``: a 3-D bundle's patch (its export's input), else a volume of ``window_slices`` slices."""
    s = manifest.get("settings", {})
    channels, classes = list(manifest.get("channel_names", [])), list(manifest.get("class_names", []))
    values = list(manifest.get("label_values", range(len(classes))))
    h, w = s.get("spatial_size") or ("?", "?")
    lines = [
        f"dataset: {manifest.get('dataset')} ({manifest.get('modality')}), {manifest.get('num_patients', '?')} patients, "
        f"{manifest.get('num_cases', '?')} cases",
        f"geometry: {'in-plane ' if len(s.get('spacing') or ()) != 3 else ''}spacing {s.get('spacing')} mm, slices "
        f"padded/cropped to {h} x {w} (axial, RAS)",
        f"channels ({len(channels)}): {', '.join(channels)}",
        "classes: " + ", ".join(f"{n} = label {v}" for n, v in zip(classes, values)),
    ]
    if splits:
        folds = splits.get("patients", {})
        lines.append("folds (patients): " + ", ".join(f"{k} {len(v)}" for k, v in folds.items()))
    shape = [1, len(channels), *(patch_size or [h, w, window_slices])]
    lines.append(f"export: python -m monai.bundle ckpt_export network_def --config_file configs/inference.json "
                 f"--key_in_ckpt model --use_trace True --input_shape \"{shape}\"")
    return lines
