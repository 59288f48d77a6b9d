"""The release formats of a trained bundle: TorchScript (``models/model.ts``) and a ``torch.export`` program
(``models/model.pt2``)."""

from __future__ import annotations

import inspect
import os

import torch

from iac_components.bundles.errors import fail

__all__ = ["export_program", "export_torchscript"]


def export_torchscript(bundle_root: str, ckpt_dir: str, input_shape: list[int], checkpoint: str = "model.pt") -> str:
    """``<ckpt_dir>/model.ts`` from ``<ckpt_dir>/<checkpoint>``, as the README's ``ckpt_export`` command writes it
    (``network_def`` of ``inference.json``, traced), replaced atomically: a MONAI Label server reloads model.ts when
    its modification time changes, and must never read half a file."""
    import warnings

    from monai.bundle import ckpt_export

    ckpt = os.path.join(str(ckpt_dir), checkpoint)
    if not os.path.isfile(ckpt):
        raise fail(f"no checkpoint at {ckpt} to export: the run saved none (was there a validation epoch?)")
    final = os.path.join(str(ckpt_dir), "model.ts")
    part = final + ".part"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            ckpt_export(
                "network_def", filepath=part, ckpt_file=ckpt, bundle_root=str(bundle_root), ckpt_dir=str(ckpt_dir),
                config_file=os.path.join(str(bundle_root), "configs", "inference.json"),
                meta_file=os.path.join(str(bundle_root), "configs", "metadata.json"), torchscript="false",
                key_in_ckpt="model", use_trace=True, input_shape=[int(v) for v in input_shape],
                converter_kwargs={"check_trace": False},
            )  # fmt: skip
        os.replace(part, final)
    finally:
        if os.path.exists(part):  # a failed export leaves model.ts as it was and no partial file beside it
            os.remove(part)
    return final


def export_program(bundle_root: str, ckpt_dir: str, input_shape: list[int], checkpoint: str = "model.pt",
                   max_slices: int = 1024) -> str:
    """``<ckpt_dir>/model.pt2``: the inference network (``network_def`` of ``inference.json``, the 2-D network run
    slice-wise, with ``checkpoint``'s weights) as a ``torch.export`` program, the format meant to follow TorchScript,
    whose tracing torch deprecates. The number of slices is dynamic (1 to ``max_slices``): the sliding window's last
    window may be shorter. ``inference.json`` runs it when it is there (without iac_components: the program holds
    only aten operations). The program is checked against the eager network on a random volume before it replaces
    the file (atomically)."""
    from monai.bundle import ConfigParser

    ckpt = os.path.join(str(ckpt_dir), checkpoint)
    if not os.path.isfile(ckpt):
        raise fail(f"no checkpoint at {ckpt} to export: retrain first (configs/retrain.json)")
    parser = ConfigParser()
    parser.read_config(os.path.join(str(bundle_root), "configs", "inference.json"))
    parser.update({"bundle_root": str(bundle_root), "ckpt_dir": str(ckpt_dir), "torchscript": "false", "program": "false"})
    network = parser.get_parsed_content("network_def")
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    network.load_state_dict(state.get("model", state) if isinstance(state, dict) else state)
    network.eval()
    example = torch.randn(*[int(v) for v in input_shape])
    slices = torch.export.Dim("slices", min=1, max=int(max_slices))
    name = next(iter(inspect.signature(network.forward).parameters))
    program = torch.export.export(network, (example,), dynamic_shapes={name: {4: slices}})
    with torch.no_grad():  # the program must compute what the eager network does, on a window shorter than traced
        check = example[..., : max(1, example.shape[-1] // 2)]
        diff = float((program.module()(check) - network(check)).abs().max())
    if not diff <= 1e-3:
        raise fail(f"the exported program differs from the eager network by {diff:.3g}; model.pt2 not written")
    final = os.path.join(str(ckpt_dir), "model.pt2")
    part = final + ".part"
    try:
        torch.export.save(program, part)
        os.replace(part, final)
    finally:
        if os.path.exists(part):
            os.remove(part)
    return final
