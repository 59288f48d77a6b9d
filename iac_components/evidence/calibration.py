"""Calibration of the JSD rule: replay rules on a full search's recorded logits with the handler's own code.

:func:`replay_rule` replays one rule on a full (observe-only) search's history and scores it against that search's
final genotype; :func:`sweep_rules` does it for every rule of a grid (:data:`SWEEP` by default). ``iac benchmark``
appends the sweep on its first seed's full search to its report; ``benchmarks/calibrate_rule.py`` runs it at a
given search configuration.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import numpy as np

from iac_components.evidence.genotypes import genotype_agreement
from iac_components.genotype import Genotype, edge_key
from iac_components.search.rule import JSDRule, replay_history

__all__ = ["SWEEP", "replay_rule", "sweep_rules"]

SWEEP = {
    "epsilon": (0.03, 0.1, 0.3),
    "patience": (1, 2, 3),
    "margin": (0.25, 0.5, 1.0, 2.0),
    "window": (16, 32, 64),
    "keep_schedule": ((4, 2, 1), (2, 1)),
}


def sweep_rules(history: dict[str, Any], grid: dict[str, tuple] | None = None) -> dict[str, Any]:
    """Replay every rule of ``grid`` (default :data:`SWEEP`) on one full search (:func:`replay_rule`)."""
    grid = grid or SWEEP
    rows = []
    for values in product(*grid.values()):
        rule = dict(zip(grid, values))
        r = replay_rule(history, **rule)
        rows.append({**r["rule"], "ops_alive_end": r["ops_alive_end"], "decided_step": r["decided_step"],
                     "speedup_proxy": r["speedup_proxy"], "agreement_edges": r["agreement"]["edges"],
                     "agreement_nodes": r["agreement"]["nodes"], "safe_first_cuts": r["safe_first_cuts"]})
    chosen = JSDRule().config()
    return {"grid": {k: list(v) for k, v in grid.items()}, "total_arch_steps": history["epochs"][-1]["arch_steps"],
            "rows": rows, "defaults": chosen}


def replay_rule(history: dict[str, Any], group: int = 0, **rule: Any) -> dict[str, Any]:
    """:func:`~iac_components.search.rule.replay_history` of a full search's history with the rule ``rule``,
    scored against the full search's own final genotype.

    Returns:
        the replay's ``rule``, ``cuts``, ``decided_step`` and ``ops_alive_end``; ``first_cuts`` (arch step of each
        edge's first cut), ``speedup_proxy`` (arch steps of the full search / decided_step), ``agreement`` of the
        replayed cell with the full search's final genotype, and ``safe_first_cuts`` (fraction of first edge
        cuts that kept the final op).
    """
    r = replay_history(history, JSDRule(**rule), group=group)
    final = Genotype.from_dict(history["final_genotypes"][group])
    final_ops = {edge_key(i, j): op for i, j, op in final.edges()}
    first_cuts: dict[str, int] = {}
    first_safe: list[bool] = []
    for c in r["cuts"]:
        if c["kind"] == "edge" and c["where"] not in first_cuts:
            first_cuts[c["where"]] = c["arch_step"]
            if c["where"] in final_ops:
                first_safe.append(final_ops[c["where"]] in c["kept"])
    return {
        **r,
        "first_cuts": first_cuts,
        "speedup_proxy": (r["total_arch_steps"] / r["decided_step"]) if r["decided_step"] else 1.0,
        "agreement": genotype_agreement(r["genotype"], final),
        "safe_first_cuts": float(np.mean(first_safe)) if first_safe else None,
    }
