"""Each adapter reads its synthetic official layout (real file names) and reports patients, files, channels,
classes; bad layouts fail with one-line errors that name the file or value."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import pytest

from iac_components.data import DATASET_NAMES, DatasetError, get_adapter
from iac_components.data.acdc import read_info_cfg
from iac_components.data.amos import amos_modality

# name -> (patients written, expected cases, channel names, class names, label values, image name regex, label name regex)
EXPECTED = {
    "acdc": (6, 12, ("cine",), ("background", "RV", "MYO", "LV"), (0, 1, 2, 3),
             r"patient\d{3}_frame\d{2}\.nii\.gz", r"patient\d{3}_frame\d{2}_gt\.nii\.gz"),
    "brats2021": (3, 3, ("t1", "t1ce", "t2", "flair"), ("background", "NCR", "ED", "ET"), (0, 1, 2, 4),
                  r"BraTS2021_\d{5}_(t1|t1ce|t2|flair)\.nii\.gz", r"BraTS2021_\d{5}_seg\.nii\.gz"),
    "brats2023": (3, 3, ("t1n", "t1c", "t2w", "t2f"), ("background", "NCR", "ED", "ET"), (0, 1, 2, 3),
                  r"BraTS-GLI-\d{5}-\d{3}-(t1n|t1c|t2w|t2f)\.nii\.gz", r"BraTS-GLI-\d{5}-\d{3}-seg\.nii\.gz"),
    "kits19": (3, 3, ("CT",), ("background", "kidney", "tumor"), (0, 1, 2), r"imaging\.nii\.gz", r"segmentation\.nii\.gz"),
    "kits21": (3, 3, ("CT",), ("background", "kidney", "tumor", "cyst"), (0, 1, 2, 3),
               r"imaging\.nii\.gz", r"aggregated_MAJ_seg\.nii\.gz"),
    "kits23": (3, 3, ("CT",), ("background", "kidney", "tumor", "cyst"), (0, 1, 2, 3),
               r"imaging\.nii\.gz", r"segmentation\.nii\.gz"),
    "amos": (4, 4, ("image",), None, tuple(range(16)), r"amos_\d{4}\.nii\.gz", r"amos_\d{4}\.nii\.gz"),
    "msd": (3, 3, ("T2", "ADC"), ("background", "PZ", "TZ"), (0, 1, 2), r"prostate_\d{2}\.nii\.gz", r"prostate_\d{2}\.nii\.gz"),
    "nnunet": (3, 3, ("T2", "ADC"), ("background", "organ", "lesion"), (0, 1, 2),
               r"case_\d{4}_000[01]\.nii\.gz", r"case_\d{4}\.nii\.gz"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_adapter_reads_synthetic_layout(name, synth_root):
    patients, n_cases, channels, classes, values, img_re, lab_re = EXPECTED[name]
    root = synth_root(name, patients=patients)
    adapter = get_adapter(name, root)
    cases = adapter.cases()
    assert len(cases) == n_cases
    assert tuple(adapter.channel_names) == channels
    if classes is not None:
        assert tuple(adapter.class_names) == classes
    assert len(adapter.class_names) == len(values)
    assert tuple(adapter.label_values) == values
    for c in cases:
        assert c.label is not None and Path(c.label).is_file()
        assert re.fullmatch(lab_re, Path(c.label).name), c.label
        n_files = 1 if name == "msd" else len(channels)  # MSD keeps channels in one 4-D file
        assert len(c.image) == n_files
        for f in c.image:
            assert Path(f).is_file() and re.fullmatch(img_re, Path(f).name), f
    info = adapter.describe()
    assert info["num_cases"] == n_cases and info["num_patients"] == len(adapter.patients())
    assert info["channel_names"] == list(channels)


def test_acdc_cases_are_ed_and_es_of_one_patient(synth_root):
    root = synth_root("acdc", patients=6)
    adapter = get_adapter("acdc", root)
    patients = adapter.patients()
    assert len(patients) == 6
    assert sorted(p for p in patients) == ["patient001", "patient002", "patient003", "patient004", "patient101", "patient102"]
    for pid, cases in patients.items():
        assert [c.meta["phase"] for c in cases] == ["ED", "ES"]
        info = read_info_cfg(root / cases[0].subset / pid / "Info.cfg")
        assert cases[0].image[0].endswith(f"{pid}_frame{info['ED']:02d}.nii.gz")
        assert cases[1].label.endswith(f"{pid}_frame{info['ES']:02d}_gt.nii.gz")
        assert set(info) >= {"ED", "ES", "Group", "Height", "NbFrame", "Weight"}
        assert Path(cases[0].meta["file_4d"]).name == f"{pid}_4d.nii.gz"
        assert nib.load(cases[0].meta["file_4d"]).shape[3] == info["NbFrame"]
    subsets = {pid: cases[0].subset for pid, cases in patients.items()}
    assert subsets["patient001"] == "training" and subsets["patient101"] == "testing"
    only_train = get_adapter("acdc", root, subsets=("training",))
    assert len(only_train.patients()) == 4


def test_brats_auto_detects_version(synth_root):
    a21 = get_adapter("brats", synth_root("brats2021", patients=3))
    a23 = get_adapter("brats", synth_root("brats2023", patients=3))
    assert (a21.name, a21.label_values[-1]) == ("brats2021", 4)
    assert (a23.name, a23.label_values[-1]) == ("brats2023", 3)
    assert a23.cases()[0].patient_id == "BraTS-GLI-00000"


def test_kits_is_stored_z_y_x_with_matching_affine(synth_root):
    root = synth_root("kits21", patients=3)
    case = get_adapter("kits21", root).cases()[0]
    img = nib.load(case.image[0])
    assert nib.aff2axcodes(img.affine)[0] in ("I", "S")  # first voxel axis is the axial one
    assert img.shape[0] < img.shape[1] == img.shape[2]
    assert "kits21/data/case_00000" in case.image[0]


def test_amos_modality_by_id(synth_root):
    adapter = get_adapter("amos", synth_root("amos", patients=4))
    mods = {c.case_id: c.modality for c in adapter.cases()}
    assert mods == {"amos_0001": "CT", "amos_0002": "CT", "amos_0003": "CT", "amos_0504": "MRI"}
    assert amos_modality("amos_0500") == "CT" and amos_modality("amos_0501") == "MRI"
    assert adapter.class_names[1] == "spleen" and adapter.class_names[15] == "prostate/uterus"
    ct_only = get_adapter("amos", synth_root("amos", patients=4), modalities=("CT",))
    assert len(ct_only.cases()) == 3


def test_msd_and_nnunet_read_dataset_json(synth_root):
    msd = get_adapter("msd", synth_root("msd", patients=3))
    assert nib.load(msd.cases()[0].image[0]).shape[-1] == 2  # channels last in one 4-D file
    assert msd.modality == "MRI"
    nn_root = synth_root("nnunet", patients=3)
    nn = get_adapter("nnunet", nn_root.parent)  # nnUNet_raw holding one DatasetNNN_Name
    meta = json.loads((nn_root / "dataset.json").read_text())
    assert meta["file_ending"] == ".nii.gz" and meta["numTraining"] == 3
    assert meta["labels"] == {"background": 0, "organ": 1, "lesion": 2}
    assert [Path(f).name for f in nn.cases()[0].image] == ["case_0000_0000.nii.gz", "case_0000_0001.nii.gz"]


def test_unknown_dataset_name_lists_valid_names(tmp_path):
    with pytest.raises(DatasetError) as e:
        get_adapter("acdcc", tmp_path)
    msg = str(e.value)
    assert "acdcc" in msg and "\n" not in msg
    for n in DATASET_NAMES:
        assert n in msg


def test_missing_label_file_names_the_file(raw_copy):
    root = raw_copy("acdc", patients=3)
    gt = next(root.glob("training/patient002/*_gt.nii.gz"))
    gt.unlink()
    with pytest.raises(DatasetError) as e:
        get_adapter("acdc", root).cases()
    assert str(gt) in str(e.value) and "missing label" in str(e.value) and "\n" not in str(e.value)
    assert len(get_adapter("acdc", root, require_labels=False).cases()) == 6


def test_empty_layout_is_an_error(tmp_path):
    with pytest.raises(DatasetError, match="no cases found"):
        get_adapter("kits23", tmp_path).cases()
    with pytest.raises(DatasetError, match="does not exist"):
        get_adapter("acdc", tmp_path / "nowhere")


def test_nnunet_region_labels_are_rejected(synth_root, tmp_path):
    import shutil

    root = tmp_path / "Dataset002_R"
    shutil.copytree(synth_root("nnunet", patients=3), root)
    meta = json.loads((root / "dataset.json").read_text())
    meta["labels"] = {"background": 0, "whole": [1, 2], "lesion": 2}
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match="region-based label 'whole'"):
        get_adapter("nnunet", root)


def test_each_generic_layout_names_the_other_when_handed_it(synth_root, tmp_path):
    """custom_iac defaults to the nnU-Net layout; the adapters refuse the other layout in one line naming the flag,
    and get_adapter reads the layout from dataset.json, so that custom_iac takes either without a flag."""
    from iac_components.data.msd import MSDAdapter
    from iac_components.data.nnunet import NNUNetAdapter

    msd = synth_root("msd")
    with pytest.raises(DatasetError, match=r"is in the MSD layout .*: pass --dataset msd"):
        NNUNetAdapter(msd)
    assert get_adapter("nnunet", msd).name == "msd"
    nnunet = synth_root("nnunet")
    root = next(p for p in Path(nnunet).rglob("dataset.json")).parent
    with pytest.raises(DatasetError, match=r"is in the nnU-Net v2 raw layout .*: pass --dataset nnunet"):
        MSDAdapter(root)
    assert get_adapter("msd", root).name == "nnunet"
