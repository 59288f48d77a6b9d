"""Controls for the JSD rule at an equal budget: other ways to decide the cell, behind the rule's interface.

The benchmark asks whether IAC-LTH's decisions are better than decisions of the same kind taken differently
(``iac benchmark``; docs/method.md):

* :class:`RandomCuts`: cuts at the arch steps where a recorded IAC-LTH search cut, of the same kind and size, on
  the same edge or node where it is still undecided (else on another undecided one), but keeping names drawn at
  random; what is left undecided after LTH's last cut is decided at random there. The search ends at LTH's last
  arch step: when the redirected cuts finish the cell earlier (random node cuts leave other edges than LTH's), it
  goes on with the decided cell until then (:meth:`RandomCuts.may_stop`), so both spend the same arch steps.
  Does the *choice* by α matter, given the same schedule?
* :class:`SGASSchedule`: an SGAS-style greedy schedule (Li et al., CVPR 2020): every ``every`` arch steps one
  decision, on the undecided edge or node with the highest score (importance × selection certainty: the
  non-``none`` mass times one minus the normalised entropy of the edge's other ops; the top-2 mass of a node's
  β times one minus its normalised entropy), which is discretised at once (an edge to its best non-``none`` op,
  a node to its top-2 inputs). With ``every`` set from LTH's arch steps, it decides within LTH's budget.

Each has :meth:`check_cell` with :meth:`JSDRule.check_cell <iac_components.search.rule.JSDRule.check_cell>`'s
signature and return value, so the pruning handler carries out their cuts exactly as the rule's (one
mechanism: the surgery, the optimisers, the history and the termination are the handler's). Their decisions
depend only on the arch step and the live logits (random draws are seeded by the decision's place and time),
so a resumed search makes the same ones; their own state (what is done) is checkpointed by the handler.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from iac_components.search.rule import (
    CellTracks,
    Cut,
    JSDRule,
    Verdict,
    next_keep_size,
    softmax,
)

__all__ = ["CONTROLS", "RandomCuts", "SGASSchedule", "make_control"]


def _undecided(alphas: Mapping[str, Mapping[str, float]], betas: Mapping[str, Mapping[str, float]]):
    edges = [k for k, ops in alphas.items() if len(ops) > 1]
    nodes = [j for j, ins in betas.items() if len(ins) > 2]
    return edges, nodes


def _drop(alphas: dict[str, dict[str, float]], betas: dict[str, dict[str, float]], cut: Cut) -> None:
    """Apply ``cut`` to the local copies of the live structure (the handler applies it to the network)."""
    if cut.kind == "node":
        betas[cut.where] = {i: v for i, v in betas[cut.where].items() if i in cut.kept}
        for i in cut.dropped:
            alphas.pop(f"{i}->{cut.where}", None)
    else:
        alphas[cut.where] = {o: v for o, v in alphas[cut.where].items() if o in cut.kept}


def _entropy_certainty(p: Mapping[str, float]) -> float:
    """One minus the normalised entropy of ``p`` (1 for a one-hot or a single name, 0 for a uniform one)."""
    n = len(p)
    if n <= 1:
        return 1.0
    s = sum(p.values()) or 1.0
    h = -sum((v / s) * math.log(v / s) for v in p.values() if v > 0)
    return 1.0 - h / math.log(n)


class _Control:
    """A control as a :class:`~iac_components.search.rule.Decider`: :meth:`check_cell` hands copies of the live
    logits to ``_decide`` (``tracks`` and ``lr`` are not used; a control records no verdicts)."""

    def check_cell(self, tracks: CellTracks, alphas: Mapping[str, Mapping[str, float]],
                   betas: Mapping[str, Mapping[str, float]], arch_step: int, lr: float, prune: bool = True,
                   prune_nodes: bool = True) -> tuple[dict[str, dict[str, Verdict]], list[Cut]]:  # fmt: skip
        """The cuts due at ``arch_step`` (none when observing only)."""
        if not prune:
            return {"edge": {}, "node": {}}, []
        live_alphas = {k: dict(v) for k, v in alphas.items()}
        live_betas = {str(j): dict(v) for j, v in betas.items()}
        return {"edge": {}, "node": {}}, self._decide(live_alphas, live_betas, arch_step, prune_nodes)

    def _decide(self, alphas: dict[str, dict[str, float]], betas: dict[str, dict[str, float]], arch_step: int,
                prune_nodes: bool) -> list[Cut]:  # fmt: skip
        raise NotImplementedError

    def may_stop(self, arch_step: int) -> bool:
        """A control ends with the decided cell unless it runs on another search's schedule (RandomCuts)."""
        return True


class RandomCuts(_Control):
    """Random choices on a recorded IAC-LTH search's schedule (see the module docstring).

    Args:
        schedule: the LTH search's cut events (``search_history.json``'s ``events``: arch step, kind, where,
            kept), or the path of that history.
        seed: seed of the random choices.
        group: the cell architecture (α/β group) this instance decides; events of other groups are ignored.
        protected_last: op names an edge may not end with.
        keep_schedule: the rule's op counts (an edge cut where LTH's edge was already smaller steps down by it).
    """

    name = "random_cuts"

    def __init__(self, schedule: Sequence[Mapping[str, Any]] | str | os.PathLike, seed: int = 0, group: int = 0,
                 protected_last: Sequence[str] = ("none",), keep_schedule: Sequence[int] = (4, 2, 1)) -> None:  # fmt: skip
        if isinstance(schedule, (str, os.PathLike)):
            path = Path(schedule)
            if not path.is_file():
                raise FileNotFoundError(f"random cuts: no IAC-LTH history at {path}; run the LTH search first")
            schedule = json.loads(path.read_text()).get("events", [])
        self.events = sorted(
            ({"arch_step": int(e["arch_step"]), "kind": e["kind"], "where": str(e["where"]), "n_keep": len(e["kept"])}
             for e in schedule if int(e.get("group", 0)) == int(group)),
            key=lambda e: e["arch_step"],
        )  # fmt: skip
        if not self.events:
            raise ValueError("random cuts: the IAC-LTH history records no cut; nothing to copy the schedule from")
        self.seed, self.group = int(seed), int(group)
        self.protected_last = frozenset(protected_last)
        self.keep_schedule = tuple(keep_schedule)
        self.done = 0

    def config(self) -> dict[str, Any]:
        return {"control": self.name, "seed": self.seed, "events": len(self.events),
                "last_arch_step": self.events[-1]["arch_step"]}  # fmt: skip

    def _rng(self, arch_step: int, kind: str, where: str) -> random.Random:
        return random.Random(f"{self.seed}:{self.group}:{arch_step}:{kind}:{where}")

    def _cut_edge(self, key: str, ops: Mapping[str, float], n_keep: int, arch_step: int) -> Cut:
        names = list(ops)
        n_keep = n_keep if n_keep < len(names) else (next_keep_size(len(names), self.keep_schedule) or 1)
        rng = self._rng(arch_step, "edge", key)
        pool = [o for o in names if o not in self.protected_last] if n_keep == 1 else names
        kept = set(rng.sample(pool or names, n_keep))
        kept_list = [o for o in names if o in kept]
        return Cut("edge", key, kept_list, [o for o in names if o not in kept], Verdict("cut", kept_list))

    def _cut_node(self, j: str, inputs: Mapping[str, float], arch_step: int) -> Cut:
        names = list(inputs)
        kept = set(self._rng(arch_step, "node", j).sample(names, 2))
        kept_list = [i for i in names if i in kept]
        return Cut("node", j, kept_list, [i for i in names if i not in kept], Verdict("cut", kept_list))

    def _decide(self, alphas: dict[str, dict[str, float]], betas: dict[str, dict[str, float]], arch_step: int,
                prune_nodes: bool) -> list[Cut]:  # fmt: skip
        cuts: list[Cut] = []
        while self.done < len(self.events) and self.events[self.done]["arch_step"] <= arch_step:
            e = self.events[self.done]
            self.done += 1
            edges, nodes = _undecided(alphas, betas)
            rng = self._rng(arch_step, "place", f"{e['kind']}{self.done}")
            if e["kind"] == "node" and prune_nodes and nodes:
                j = e["where"] if e["where"] in nodes else rng.choice(nodes)
                cuts.append(self._cut_node(j, betas[j], arch_step))
            elif edges:
                # the same edge if it is still undecided there; else another undecided one
                key = e["where"] if e["where"] in edges and len(alphas[e["where"]]) > e["n_keep"] else rng.choice(edges)
                cuts.append(self._cut_edge(key, alphas[key], e["n_keep"], arch_step))
            else:
                continue
            _drop(alphas, betas, cuts[-1])
        if self.done == len(self.events):  # LTH had decided here: decide whatever is left, at random
            edges, nodes = _undecided(alphas, betas)
            for j in nodes if prune_nodes else []:
                cuts.append(self._cut_node(j, betas[j], arch_step))
                _drop(alphas, betas, cuts[-1])
            for key in _undecided(alphas, betas)[0]:
                cuts.append(self._cut_edge(key, alphas[key], 1, arch_step))
                _drop(alphas, betas, cuts[-1])
        return cuts

    def may_stop(self, arch_step: int) -> bool:
        """Whether a decided search may end at ``arch_step``: not before LTH's last cut (equal budget)."""
        return arch_step >= self.events[-1]["arch_step"]

    def state_dict(self) -> dict[str, Any]:
        return {"done": self.done}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.done = int(state.get("done", 0))


class SGASSchedule(_Control):
    """One greedy decision every ``every`` arch steps, by SGAS's criterion (see the module docstring).

    Args:
        every: arch steps between two decisions (the first at ``every``).
        group: unused (the schedule is the same for every cell architecture); accepted for a uniform factory.
        protected_last: op names an edge may not end with (and that count as "no op" in the importance).
    """

    name = "sgas"

    def __init__(self, every: int, group: int = 0, protected_last: Sequence[str] = ("none",)) -> None:
        if int(every) < 1:
            raise ValueError(f"sgas: every must be at least 1 arch step, got {every}")
        self.every = int(every)
        self.protected_last = frozenset(protected_last)
        self.made = 0

    def config(self) -> dict[str, Any]:
        return {"control": self.name, "every": self.every}

    def edge_score(self, ops: Mapping[str, float]) -> float:
        p = softmax(ops)
        real = {o: v for o, v in p.items() if o not in self.protected_last}
        return sum(real.values()) * _entropy_certainty(real)

    @staticmethod
    def node_score(inputs: Mapping[str, float]) -> float:
        q = softmax(inputs)
        return sum(sorted(q.values(), reverse=True)[:2]) * _entropy_certainty(q)

    def _decide(self, alphas: dict[str, dict[str, float]], betas: dict[str, dict[str, float]], arch_step: int,
                prune_nodes: bool) -> list[Cut]:  # fmt: skip
        cuts: list[Cut] = []
        while arch_step >= (self.made + 1) * self.every:
            edges, nodes = _undecided(alphas, betas)
            candidates = [(self.edge_score(alphas[k]), "edge", k) for k in edges]
            candidates += [(self.node_score(betas[j]), "node", j) for j in (nodes if prune_nodes else [])]
            if not candidates:
                break
            score, kind, where = max(candidates, key=lambda c: (c[0], c[1], c[2]))
            if kind == "node":
                names = list(betas[where])
                top = sorted(names, key=lambda i: -betas[where][i])[:2]
                kept = [i for i in names if i in top]
            else:
                names = list(alphas[where])
                real = [o for o in names if o not in self.protected_last] or names
                kept = [max(real, key=lambda o: alphas[where][o])]
            verdict = Verdict("cut", kept, lead=score)
            cuts.append(Cut(kind, where, kept, [n for n in names if n not in kept], verdict))
            _drop(alphas, betas, cuts[-1])
            self.made += 1
        return cuts

    def state_dict(self) -> dict[str, Any]:
        return {"made": self.made}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.made = int(state.get("made", 0))


#: The controls by name (``JSDPruningHandler(control={"name": ..., ...})``).
CONTROLS = {RandomCuts.name: RandomCuts, SGASSchedule.name: SGASSchedule}


def make_control(spec: Mapping[str, Any], group: int, rule: JSDRule) -> RandomCuts | SGASSchedule:
    """A control for cell architecture ``group`` from ``{"name": "random_cuts" | "sgas", ...its arguments}``."""
    spec = dict(spec)
    name = spec.pop("name", None)
    if name not in CONTROLS:
        raise ValueError(f"unknown pruning control {name!r}; choose one of {sorted(CONTROLS)} (or none: the JSD rule)")
    extra: dict[str, Any] = {"group": group, "protected_last": tuple(rule.protected_last)}
    if name == RandomCuts.name:
        extra["keep_schedule"] = tuple(rule.keep_schedule)
    try:
        return CONTROLS[name](**spec, **extra)
    except TypeError as e:
        raise ValueError(f"pruning control {name!r}: {e}") from None
