"""MONAI Label's item layout through every bundle's inference.json.

MONAI Label calls a bundle's ``preprocessing`` with ``{"image": path, "image_path": path}``. MONAI 1.6's
``Spacingd`` treats every ``image_*`` key as a metadata dict and failed on that str (HTTP 500 at ``/infer``); the
chain now moves the key aside and puts it back.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_utils import BUNDLES, GENOTYPE, SMALL_INFER
from monai.bundle import ConfigParser

from iac_components.genotype import save_genotypes

ALL = sorted(p.name for p in BUNDLES.iterdir() if (p / "configs" / "inference.json").is_file())
#: custom_iac's chains (2-D and 3-D) come from its prepared cache (item 1 of the MONAI Label issue writes it at export)
FROM_RELEASE = [b for b in ALL if not b.startswith("custom_iac")]


def _volume(path, channels: int, shape=(40, 36, 5)) -> str:
    """A NIfTI at 1.5 x 1.5 x 8 mm (4-D, channels last, when there is more than one channel)."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(*shape, channels) if channels > 1 else shape).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, 8.0, 1.0])), str(path))
    return str(path)


def _parser(bundle: str, tmp_path, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(BUNDLES / bundle / "configs" / "inference.json"))
    parser.update({"bundle_root": str(tmp_path), **overrides})
    return parser


@pytest.mark.parametrize("bundle", FROM_RELEASE)
def test_monailabel_item_goes_through_the_preprocessing(bundle, tmp_path):
    parser = _parser(bundle, tmp_path, **SMALL_INFER)
    channels = parser.get_parsed_content("in_channels")
    path = _volume(tmp_path / "case.nii.gz", channels)
    out = parser.get_parsed_content("preprocessing")({"image": path, "image_path": path})
    image = out["image"]
    assert image.shape[0] == channels and list(image.shape[1:3]) == SMALL_INFER["spatial_size"]
    assert image.pixdim[:2].tolist() == pytest.approx(SMALL_INFER["spacing"])
    # MONAI Label's key comes back unchanged (its writer reads it), and nothing else is left behind
    assert out["image_path"] == path and "source_image_path" not in out


def test_a_plain_item_is_unchanged_by_the_guard(tmp_path):
    parser = _parser("acdc_iac", tmp_path, **SMALL_INFER)
    path = _volume(tmp_path / "case.nii.gz", 1)
    out = parser.get_parsed_content("preprocessing")({"image": path})
    assert set(out) == {"image"}


def test_monailabel_item_through_the_inferer_and_the_inversion(tmp_path):
    """The whole evaluator of inference.json (eager network, the checkpoint left out) on MONAI Label's item: a label
    map in the input's grid and affine."""
    models = tmp_path / "models"
    models.mkdir()
    save_genotypes(models / "genotype.json", [GENOTYPE], share_genotype=True, n_nodes=4, search={"cell_config": {"cell_channels": 8}})
    path = _volume(tmp_path / "case.nii.gz", 1)
    parser = _parser("acdc_iac", tmp_path, **SMALL_INFER, datalist=[{"image": path, "image_path": path}],
                     output_dir=str(tmp_path / "out"), window_slices=4, torchscript="false", **{"handlers#0#_disabled_": True})  # fmt: skip
    torch.manual_seed(0)
    parser.get_parsed_content("evaluator").run()
    written = nib.load(str(tmp_path / "out" / "case.nii.gz"))
    source = nib.load(path)
    assert written.shape == source.shape and np.allclose(written.affine, source.affine)
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2, 3}
    net = parser.get_parsed_content("network")  # the eager IAC network (slice-wise), built from genotype.json
    assert not isinstance(net, torch.jit.ScriptModule) and any(n.endswith(".gamma") for n, _ in net.named_parameters())
