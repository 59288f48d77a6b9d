"""Patient-level metrics: hand-computed Dice and spacing-aware HD95, the BraTS empty-class convention,
regions, summaries and the written files."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from iac_components.metrics import case_metrics, summarize_metrics, write_metrics

CLASSES = ["background", "dot", "box", "absent", "missed", "spurious"]
SPACING = (1.0, 2.0, 3.0)
SHAPE = (6, 5, 4)



def _case():
    gt = np.zeros(SHAPE, np.int64)
    pred = np.zeros(SHAPE, np.int64)
    gt[1, 1, 1] = 1  # "dot": one voxel, predicted one voxel off in every axis
    pred[2, 2, 2] = 1
    gt[3:5, 0:2, 0] = 2  # "box": 2 x 2 x 1, predicted 2 x 3 x 1 (one extra row along axis 1)
    pred[3:5, 0:3, 0] = 2
    # class 3 "absent": empty in both
    gt[0, 4, 3] = 4  # "missed": only in the ground truth
    pred[5, 4, 3] = 5  # "spurious": only in the prediction
    return pred, gt


def test_dice_and_hd95_equal_hand_computed_values():
    pred, gt = _case()
    r = case_metrics(pred, gt, CLASSES, spacing=SPACING)
    diag = math.sqrt((6 * 1.0) ** 2 + (5 * 2.0) ** 2 + (4 * 3.0) ** 2)  # image diagonal in mm
    assert r["dice"] == pytest.approx({"dot": 0.0, "box": 2 * 4 / (4 + 6), "absent": 1.0, "missed": 0.0, "spurious": 0.0})
    assert r["hd95"] == pytest.approx(
        {
            "dot": math.sqrt(1.0**2 + 2.0**2 + 3.0**2),  # one voxel step per axis, in mm
            "box": 2.0,  # extra row one voxel away along axis 1 (2 mm)
            "absent": 0.0,
            "missed": diag,
            "spurious": diag,
        }
    )
    assert r["empty"] == {"dot": "", "box": "", "absent": "both", "missed": "pred", "spurious": "gt"}


def test_spacing_changes_hd95_not_dice():
    pred, gt = _case()
    iso = case_metrics(pred, gt, CLASSES, spacing=None)
    assert iso["hd95"]["dot"] == pytest.approx(math.sqrt(3.0))
    assert iso["hd95"]["box"] == pytest.approx(1.0)
    assert iso["dice"] == case_metrics(pred, gt, CLASSES, spacing=SPACING)["dice"]


def test_fixed_hd95_max_and_regions():
    pred, gt = _case()
    r = case_metrics(pred, gt, CLASSES, spacing=SPACING, regions={"dot+box": [1, 2]}, hd95_max=373.13)
    assert r["hd95"]["missed"] == 373.13 and r["hd95"]["spurious"] == 373.13
    assert r["dice"]["dot+box"] == pytest.approx(2 * 4 / (5 + 7))


def test_hd95_matches_a_brute_force_oracle():
    from scipy.ndimage import binary_erosion

    rng = np.random.default_rng(0)
    g = np.zeros((20, 18, 7), bool)
    p = np.zeros_like(g)
    g[4:14, 5:15, 1:6] = True
    p[6:16, 4:13, 2:7] = True
    p[rng.integers(0, 20, 5), rng.integers(0, 18, 5), rng.integers(0, 7, 5)] = True
    sp = np.array([0.8, 1.3, 4.0])

    def edges(m):
        return np.argwhere(m & ~binary_erosion(m)) * sp

    a, b = edges(p), edges(g)
    d = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    expected = max(np.percentile(d.min(1), 95), np.percentile(d.min(0), 95))
    r = case_metrics(p.astype(int), g.astype(int), ["bg", "fg"], spacing=sp)
    assert r["hd95"]["fg"] == pytest.approx(expected, rel=1e-5)
    assert r["dice"]["fg"] == pytest.approx(2 * (p & g).sum() / (p.sum() + g.sum()), rel=1e-6)


def test_summary_counts_empty_cases_and_files_are_written(tmp_path):
    pred, gt = _case()
    r1 = dict(case_metrics(pred, gt, CLASSES, spacing=SPACING), case_id="c1", patient_id="p1")
    r2 = dict(case_metrics(gt, gt, CLASSES, spacing=SPACING), case_id="c2", patient_id="p1")
    s = summarize_metrics([r1, r2], CLASSES)
    assert s["num_cases"] == 2 and s["num_patients"] == 1
    assert s["classes"]["box"]["dice"]["mean"] == pytest.approx((0.8 + 1.0) / 2)
    assert s["classes"]["box"]["dice"]["std"] == pytest.approx(0.1)
    assert s["classes"]["absent"]["empty_both"] == 2
    assert s["classes"]["missed"] == {**s["classes"]["missed"], "empty_pred": 1, "empty_gt": 0, "empty_both": 0}
    assert s["classes"]["spurious"]["empty_gt"] == 1 and s["classes"]["spurious"]["empty_both"] == 1
    per_class = [np.mean([r1["dice"][n], r2["dice"][n]]) for n in CLASSES[1:]]
    assert s["mean_dice"] == pytest.approx(np.mean(per_class))
    assert "BraTS convention" in s["empty_convention"]
    csv_path, json_path = write_metrics(tmp_path, [r1, r2], s)
    rows = list(csv.DictReader(open(csv_path)))
    assert [r["case_id"] for r in rows] == ["c1", "c2"] and rows[0]["patient_id"] == "p1"
    assert float(rows[0]["dice_box"]) == pytest.approx(0.8) and float(rows[0]["hd95_dot"]) == pytest.approx(math.sqrt(14))
    assert rows[0]["empty"] == "absent:both;missed:pred;spurious:gt"
    assert json.loads(open(json_path).read()) == json.loads(json.dumps(s))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics_per_case.csv", "metrics_summary.json"]


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ"):
        case_metrics(np.zeros((4, 4, 2)), np.zeros((4, 4, 3)), ["bg", "fg"])
