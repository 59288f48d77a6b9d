"""Temporal analysis of a search history (the paper's Figures 3-7), as numbers.

Everything reads a ``search_history.json`` written by :class:`~iac_components.search.JSDPruningHandler`. The
importance of op ``o`` on edge ``e = (i, j)`` at an epoch is ``softmax(β_j)_i · softmax(α_e)_o`` (docs/method.md,
"Search space"); an op or edge that was pruned has importance 0 from then on, so pruned and full searches share
one vector layout: ``(epochs, 14 edges, n_ops)`` in the order of :func:`edge_order` and the search space's op
list.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from iac_components.genotype import NUM_INPUT_NODES, Genotype, edge_key

__all__ = [
    "cosine_similarity_matrix",
    "cosine_to_final",
    "edge_order",
    "emergence",
    "hamming_similarity_matrix",
    "importance_tensor",
    "jsd_series",
    "load_history",
    "topk_codes",
]


def load_history(path: str | os.PathLike) -> dict[str, Any]:
    """Read a search history (a file, or a run folder holding ``search_history.json``).

    Raises:
        FileNotFoundError / ValueError: one line naming the file.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "search_history.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no search history at {path} (run a search first: search.json)")
    with open(path) as f:
        try:
            history = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON: {e}") from e
    if not str(history.get("format", "")).startswith("iac-search-history") or not history.get("epochs"):
        raise ValueError(f"{path} is not a search history with epochs (format iac-search-history/1)")
    return history


def edge_order(n_nodes: int = 4) -> list[str]:
    """The 14 edge keys of a 4-node cell in node order: ``0->2, 1->2, 0->3, ...``."""
    return [edge_key(i, j) for j in range(NUM_INPUT_NODES, NUM_INPUT_NODES + n_nodes) for i in range(j)]


def importance_tensor(history: Mapping[str, Any], group: int = 0, key: str = "importance") -> np.ndarray:
    """``(epochs, edges, ops)`` of ``key`` (``importance``, ``alpha_beta``, ``p``, ...) with 0 for pruned entries."""
    ops = list(history["search_space"]["ops"])
    edges = edge_order(history["search_space"]["n_nodes"])
    out = np.zeros((len(history["epochs"]), len(edges), len(ops)))
    for t, epoch in enumerate(history["epochs"]):
        values = epoch["groups"][group][key]
        for e, k in enumerate(edges):
            for o, v in values.get(k, {}).items():
                out[t, e, ops.index(o)] = v
    return out


def topk_codes(importance: np.ndarray, k: int) -> np.ndarray:
    """Binary codes: per epoch and edge, 1 for the ``k`` ops of highest importance (ties: first op)."""
    order = np.argsort(-importance, axis=-1, kind="stable")
    codes = np.zeros_like(importance, dtype=bool)
    np.put_along_axis(codes, order[..., :k], True, axis=-1)
    return codes


def hamming_similarity_matrix(codes: np.ndarray) -> np.ndarray:
    """``S[a, b]`` = fraction of entries of the binary codes of epochs ``a`` and ``b`` that agree."""
    flat = codes.reshape(codes.shape[0], -1).astype(np.float64)
    agree = flat @ flat.T + (1 - flat) @ (1 - flat).T
    return agree / flat.shape[1]


def cosine_similarity_matrix(importance: np.ndarray) -> np.ndarray:
    """Cosine similarity between the flattened importance vectors of every pair of epochs."""
    flat = importance.reshape(importance.shape[0], -1)
    unit = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
    return unit @ unit.T


def cosine_to_final(importance: np.ndarray) -> np.ndarray:
    """Cosine similarity of each epoch's importance vector to the last epoch's."""
    return cosine_similarity_matrix(importance)[:, -1]


def emergence(
    importance: np.ndarray, epochs: Sequence[int], genotype: Genotype, ops: Sequence[str], n_nodes: int = 4
) -> dict[str, Any]:
    """When the final cell first shows up (paper Fig. 6-7).

    For each edge of ``genotype``, the first epoch at which its final op enters the top-3, top-2 and top-1 of
    that edge and stays there to the end; for each node, the first epoch from which its two final inputs are
    its top-2 by importance (edge score = max over ops). ``None`` where it never happens.
    """
    edges = edge_order(n_nodes)
    out_edges = {}
    for i, j, op in genotype.edges():
        e, o = edges.index(edge_key(i, j)), list(ops).index(op)
        entry = {}
        for k in (3, 2, 1):
            inside = topk_codes(importance[:, e : e + 1, :], k)[:, 0, o]
            entry[f"top{k}"] = _first_from_which(inside, epochs)
        out_edges[edge_key(i, j)] = {"op": op, **entry}
    out_nodes = {}
    for n, node in enumerate(genotype.nodes):
        j = n + NUM_INPUT_NODES
        inputs = list(range(j))
        scores = np.stack([importance[:, edges.index(edge_key(i, j)), :].max(-1) for i in inputs], axis=1)
        final = sorted(i for i, _ in node)
        top2 = np.argsort(-scores, axis=1, kind="stable")[:, :2]
        inside = np.array([sorted(inputs[x] for x in row) == final for row in top2])
        out_nodes[str(j)] = {"inputs": final, "top2": _first_from_which(inside, epochs)}
    return {"edges": out_edges, "nodes": out_nodes}


def _first_from_which(flags: np.ndarray, epochs: Sequence[int]) -> int | None:
    """The first epoch from which ``flags`` stays true to the end."""
    if not flags[-1]:
        return None
    t = len(flags) - 1
    while t > 0 and flags[t - 1]:
        t -= 1
    return int(epochs[t])


def jsd_series(history: Mapping[str, Any], group: int = 0) -> dict[str, Any]:
    """Per edge, at every check: the JSD ``d_e``, the threshold in force and the rule's status.

    Returns ``{"arch_step": [...], "edges": {edge: [d or None, ...]}, "threshold": {edge: [...]},
    "status": {edge: [...]}}`` (None where the edge was not judged at that check).
    """
    checks = [c for e in history["epochs"] for c in e["checks"]]
    steps = [c["arch_step"] for c in checks]
    series: dict[str, dict[str, list]] = {"edges": {}, "threshold": {}, "status": {}}
    for n, c in enumerate(checks):
        for k, v in c["verdicts"][group]["edge"].items():
            for name, value in (("edges", v["d"]), ("threshold", v["threshold"]), ("status", v["status"])):
                series[name].setdefault(k, [None] * len(checks))[n] = value
    return {"arch_step": steps, **series}


def blocked_counts(history: Mapping[str, Any], group: int = 0) -> dict[str, dict[str, int]]:
    """How often each status ended a check of an edge or a node (after the warm-up), and how often only the
    movement (JSD) test stood in the way: ``{"edge": {status: n, ..., "jsd_only": n}, "node": {...}}``."""
    out: dict[str, dict[str, int]] = {"edge": {}, "node": {}}
    for e in history["epochs"]:
        for c in e["checks"]:
            for kind in ("edge", "node"):
                for v in c["verdicts"][group][kind].values():
                    out[kind][v["status"]] = out[kind].get(v["status"], 0) + 1
                    out[kind]["jsd_only"] = out[kind].get("jsd_only", 0) + int(bool(v.get("jsd_only")))
    return out
