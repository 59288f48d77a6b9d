"""The benchmark's genotype helpers: the random control arm's cell, and how much two cells agree."""

from __future__ import annotations

import random

import numpy as np

from iac_components.genotype import Genotype
from iac_components.ops import DEFAULT_OPS

__all__ = ["genotype_agreement", "random_genotype"]


def random_genotype(seed: int, n_nodes: int = 4, ops: tuple[str, ...] = DEFAULT_OPS) -> Genotype:
    """A uniformly random cell: per node two distinct earlier states, each with a random op."""
    rng = random.Random(seed)
    nodes = []
    for j in range(n_nodes):
        inputs = sorted(rng.sample(range(j + 2), 2))
        nodes.append(tuple((i, rng.choice(ops)) for i in inputs))
    return Genotype(tuple(nodes))


def genotype_agreement(a: Genotype, b: Genotype) -> dict[str, float]:
    """How much two cells agree: ``edges``, the fraction of ``a``'s edges (input and op) that ``b`` has too;
    ``inputs``, the same ignoring ops; ``nodes``, the fraction of nodes with the same two inputs."""
    ea, eb = set(a.edges()), set(b.edges())
    ia = {(i, j) for i, j, _ in ea}
    ib = {(i, j) for i, j, _ in eb}
    nodes = [sorted(i for i, _ in x) == sorted(i for i, _ in y) for x, y in zip(a.nodes, b.nodes)]
    return {"edges": len(ea & eb) / len(ea), "inputs": len(ia & ib) / len(ia), "nodes": float(np.mean(nodes))}
