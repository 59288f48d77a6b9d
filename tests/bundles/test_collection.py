"""Every bundle of the collection: its metadata against the local schema, its documented run ids, and its network's
contract (3-D volume in, logits of the same spatial size out), TorchScript export (traced) and the exported
model's agreement with the eager one at sizes other than the trace's."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from bundle_utils import BUNDLES, SCHEMA, copy_bundle, representative_bundles
from monai.bundle import ConfigParser, ckpt_export, verify_metadata, verify_net_in_out

from iac_components.bundles.overlays import chain_files
from iac_components.bundles.table import all_bundles

pytestmark = [
    pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning"),  # shape arithmetic that holds at any size
    pytest.mark.filterwarnings("ignore:No hash value provided"),  # the local schema file
]

NAMES = [s.name for s in all_bundles()]
WORKFLOW_FILES = ["train", "search", "retrain", "evaluate", "inference"]
BASELINE_FILES = ["baseline_attention_unet", "baseline_unetplusplus"]
# `python -m monai.bundle run [ID] --config_file .../configs/FILE.json`
DOCUMENTED_RUN = re.compile(r"python -m monai\.bundle run(?: (?!--)(\S+))? --config_file \S*configs/(\w+)\.json")


def test_collection_is_every_dataset_with_every_backbone():
    """4 datasets x 7 backbones, custom_iac, and the 3-D bundle of every volumetric dataset (not ACDC's few thick
    slices)."""
    assert len(NAMES) == len(set(NAMES)) == 33
    assert [n for n in NAMES if n.endswith("_3d")] == ["brats_iac_3d", "kits_iac_3d", "amos_iac_3d", "custom_iac_3d"]
    assert sorted(NAMES) == sorted(p.name for p in BUNDLES.iterdir() if (p / "configs").is_dir())


@pytest.mark.parametrize("name", NAMES)
def test_documented_ids_are_expression_lists(name):
    """``run`` of every file is a list of expressions and ``search`` of search.json a reference to it: an id naming
    a section (a dict) would only build it and exit 0 without training (see
    ``test_section_id_builds_without_training``)."""
    readme = (BUNDLES / name / "docs" / "README.md").read_text()
    documented = {(run_id or "run", f) for run_id, f in DOCUMENTED_RUN.findall(readme)}
    assert documented == {("run", "train"), ("search", "search"), ("run", "retrain"), ("run", "evaluate"), ("run", "inference")} | {
        ("run", b) for b in BASELINE_FILES
    }
    for f in WORKFLOW_FILES + BASELINE_FILES:
        parser = ConfigParser()
        # the overlays merge over train.json (the README's `--config_file "['configs/train.json','configs/search.json']"`)
        parser.read_config([str(p) for p in chain_files(BUNDLES / name / "configs" / f"{f}.json")])
        ids = {"run", "initialize", "finalize"} | {i for i, g in documented if g == f and i != "search"}
        for run_id in ids:
            value = parser[run_id]
            assert isinstance(value, list), f"{f}.json: {run_id!r} is a {type(value).__name__}"
            assert all(isinstance(e, str) and e.startswith("$") for e in value), f"{f}.json: {run_id!r}"
        assert any(".run()" in e or "evaluate_models(" in e for e in parser["run"])  # runs an engine or the evaluation
        if f == "search":
            assert parser["search"] == "@run"  # `monai.bundle run search` runs `run`'s expressions


@pytest.mark.parametrize("name", NAMES)
def test_metadata_verifies_against_local_schema(name, tmp_path):
    meta = BUNDLES / name / "configs" / "metadata.json"
    verify_metadata(meta_file=str(meta), filepath=str(SCHEMA))
    # what MONAI reads back keeps the required packages (it renames `optional_packages_version` onto them)
    parser = ConfigParser()
    parser.read_meta(str(meta))
    assert "iac_components" in parser.get("_meta_#required_packages_version")


@pytest.mark.parametrize("field", ["network_data_format", "version", "required_packages_version"])
def test_local_schema_rejects_metadata_without(field, tmp_path):
    meta = json.loads((BUNDLES / "acdc_iac" / "configs" / "metadata.json").read_text())
    del meta[field]
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=f"'{field}' is a required property"):
        verify_metadata(meta_file=str(tmp_path / "metadata.json"), filepath=str(SCHEMA))


def _io(parser: ConfigParser) -> tuple[int, int, int]:
    """Input channels, output channels and the smallest valid in-plane size of the metadata."""
    fmt = "_meta_#network_data_format"
    shape = parser.get(f"{fmt}#inputs#image#spatial_shape")
    base = int(str(shape[0]).split("*")[0])
    return parser.get(f"{fmt}#inputs#image#num_channels"), parser.get(f"{fmt}#outputs#pred#num_channels"), base


@pytest.mark.slow
@pytest.mark.parametrize("name", representative_bundles())
def test_network_contract_export_and_torchscript(name, tmp_path, genotype_file):
    """With a test genotype and random weights in a copy of the bundle: ``verify_net_in_out``, the model contract
    ``(B, C, H, W, D) -> (B, K, H, W, D)``, ``ckpt_export`` (traced), and TorchScript == eager at two sizes that
    differ from the trace's in H, W and D (sizes that need padding to the network's multiple)."""
    root = copy_bundle(name, tmp_path)
    models = root / "models"
    models.mkdir()
    shutil.copy(genotype_file, models / "genotype.json")
    config, meta = str(root / "configs" / "inference.json"), str(root / "configs" / "metadata.json")

    parser = ConfigParser()
    parser.read_config(config)
    parser.read_meta(meta)
    parser.update({"bundle_root": str(root), "torchscript": False})
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def").eval()
    torch.save({"model": net.state_dict()}, models / "model.pt")
    c_in, k_out, base = _io(parser)
    # a 2-D bundle's volume of 2 slices, or a 3-D bundle's patch (the smallest its U-Net takes, below its default)
    trace = [1, c_in, 32, 32, 32] if name.endswith("_3d") else [1, c_in, base, base, 2]
    sizes = ([(2, c_in, base - 8, base - 24, 1), (1, c_in, base - 16, base - 4, 3)] if not name.endswith("_3d")
             else [(2, c_in, 24, 40, 20), (1, c_in, 33, 18, 30)])  # fmt: skip

    verify_net_in_out("network_def", meta_file=meta, config_file=config, device="cpu", bundle_root=str(root))
    ckpt_export(  # --filepath, --ckpt_file and --meta_file follow from --bundle_root
        "network_def", bundle_root=str(root), config_file=config, key_in_ckpt="model", use_trace=True, input_shape=trace,
        converter_kwargs={"check_trace": False},  # the comparison below is the stronger check
    )  # fmt: skip
    extra = {"metadata.json": "", "inference.json": ""}
    ts = torch.jit.load(str(models / "model.ts"), _extra_files=extra)
    assert json.loads(extra["metadata.json"])["network_data_format"]["outputs"]["pred"]["num_channels"] == k_out
    assert json.loads(extra["inference.json"])["network_def"]["backbone"] == parser["network_def"]["backbone"]
    # sizes below the trace's keep the big networks cheap (the padding to the network's multiple differs all the
    # same); optimized_execution(False) skips TorchScript's first-call graph optimisation, not its semantics
    for shape in sizes:
        x = torch.randn(*shape)
        with torch.no_grad(), torch.jit.optimized_execution(False):
            eager, traced = net(x), ts(x)
        assert eager.shape == (shape[0], k_out, *shape[2:])
        torch.testing.assert_close(traced, eager)
    for f in ("model.pt", "model.ts"):  # up to 370 MB each: do not leave 29 of them in pytest's kept temp folders
        (models / f).unlink()


@pytest.mark.parametrize("name", NAMES)
def test_folds_follow_split_seed_not_the_training_seed(name):
    """A search run with ``--seed 1`` over a baseline trained with ``--seed 0`` must see the same test patients."""
    for f in ["train", "search", "retrain", "evaluate"]:
        parser = ConfigParser()
        parser.read_config([str(p) for p in chain_files(BUNDLES / name / "configs" / f"{f}.json")])
        parser.update({"seed": 1})
        assert parser.get("split_seed") == 0, f
        assert parser.get("data")["split_seed"] == "@split_seed", f


@pytest.mark.parametrize(
    "override, compile_, torchscript",
    [
        ({}, False, False),  # model.pt is there: the eager model
        ({"torchscript": "true"}, False, True),
        ({"compile": "true"}, True, False),
        ({"compile": True, "torchscript": "true"}, True, False),  # torch.compile takes the eager network only
        ({"compile": "no"}, False, False),
    ],
)
def test_compile_runs_the_eager_network_under_monais_evaluator(override, compile_, torchscript, tmp_path):
    root = copy_bundle("acdc_iac", tmp_path)
    (root / "models").mkdir()
    (root / "models" / "model.pt").write_bytes(b"")
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "inference.json"))
    parser.update({"bundle_root": str(root), **override})
    assert parser.get_parsed_content("use_compile") is compile_
    assert parser.get_parsed_content("use_torchscript") is torchscript
    assert parser["evaluator"]["compile"] == "@use_compile"  # MONAI's SupervisedEvaluator(compile=...)
