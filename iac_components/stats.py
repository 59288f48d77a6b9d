"""Paired, patient-level comparisons of segmentation results (Wilcoxon signed-rank and bootstrap 95 % CIs).

Cases are averaged per patient first (an ACDC patient's ED and ES frames are one patient), so the unit of the
test is the patient, as in the paper and nnU-Net's evaluation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["compare_runs", "paired_comparison", "per_patient_dice", "tost_paired"]


def per_patient_dice(rows: Sequence[Mapping[str, Any]], classes: Sequence[str] | None = None) -> dict[str, float]:
    """Mean Dice over the foreground ``classes`` (default: every class in the rows) per case, then per patient.

    Args:
        rows: per-case results (``case_metrics`` rows with ``patient_id`` and a ``dice`` dict).
        classes: the classes to average; regions (BraTS WT/TC/ET) are left out unless named.
    """
    per_patient: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        names = list(classes) if classes is not None else list(r["dice"])
        per_patient[str(r.get("patient_id", r.get("case_id")))].append(float(np.mean([r["dice"][n] for n in names])))
    return {p: float(np.mean(v)) for p, v in sorted(per_patient.items())}


def paired_comparison(
    a: Mapping[str, float], b: Mapping[str, float], n_boot: int = 10_000, seed: int = 0
) -> dict[str, Any]:
    """Compare ``a`` against ``b`` on the patients both have: mean difference ``a - b``, its bootstrap 95 %
    confidence interval (percentile, patients resampled), and the two-sided Wilcoxon signed-rank test.

    Raises:
        ValueError: when the two share no patient.
    """
    from scipy.stats import wilcoxon

    common = sorted(set(a) & set(b))
    if not common:
        raise ValueError("the two results share no patient")
    x = np.array([a[p] for p in common])
    y = np.array([b[p] for p in common])
    d = x - y
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    if np.allclose(d, 0):
        stat, p = 0.0, 1.0
    else:
        res = wilcoxon(x, y, zero_method="wilcox", alternative="two-sided")
        stat, p = float(res.statistic), float(res.pvalue)
    return {
        "n_patients": len(common),
        "mean_a": float(x.mean()),
        "mean_b": float(y.mean()),
        "mean_diff": float(d.mean()),
        "ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))],
        "wilcoxon_statistic": stat,
        "wilcoxon_p": p,
        "wins": int((d > 0).sum()),
        "losses": int((d < 0).sum()),
    }


def compare_runs(rows: Mapping[str, Sequence[Mapping[str, Any]]], reference: str | None = None) -> dict[str, Any]:
    """Per-patient mean Dice of each named run and each run's paired comparison with ``reference`` (default:
    the last run, e.g. the baseline)."""
    dice = {name: per_patient_dice(r) for name, r in rows.items()}
    reference = reference or list(rows)[-1]
    return {
        "reference": reference,
        "per_patient_dice": dice,
        "vs_reference": {n: paired_comparison(dice[n], dice[reference]) for n in rows if n != reference},
    }


def tost_paired(a: Mapping[str, float], b: Mapping[str, float], margin: float, alpha: float = 0.05) -> dict[str, Any]:
    """Equivalence of ``a`` and ``b`` within ``±margin`` by two one-sided paired t-tests (TOST, Schuirmann).

    ``p_lower`` tests H0: mean(a - b) <= -margin, ``p_upper`` H0: mean(a - b) >= +margin; ``p_tost`` is the larger
    of the two, and the two are equivalent at level ``alpha`` when ``p_tost < alpha`` (equivalently, when the
    ``1 - 2 alpha`` confidence interval of the mean difference, ``ci90`` at the default, lies inside the margin).

    Raises:
        ValueError: fewer than two shared patients, or a margin that is not positive.
    """
    from scipy.stats import t as student_t

    if not margin > 0:
        raise ValueError(f"the equivalence margin must be > 0, got {margin}")
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        raise ValueError(f"TOST needs at least two shared patients, got {len(common)}")
    d = np.array([a[p] - b[p] for p in common], dtype=np.float64)
    n, mean = len(d), float(d.mean())
    se = float(d.std(ddof=1) / np.sqrt(n))
    df = n - 1
    if se == 0.0:  # identical differences: equivalent exactly when they lie inside the margin
        p_lower = 0.0 if mean > -margin else 1.0
        p_upper = 0.0 if mean < margin else 1.0
        half = 0.0
    else:
        p_lower = float(student_t.sf((mean + margin) / se, df))
        p_upper = float(student_t.cdf((mean - margin) / se, df))
        half = float(student_t.ppf(1 - alpha, df) * se)
    p_tost = max(p_lower, p_upper)
    return {
        "n_pairs": n,
        "margin": float(margin),
        "mean_diff": mean,
        "p_lower": p_lower,
        "p_upper": p_upper,
        "p_tost": p_tost,
        f"ci{round(100 * (1 - 2 * alpha))}": [mean - half, mean + half],
        "equivalent": bool(p_tost < alpha),
    }
