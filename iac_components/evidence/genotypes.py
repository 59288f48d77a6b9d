"""The benchmark's genotype helpers: the random control arm's cell, and how much two cells agree."""

from __future__ import annotations

import random

import numpy as np

from iac_components.genotype import Genotype
from iac_components.ops import DEFAULT_OPS

__all__ = ["chance_agreement", "genotype_agreement", "random_genotype"]


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


def chance_agreement(n_nodes: int = 4, ops: tuple[str, ...] = DEFAULT_OPS) -> dict[str, float]:
    """The :func:`genotype_agreement` two independent :func:`random_genotype` cells have on average, exactly.

    Each node's space (two of its ``j + 2`` earlier states, an op on each) is enumerated to get the probability
    of every edge, input and input pair; for independent cells the expected number shared is the sum of the
    squared probabilities, and the three fractions average these counts over the ``2 n_nodes`` edges (edges,
    inputs) or the nodes (nodes)."""
    from collections import Counter
    from itertools import combinations, product

    shared_edges = shared_inputs = same_nodes = 0.0
    for j in range(n_nodes):
        edges: Counter = Counter()
        inputs: Counter = Counter()
        pairs: Counter = Counter()
        cells = [(pair, chosen) for pair in combinations(range(j + 2), 2) for chosen in product(ops, repeat=2)]
        for pair, chosen in cells:
            edges.update(zip(pair, chosen))
            inputs.update(pair)
            pairs[pair] += 1
        n = len(cells)
        shared_edges += sum((c / n) ** 2 for c in edges.values())
        shared_inputs += sum((c / n) ** 2 for c in inputs.values())
        same_nodes += sum((c / n) ** 2 for c in pairs.values())
    return {"edges": shared_edges / (2 * n_nodes), "inputs": shared_inputs / (2 * n_nodes), "nodes": same_nodes / n_nodes}
