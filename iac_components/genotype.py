"""Genotypes: the decided (discrete) form of an IAC cell, their JSON files, and their derivation from α and β.

A cell has two input nodes (state 0: the skip feature; state 1: the next coarser encoder feature, resized and
projected) and ``n_nodes`` intermediate nodes (states 2, 3, ...). Intermediate node ``j`` may take any earlier
state as input. A genotype names, per intermediate node, its two inputs and the op on each edge, as in DARTS.

Importance (docs/method.md, "Search space"), recorded by the pruning handler in the history and read by the
analysis: ``importance(e=(i, j), o) = softmax(β_j)_i × softmax(α_e)_o``, the effective mixing weight of op ``o``
on edge ``e`` inside node ``j``. The derivation does not use it: it ranks a node's inputs by β alone and an
edge's ops by α (:func:`derive_from_logits`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from iac_components.ops import OPS
from iac_components.utils import write_json_atomic

__all__ = [
    "GENOTYPE_FORMAT",
    "Genotype",
    "derive_from_logits",
    "derive_genotype",
    "edge_key",
    "edge_importance",
    "genotype_cell_config",
    "genotypes_from_doc",
    "load_genotypes",
    "parse_edge_key",
    "save_genotypes",
]

GENOTYPE_FORMAT = "iac-genotype/1"
NUM_INPUT_NODES = 2


def edge_key(i: int, j: int) -> str:
    """Human-readable name of the edge from state ``i`` into node state ``j`` (``"0->2"``)."""
    return f"{i}->{j}"


def parse_edge_key(key: str) -> tuple[int, int]:
    """Inverse of :func:`edge_key`."""
    try:
        i, j = key.split("->")
        return int(i), int(j)
    except ValueError as e:
        raise ValueError(f"not an edge name: {key!r} (expected 'i->j')") from e


@dataclass(frozen=True)
class Genotype:
    """A decided IAC cell.

    Args:
        nodes: one entry per intermediate node (states 2, 3, ... in order); each entry is two ``(input, op)``
            pairs, ``input`` being the index of an earlier state (0 skip, 1 coarse, 2.. intermediate nodes).
    """

    nodes: tuple[tuple[tuple[int, str], tuple[int, str]], ...]

    def __post_init__(self) -> None:
        nodes = tuple(tuple((int(i), str(op)) for i, op in node) for node in self.nodes)
        object.__setattr__(self, "nodes", nodes)

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    def edges(self) -> list[tuple[int, int, str]]:
        """``(input, node_state, op)`` for every edge of the cell, in node order."""
        return [(i, j + NUM_INPUT_NODES, op) for j, node in enumerate(self.nodes) for i, op in node]

    def validate(self, n_nodes: int | None = None, ops: Sequence[str] | None = None) -> Genotype:
        """Check the genotype against a cell with ``n_nodes`` intermediate nodes and the allowed ``ops``.

        Raises:
            ValueError: one line naming the offending node, input or op.
        """
        if n_nodes is not None and self.n_nodes != n_nodes:
            raise ValueError(f"genotype has {self.n_nodes} nodes but the cell has {n_nodes}")
        allowed = set(OPS) if ops is None else set(ops)
        for j, node in enumerate(self.nodes):
            state = j + NUM_INPUT_NODES
            if len(node) != 2:
                raise ValueError(f"node {state} has {len(node)} inputs; a genotype node takes exactly 2")
            inputs = [i for i, _ in node]
            if len(set(inputs)) != 2:
                raise ValueError(f"node {state} takes input {inputs[0]} twice")
            for i, op in node:
                if not 0 <= i < state:
                    raise ValueError(f"node {state} cannot take input {i}: only states 0..{state - 1} precede it")
                if op not in allowed:
                    raise ValueError(f"node {state} uses unknown op {op!r}; valid ops: {', '.join(sorted(allowed))}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"nodes": [[{"input": i, "op": op} for i, op in node] for node in self.nodes]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Genotype:
        try:
            return cls(tuple(tuple((e["input"], e["op"]) for e in node) for node in d["nodes"]))
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a genotype: expected {{'nodes': [[{{'input', 'op'}}, ...], ...]}}, got {d!r}"[:300]) from e

    def __str__(self) -> str:
        return "; ".join(
            f"n{j + NUM_INPUT_NODES}=" + "+".join(f"{op}({i})" for i, op in node) for j, node in enumerate(self.nodes)
        )


def save_genotypes(
    path: str | os.PathLike, genotypes: Sequence[Genotype], share_genotype: bool, **meta: Any
) -> str:
    """Write ``genotype.json``: the genotype(s), whether one is shared by all levels, and free metadata."""
    if share_genotype and len(genotypes) != 1:
        raise ValueError(f"a shared genotype is one genotype, got {len(genotypes)}")
    doc = {
        "format": GENOTYPE_FORMAT,
        "share_genotype": bool(share_genotype),
        "genotypes": [g.to_dict() for g in genotypes],
        "text": [str(g) for g in genotypes],
        **meta,
    }
    return str(write_json_atomic(path, doc))


def load_genotypes(
    path: str | os.PathLike, num_levels: int | None = None, ops: Sequence[str] | None = None
) -> list[Genotype]:
    """Read ``genotype.json`` and return one genotype per level (a shared one repeated ``num_levels`` times).

    Raises:
        FileNotFoundError: the file does not exist (the message says to run the search first).
        ValueError: the file is not a genotype file, or does not fit ``num_levels`` / ``ops``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"genotype file not found: {path} (run the search workflow first: search.json)")
    try:
        with open(path) as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"genotype file {path} is not valid JSON: {e}") from e
    return genotypes_from_doc(doc, num_levels, ops, source=path)


def genotypes_from_doc(
    doc: Any, num_levels: int | None = None, ops: Sequence[str] | None = None, source: str = "genotype"
) -> list[Genotype]:
    """:func:`load_genotypes` on the parsed content of a ``genotype.json`` (e.g. carried inside nnU-Net plans);
    ``source`` names it in errors."""
    if not isinstance(doc, dict) or doc.get("format") != GENOTYPE_FORMAT:
        raise ValueError(f"{source} is not a genotype file (expected format {GENOTYPE_FORMAT!r})")
    genotypes = [Genotype.from_dict(g) for g in doc["genotypes"]]
    n_nodes = doc.get("n_nodes")
    for g in genotypes:
        try:
            g.validate(n_nodes=n_nodes, ops=ops)
        except ValueError as e:
            raise ValueError(f"{source}: {e}") from e
    if doc.get("share_genotype", len(genotypes) == 1):
        return genotypes * (num_levels or 1)
    if num_levels is not None and len(genotypes) != num_levels:
        raise ValueError(f"{source} holds {len(genotypes)} per-level genotypes but the network has {num_levels} skips")
    return genotypes


def genotype_cell_config(path: str | os.PathLike) -> dict[str, Any]:
    """The cell configuration the search recorded in ``genotype.json`` (``search.cell_config``: ops, n_nodes,
    cell_channels, partial_k, share_genotype, spatial_dims, feature_channels), or ``{}`` for a genotype written
    by hand. Retrain, evaluation, inference and export read the cell's width from here, so that a search run
    with ``--cell_channels 16`` needs no repeated flag downstream."""
    try:
        with open(os.fspath(path)) as f:
            doc = json.load(f)
    except (OSError, json.JSONDecodeError):
        return {}  # load_genotypes reports a missing or broken file with its own one-line error
    config = (doc.get("search") or {}).get("cell_config") if isinstance(doc, dict) else None
    return dict(config) if isinstance(config, dict) else {}


def edge_importance(
    alphas: Mapping[str, torch.Tensor], betas: Mapping[int, torch.Tensor], node_inputs: Mapping[int, Sequence[int]]
) -> dict[str, torch.Tensor]:
    """``importance(e, o) = softmax(β_j)_e × softmax(α_e)_o`` for every live edge.

    Args:
        alphas: edge key -> α logits over the edge's live ops.
        betas: node state -> β logits over the node's live inputs (in the order of ``node_inputs[j]``).
        node_inputs: node state -> its live inputs.
    """
    out = {}
    for j, inputs in node_inputs.items():
        q = torch.softmax(betas[j].detach().float(), dim=0)
        for k, i in enumerate(inputs):
            out[edge_key(i, j)] = q[k] * torch.softmax(alphas[edge_key(i, j)].detach().float(), dim=0)
    return out


def derive_from_logits(
    alphas: Mapping[str, Mapping[str, float]], betas: Mapping[str | int, Mapping[str | int, float]]
) -> Genotype:
    """Derive the discrete cell from logits: per node its top-2 inputs by β, per edge its best op by α (never
    ``none`` while another op is alive).

    The node's choice uses β alone, so it does not depend on how many ops an edge still has: scoring an edge by
    ``softmax(β)·max softmax(α)`` over its *live* ops (PC-DARTS's derivation on an unpruned supernet) gives an
    edge already cut to one op ``p = 1`` against about ``1/8`` for an uncut edge, and a node would keep whichever
    edges happened to be cut first. The same function serves the pruning rule, a full search and the replay.

    Args:
        alphas: edge key ``"i->j"`` -> op -> α logit, over the live ops of every live edge.
        betas: node state -> input state -> β logit, over the node's live inputs.
    """
    nodes = []
    for j in sorted(betas, key=int):
        inputs = sorted(betas[j], key=lambda i: (-float(betas[j][i]), int(i)))[:2]
        if len(inputs) < 2:
            raise ValueError(f"node {j} has {len(inputs)} live inputs; a genotype needs 2")
        chosen = []
        for i in sorted(inputs, key=int):
            ops = alphas[edge_key(int(i), int(j))]
            candidates = [o for o in ops if o != "none"] or list(ops)
            chosen.append((int(i), max(candidates, key=lambda o: float(ops[o]))))
        nodes.append(tuple(chosen))
    return Genotype(tuple(nodes))


def derive_genotype(
    alphas: Mapping[str, torch.Tensor],
    betas: Mapping[int, torch.Tensor],
    node_inputs: Mapping[int, Sequence[int]],
    edge_ops: Mapping[str, Sequence[str]],
) -> Genotype:
    """:func:`derive_from_logits` on α/β tensors over the live structure (``node_inputs``, ``edge_ops``)."""
    return derive_from_logits(
        {k: dict(zip(edge_ops[k], alphas[k].detach().float().tolist())) for k in edge_ops},
        {j: dict(zip(node_inputs[j], betas[j].detach().float().tolist())) for j in node_inputs},
    )
