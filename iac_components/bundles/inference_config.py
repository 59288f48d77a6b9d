"""``inference.json``: 3-D NIfTI in (a file or a folder), 3-D label map out in the input's grid.

It holds only MONAI and torch targets outside ``network_def``, which it switches off (``_disabled_``) when it runs
on ``models/model.ts``: the exported bundle then needs no ``iac_components``.
"""

from __future__ import annotations

from typing import Any

from iac_components.bundles.config_parts import (
    BUNDLE_ROOT,
    CHECK_DEVICE,
    CHECK_OVERRIDES_IF_INSTALLED,
    RUNTIME,
    dataset_settings,
    insert_after,
)
from iac_components.bundles.table import BundleSpec
from iac_components.data.transforms import label_to_values_config, preprocessing_config

__all__ = ["inference_config"]


#: MONAI Label adds ``image_path`` (a str) beside ``image``; MONAI 1.6's ``Spacingd`` updates every ``image_*`` key as
#: a metadata dict and fails on it (``'str' object has no attribute 'update'``). The chain moves it aside first and
#: puts it back at the end (a name that does not start with ``image_``); both steps are no-ops without it.
_ASIDE = "source_image_path"
_PATH_ASIDE = [
    {"_target_": "CopyItemsd", "keys": "image_path", "names": _ASIDE, "allow_missing_keys": True},
    {"_target_": "DeleteItemsd", "keys": "image_path"},
]
_PATH_BACK = [
    {"_target_": "CopyItemsd", "keys": _ASIDE, "names": "image_path", "allow_missing_keys": True},
    {"_target_": "DeleteItemsd", "keys": _ASIDE},
]


def _guard_path_keys(chain: list[dict[str, Any]] | str) -> list[dict[str, Any]] | str:
    """``chain`` between :data:`_PATH_ASIDE` and :data:`_PATH_BACK` (a list of configs, or an expression)."""
    if isinstance(chain, list):
        return [*_PATH_ASIDE, *chain, *_PATH_BACK]
    as_code = lambda steps: "[" + ", ".join(  # noqa: E731
        f"monai.transforms.{t['_target_']}(" + ", ".join(f"{k}={v!r}" for k, v in t.items() if k != "_target_") + ")"
        for t in steps) + "]"  # fmt: skip
    return f"${as_code(_PATH_ASIDE)} + {chain[1:]} + {as_code(_PATH_BACK)}"


def inference_config(spec: BundleSpec) -> dict[str, Any]:
    """3-D NIfTI in (a file or a folder), 3-D label map out in the input's grid; see the module docstring."""
    s = dataset_settings(spec)
    channels = len(s.channel_names) or 1
    classes = len(s.class_names) or 2
    custom = spec.dataset.key == "custom"
    chain, to_values = _input_chain(spec, s, custom)
    datalist, name_formatter = _datalist(custom, channels)
    # "@spatial_size" / "@spacing" refer to the keys below, as the network of train.json follows the data's
    config: dict[str, Any] = {
        # no `__import__` in an expression with a reference: MONAI parses every expression that contains "import"
        # as Python before resolving it, and `@x` is a syntax error there
        "imports": ["$import glob", "$import json", "$import os", "$import torch", "$import monai"],
        "bundle_root": BUNDLE_ROOT,
        "ckpt_dir": "$@bundle_root + '/models'",
        "cache_dir": "$@bundle_root + '/cache'",
        "output_dir": "$@bundle_root + '/eval/predictions'",
        # MONAI's inference property; `input` may also name one file
        "dataset_dir": "$@bundle_root + '/sample'",
        "input": "@dataset_dir",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "in_channels": channels,
        "out_channels": classes,
        # a 3-D model's windows: the patch it was trained on (its manifest's), else the bundle's default
        **({"patch_size": f"$list(@manifest['patch_size']) if @manifest and @manifest.get('patch_size') else "
                          f"{list(spec.volume.patch_size)}", "sw_overlap": spec.volume.sw_overlap} if spec.volumetric
           else {"window_slices": spec.dataset.window_slices}),
        **_model_selection(spec),
        "datalist": datalist,
        "preprocessing": {"_target_": "Compose", "transforms": _guard_path_keys(chain)},
        "dataset": {"_target_": "Dataset", "data": "@datalist", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "num_workers": 0},
        "inferer": _inferer(spec),
        "postprocessing": _postprocessing(to_values, name_formatter),
        "handlers": [
            {
                "_target_": "CheckpointLoader",
                "_disabled_": "$@use_torchscript or @use_program",
                "load_path": "$@ckpt_dir + '/model.pt'",
                "load_dict": {"model": "@network"},
                "map_location": "@device",
            },
            {"_target_": "StatsHandler", "iteration_log": False},
        ],
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "@device",
            "val_data_loader": "@dataloader",
            "network": "@network",
            "inferer": "@inferer",
            "postprocessing": "@postprocessing",
            "val_handlers": "@handlers",
            "compile": "@use_compile",
        },
        "initialize": [CHECK_OVERRIDES_IF_INSTALLED, CHECK_DEVICE],
        "run": ["$@evaluator.run()"],
        "finalize": [],
    }
    return _model_geometry(config, spec, s, custom)


def _inferer(spec: BundleSpec) -> dict[str, Any]:
    """A window of ``window_slices`` whole slices through the slice-wise network, or a 3-D bundle's patch-sized
    windows through the 3-D network (overlapping, Gaussian-weighted, as in its validation)."""
    if spec.volumetric:
        return {"_target_": "SlidingWindowInferer", "roi_size": "@patch_size", "sw_batch_size": 1,
                "overlap": "@sw_overlap", "mode": "gaussian"}  # fmt: skip
    return {"_target_": "SlidingWindowInferer", "roi_size": [-1, -1, "@window_slices"], "sw_batch_size": 1, "overlap": 0.0}


def _input_chain(spec: BundleSpec, s: Any, custom: bool) -> tuple[Any, list[dict[str, Any]]]:
    """The preprocessing of an input volume, and the transforms that map class indices back to label values."""
    parsed = "$[monai.bundle.ConfigParser(t).get_parsed_content() for t in "
    if custom:
        # the user's dataset: channels, classes, label values and the chain prepare resolved (spacing, size,
        # normalisation) are in the cache manifest
        chain: Any = parsed + "@manifest['transforms'][@modality]['image']]"
        to_values: list[dict[str, Any]] = [
            {"_target_": "Compose", "transforms": parsed + "@manifest['postprocessing']]"}
        ]
    else:
        # spacing and slice size are the keys below: the cache's (what the model was trained at) when there is
        # one, else the dataset's defaults
        chain = preprocessing_config(s, "CT" if spec.dataset.modality == "CT" else "MRI", label_key=None)
        for step in chain:
            if step["_target_"] == "Spacingd":
                # two values keep the slice spacing, three (a 3-D bundle's) resample every axis
                step["pixdim"] = "$([float(v) for v in @spacing] + [-1.0])[:3]"
            elif "spatial_size" in step:
                step["spatial_size"] = "$[int(v) for v in @spatial_size] + [-1]"
        to_values = label_to_values_config(s) if list(s.label_values) != list(range(len(s.label_values))) else []
    return chain, to_values


def _datalist(custom: bool, channels: int) -> tuple[str, dict[str, Any]]:
    """The datalist expression (a file, a folder of cases, nnU-Net's channel naming) and the output name formatter."""
    # nnU-Net's naming: CASE_0000.nii.gz, CASE_0001.nii.gz, ... are the channels of CASE
    multi = (
        "[{'image': [os.path.join(@input, c + '_%04d.nii.gz' % k) for k in range(@in_channels)]} for c in "
        "sorted({os.path.basename(f)[:-12] for f in glob.glob(os.path.join(@input, '*_0000.nii.gz'))})] "
        "if os.path.isdir(@input) else [{'image': @input}]"
    )
    single = (
        "[{'image': f} for f in sorted(glob.glob(os.path.join(@input, '*.nii.gz')) + "
        "glob.glob(os.path.join(@input, '*.nii')))] if os.path.isdir(@input) else [{'image': @input}]"
    )
    datalist = f"$({multi}) if @in_channels > 1 else ({single})" if custom else f"${multi if channels > 1 else single}"
    # a case in nnU-Net's naming (CASE_0000.nii.gz, ...) is written as CASE.nii.gz
    name_formatter = (
        {"output_name_formatter": "$lambda meta, saver: {'subject': os.path.basename(str(meta['filename_or_obj']))"
         ".replace('_0000.nii', '.nii'), 'idx': None}"}
        if custom or channels > 1 else {}
    )  # fmt: skip
    return datalist, name_formatter


def _model_selection(spec: BundleSpec) -> dict[str, Any]:
    """Which model runs (an exported program, TorchScript, torch.compile of the eager network, or the eager network),
    the eager network's definition, and ``network``."""
    backbone_kwargs = dict(spec.backbone.kwargs)
    return {
        "torchscript": "auto",
        # torch.compile the eager network (MONAI's SupervisedEvaluator(compile=True)): model.ts is TorchScript, which
        # torch.compile does not take, so compile runs the eager model (model.pt + genotype.json)
        "compile": False,
        "use_compile": "$str(@compile).lower() in ('true', '1', 'yes')",
        # models/model.pt2 (a torch.export program, `iac bundles export_program`) runs when it is there, unless
        # TorchScript or compile is asked for; like model.ts it needs no iac_components
        "program": "auto",
        # (auto: only when it is newer than models/model.pt, so that a retrain after an export is not shadowed)
        "use_program": (
            "$not @use_compile and str(@torchscript).lower() not in ('true', '1', 'yes') and "
            "(str(@program).lower() in ('true', '1', 'yes') or "
            "(str(@program).lower() == 'auto' and os.path.isfile(@ckpt_dir + '/model.pt2') and "
            "(not os.path.isfile(@ckpt_dir + '/model.pt') or "
            "os.path.getmtime(@ckpt_dir + '/model.pt2') >= os.path.getmtime(@ckpt_dir + '/model.pt'))))"
        ),
        "use_torchscript": (
            "$not @use_compile and not @use_program and (str(@torchscript).lower() in ('true', '1', 'yes') or "
            "(str(@torchscript).lower() == 'auto' and not os.path.isfile(@ckpt_dir + '/model.pt')))"
        ),
        "network_def": {
            "_target_": f"{RUNTIME}.inference_network",
            # off only when model.ts is there to be used: then iac_components is never imported. ckpt_export after a
            # training with another --ckpt_dir (no model.pt here, no model.ts yet) gets the eager network, or
            # fixed_network's one-line error naming the missing genotype.json, never a None network
            "_disabled_": "$@use_program or (@use_torchscript and os.path.isfile(@ckpt_dir + '/model.ts'))",
            "backbone": spec.backbone.backbone,
            "in_channels": "@in_channels",
            "out_channels": "@out_channels",
            "genotype": "$@ckpt_dir + '/genotype.json'",
            "backbone_kwargs": backbone_kwargs,
            **({"slice_wise": False} if spec.volumetric else {}),
            "cell_kwargs": {},  # the cells' width: model.pt's record, else genotype.json's
            "checkpoint": "$@ckpt_dir + '/model.pt'",
        },
        # an exported program's module refuses train()/eval() (it was exported in eval mode): MONAI's evaluator calls
        # eval() on its network, so both become no-ops here (plain Python: no iac_components on this path)
        "network": (
            "$(lambda m: [setattr(m, n, lambda mode=True: m) for n in ('train', 'eval')] and m)("
            "torch.export.load(@ckpt_dir + '/model.pt2').module().to(@device)) if @use_program "
            "else torch.jit.load(@ckpt_dir + '/model.ts', map_location=@device) if @use_torchscript "
            "else @network_def.to(@device)"
        ),
    }


def _postprocessing(to_values: list[dict[str, Any]], name_formatter: dict[str, Any]) -> dict[str, Any]:
    """Argmax, inverted to the input's grid, label values, written as uint8 NIfTI."""
    return {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "AsDiscreted", "keys": "pred", "argmax": True},
                {
                    "_target_": "Invertd",
                    "keys": "pred",
                    "transform": "@preprocessing",
                    "orig_keys": "image",
                    "nearest_interp": True,
                    "to_tensor": True,
                },
                *to_values,
                {
                    "_target_": "SaveImaged",
                    "keys": "pred",
                    "output_dir": "@output_dir",
                    "output_postfix": "",
                    "separate_folder": False,
                    "resample": False,
                    "output_dtype": "$torch.uint8",
                    **name_formatter,
                },
            ],
        }


def _model_geometry(config: dict[str, Any], spec: BundleSpec, s: Any, custom: bool) -> dict[str, Any]:
    """The model's manifest (its preprocessing and geometry) and the keys read from it; the geometry check. Without
    a manifest: the dataset's default geometry (a 3-D bundle's own grid)."""
    # the model's own preprocessing first: the manifest.json that train/retrain write beside the weights and that a
    # release carries beside model.ts (`iac bundles package`: preprocessing only, no cases); else the prepared
    # cache's (official layout or datalist)
    manifests = "[@ckpt_dir + '/manifest.json', @cache_dir + '/manifest.json', @cache_dir + '/datalist/manifest.json']"
    config = insert_after(config, "cache_dir", {
        "manifest": f"$next((json.load(open(f)) for f in {manifests} if os.path.isfile(f)), None)"
    })  # fmt: skip
    if custom:
        # without a cache (a fresh bundle: verify_net_in_out, ckpt_export) the metadata's 1 channel, 2 classes
        config["in_channels"] = "$len(@manifest['channel_names']) if @manifest else 1"
        config["out_channels"] = "$len(@manifest['class_names']) if @manifest else 2"
        config = insert_after(config, "out_channels", {"modality": "$@manifest['modality']"})
    else:
        v = spec.volume if spec.volumetric else None
        default = {k: list((getattr(v, k) if v else None) or getattr(s, k)) for k in ("spacing", "spatial_size")}
        sizes = {k: f"$list(@manifest['settings']['{k}']) if @manifest else {default[k]}" for k in default}
        config = insert_after(config, "out_channels", sizes)
        # a geometry given on the command line that is not the model's is refused unless forced; without any
        # manifest the dataset's default geometry is used, and the run says so
        config = insert_after(config, "spatial_size", {"force_geometry": False})
        config["initialize"] = config["initialize"] + [GEOMETRY_CHECK]
    return config


#: ``inference.json``'s check of the geometry against the model's manifest (plain Python: no iac_components there).
GEOMETRY_CHECK = (
    "$(print('warning: no manifest.json beside the model nor a prepared cache: inference uses the dataset default "
    "geometry, spacing ' + str(@spacing) + ', slice size ' + str(@spatial_size) + '; a model trained at another "
    "geometry will segment wrongly (package the model with iac bundles package, or pass --cache_dir)') "
    "if @manifest is None else None) if @manifest is None or str(@force_geometry).lower() in ('true', '1', 'yes') "
    "or ([float(v) for v in @spacing], [int(v) for v in @spatial_size]) == ([float(v) for v in "
    "@manifest['settings']['spacing']], [int(v) for v in @manifest['settings']['spatial_size']]) else "
    "(_ for _ in ()).throw(SystemExit('error: --spacing ' + str(@spacing) + ' / --spatial_size ' + str(@spatial_size) "
    "+ ' is not the geometry the model was trained at (' + str(@manifest['settings']['spacing']) + ' mm, ' "
    "+ str(@manifest['settings']['spatial_size']) + '): leave them out, or pass --force_geometry true'))"
)
