"""Paired, patient-level comparisons of segmentation results (Wilcoxon signed-rank and bootstrap 95 % CIs).

Cases are averaged per patient first (an ACDC patient's ED and ES frames are one patient), so the unit of the
test is the patient, as in the paper and nnU-Net's evaluation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["cell_level_test", "compare_runs", "joint_bootstrap", "paired_comparison", "per_patient_dice", "tost_from_draws",
           "tost_paired"]


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


# --------------------------------------------------------------------------------------- cells as the unit
def cell_level_test(searched: Sequence[float], random: Sequence[float], max_exact: int = 200_000,
                    n_perm: int = 100_000, seed: int = 0) -> dict[str, Any]:
    """Does a searched cell beat a random one? One value per cell (its mean test Dice), the cell as the unit.

    A one-sided permutation test of ``mean(searched) - mean(random)``: under H0 (searching is no better than drawing
    a cell at random) the labels "searched" and "random" are exchangeable, so ``p`` is the share of relabellings
    whose difference is at least the observed one (exact enumeration when there are at most ``max_exact``
    relabellings, else ``n_perm`` random ones, counting the observed one). Also the one-sided Mann-Whitney U test
    and each searched cell's rank among the random ones (1 = above every random cell).

    Raises:
        ValueError: a group with no cell.
    """
    from itertools import combinations
    from math import comb

    from scipy.stats import mannwhitneyu

    s, r = np.asarray(searched, dtype=float), np.asarray(random, dtype=float)
    if len(s) == 0 or len(r) == 0:
        raise ValueError(f"need at least one searched and one random cell, got {len(s)} and {len(r)}")
    pooled, k = np.concatenate([s, r]), len(s)
    observed = float(s.mean() - r.mean())
    total = pooled.sum()

    def diff(sum_s: np.ndarray) -> np.ndarray:
        return sum_s / k - (total - sum_s) / (len(pooled) - k)

    if comb(len(pooled), k) <= max_exact:
        sums = np.array([pooled[list(c)].sum() for c in combinations(range(len(pooled)), k)])
        p, exact = float(np.mean(diff(sums) >= observed - 1e-12)), True
    else:
        rng = np.random.default_rng(seed)
        sums = np.array([pooled[rng.permutation(len(pooled))[:k]].sum() for _ in range(n_perm)])
        p, exact = float((np.sum(diff(sums) >= observed - 1e-12) + 1) / (n_perm + 1)), False
    mw = mannwhitneyu(s, r, alternative="greater") if len(s) and len(r) else None
    return {
        "n_searched": int(len(s)), "n_random": int(len(r)), "mean_searched": float(s.mean()),
        "mean_random": float(r.mean()), "mean_diff": observed, "p": p, "exact": exact,
        "p_mannwhitney": float(mw.pvalue), "sd_random": float(r.std(ddof=1)) if len(r) > 1 else None,
        "rank_among_random": [int(1 + np.sum(r > v)) for v in s],
    }  # fmt: skip


def joint_bootstrap(cells: Mapping[str, Mapping[str, float]], a: Sequence[str], b: Sequence[str],
                    paired: bool = False, n_boot: int = 10_000, seed: int = 0) -> dict[str, Any]:
    """Mean of group ``a``'s cells minus mean of group ``b``'s, with a bootstrap that resamples the patients and the
    cells together: every cell is scored on the same test patients, so the patients are resampled once per draw and
    shared by both groups, and each group's cells are resampled within it (``paired``: ``a[i]`` and ``b[i]`` belong
    together, e.g. LTH and the full search of one search seed, and are drawn together).

    Args:
        cells: cell name -> patient -> value (mean Dice of that patient).
        a, b: the names of the two groups' cells.

    Returns:
        ``mean_diff``, ``ci95`` and ``ci90`` (percentile), the draws' ``quantiles`` and the draws themselves
        (``draws``, for :func:`tost_from_draws`), ``n_a``, ``n_b``, ``n_patients``.
    """
    if not a or not b:
        raise ValueError("each group needs at least one cell")
    if paired and len(a) != len(b):
        raise ValueError(f"paired groups need the same number of cells, got {len(a)} and {len(b)}")
    patients = sorted(set.intersection(*(set(cells[c]) for c in (*a, *b))))
    if not patients:
        raise ValueError("the cells share no patient")
    A = np.array([[cells[c][p] for p in patients] for c in a])
    B = np.array([[cells[c][p] for p in patients] for c in b])
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for n in range(n_boot):
        idx = rng.integers(0, len(patients), len(patients))
        ia = rng.integers(0, len(a), len(a))
        ib = ia if paired else rng.integers(0, len(b), len(b))
        draws[n] = A[ia][:, idx].mean() - B[ib][:, idx].mean()
    q = np.percentile(draws, [2.5, 5, 50, 95, 97.5])
    return {"mean_diff": float(A.mean() - B.mean()), "ci95": [float(q[0]), float(q[4])], "ci90": [float(q[1]), float(q[3])],
            "n_a": len(a), "n_b": len(b), "n_patients": len(patients), "paired": bool(paired), "draws": draws}  # fmt: skip


def tost_from_draws(draws: Sequence[float], margin: float) -> dict[str, Any]:
    """Equivalence within ``±margin`` from bootstrap draws of a difference: ``p_lower`` is the share of draws below
    ``-margin``, ``p_upper`` above ``+margin``, ``p_tost`` the larger (equivalent at 5 % when the 90 % interval lies
    inside the margin). ``smallest_margin``: the narrowest margin at which the two pass at 5 % (the larger absolute
    end of the 90 % interval)."""
    d = np.asarray(draws, dtype=float)
    if not margin > 0:
        raise ValueError(f"the equivalence margin must be > 0, got {margin}")
    lo, hi = np.percentile(d, [5, 95])
    p_lower, p_upper = float(np.mean(d < -margin)), float(np.mean(d > margin))
    return {"margin": float(margin), "p_lower": p_lower, "p_upper": p_upper, "p_tost": max(p_lower, p_upper),
            "equivalent": bool(max(p_lower, p_upper) < 0.05), "smallest_margin": float(max(abs(lo), abs(hi)))}  # fmt: skip
