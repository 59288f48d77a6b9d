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


def _volume_program(network: torch.nn.Module, example: torch.Tensor, max_size: int):
    """A 3-D bundle's program: every spatial size dynamic, in multiples of the network's size multiple (the
    sliding window's patch; torch.export cannot keep the padding to a multiple symbolic for any size), and an input
    of another size to check it on."""
    from iac_components.networks.padding import PadToMultiple

    pad = next((m for m in network.modules() if isinstance(m, PadToMultiple)), None)
    multiple = pad.multiple if pad is not None and isinstance(pad.multiple, int) else 16
    sizes = [int(s) for s in example.shape[2:]]
    if any(s % multiple or s < 2 * multiple for s in sizes):
        fitting = ", ".join(str(max(2, -(-s // multiple)) * multiple) for s in sizes)
        raise fail(f"model.pt2 of a 3-D bundle takes patches in multiples of {multiple} (at least {2 * multiple}); "
                   f"export it with --input_shape \"[1, C, {fitting}]\" and infer with that --patch_size (model.ts and "
                   "the eager model take any)")
    name = next(iter(inspect.signature(network.forward).parameters))
    dims = {a: multiple * torch.export.Dim(f"k{a}", min=2, max=max(2, int(max_size) // multiple)) for a in (2, 3, 4)}
    program = torch.export.export(network, (example,), dynamic_shapes={name: dims})
    return program, torch.randn(*example.shape[:2], *[s + multiple for s in sizes])


def export_program(bundle_root: str, ckpt_dir: str, input_shape: list[int], checkpoint: str = "model.pt",
                   max_slices: int = 1024) -> str:
    """``<ckpt_dir>/model.pt2``: the inference network (``network_def`` of ``inference.json``, the 2-D network run
    slice-wise, with ``checkpoint``'s weights) as a ``torch.export`` program, the format meant to follow TorchScript,
    whose tracing torch deprecates. The number of slices is dynamic (1 to ``max_slices``): the sliding window's last
    window may be shorter. A 3-D bundle's network has every spatial size dynamic, in multiples of 16 up to
    ``max_slices`` (any ``--patch_size`` of such sizes). ``inference.json`` runs it when it is there (without
    iac_components: the program holds only aten operations). The program is checked against the eager network on a
    random volume before it replaces the file (atomically)."""
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
    from iac_components.networks import SliceWise

    if isinstance(network, SliceWise):
        slices = torch.export.Dim("slices", min=1, max=int(max_slices))
        name = next(iter(inspect.signature(network.forward).parameters))
        program = torch.export.export(network, (example,), dynamic_shapes={name: {4: slices}})
        check = example[..., : max(1, example.shape[-1] // 2)]
    else:
        program, check = _volume_program(network, example, max_slices)
    with torch.no_grad():  # the program must compute what the eager network does (on a shorter window in 2-D)
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
