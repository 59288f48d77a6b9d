"""The IAC-LTH pruning rule, pure: recorded logits in, "keep these" or "not yet, because ..." out.

No engine, no modules, no tensors: the Ignite handler (:class:`~iac_components.search.pruning.JSDPruningHandler`),
the replay used for calibration (:func:`replay_history`) and any other trainer call this code, so there is one
implementation of the rule.

The rule (docs/method.md argues each choice and gives the measurements):

* Every ``interval`` architecture steps the caller hands over, per undecided edge, its α logits over its live
  ops and, per node with more than two live inputs, its β logits over them, with the arch optimiser's
  learning rate.
* **Movement, relative to what Adam can do.** ``d = JSD(softmax(x_t) ‖ softmax(x_{t-W}))`` in bits, on the
  names both records hold, where the record ``x_{t-W}`` is the latest one at least ``window`` arch steps old
  (a window in arch steps: short windows are dominated by the step noise, see below). Adam moves every logit by at most about its
  learning rate per step, so over ``s`` arch steps ``d ≤ (lr·s)²/(8 ln 2)`` (the JSD of two softmaxes whose
  logits differ by ``δ`` is ``Var_p(δ)/8`` nats to second order, and ``Var_p(δ) ≤ (lr·s)²``). A fixed ε in bits
  therefore never binds at a small learning rate and always binds at a large one. Here the threshold in force
  is ``epsilon`` × the largest JSD reachable from the window's first distribution with every logit moved by
  ``±lr·s`` (:meth:`JSDRule.max_jsd`; ≈ ``(lr·s)²/(8 ln 2)`` for a flat distribution): an edge is *moving*
  while it covers more than about ``√epsilon`` of the largest coherent displacement Adam allows. A random walk of
  Adam-sized steps covers about
  ``1/√s`` of it (``d/D_max ≈ 1/s``), a consistent drift nearly all of it, at any learning rate; so the window
  must span enough steps that ``1/s`` sits well below ``epsilon`` (the default 32 steps against ε = 0.1).
* **Stable for ``patience`` checks with the same leaders** (the ops it would keep): a distribution that barely
  moves while its leaders swap is not settled.
* **Decided by a margin in logits**, relative to the same scale: the lowest kept logit must lead the highest
  dropped one by ``margin · 2·lr·s``, the most that Adam can close between the two within one more window
  (a probability margin would shrink with the number of ops alive).
* Edges step down through ``keep_schedule`` (8 -> 4 -> 2 -> 1); the last op of an edge is never ``none``.
  Nodes keep their top-2 inputs by β: a score that does not depend on how many ops an edge still has.

Every check yields a :class:`Verdict` per edge and node (divergence, threshold in force, lead, margin in force,
and the status that blocked a decision), which the history records.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = [
    "STATUSES",
    "CellTracks",
    "Cut",
    "Decider",
    "JSDRule",
    "Track",
    "Verdict",
    "jsd",
    "next_keep_size",
    "replay_history",
    "softmax",
]

#: Why a check did or did not decide (the first blocking condition, in this order).
STATUSES = ("filling_window", "moving", "leaders_changed", "waiting", "undecided", "cut")

_8LN2 = 8.0 * math.log(2.0)


def softmax(logits: Mapping[str, float]) -> dict[str, float]:
    """softmax over a name -> logit mapping."""
    if not logits:
        return {}
    m = max(logits.values())
    e = {k: math.exp(v - m) for k, v in logits.items()}
    s = sum(e.values())
    return {k: v / s for k, v in e.items()}


def jsd(p: Mapping[str, float] | Sequence[float], q: Mapping[str, float] | Sequence[float]) -> float:
    """Jensen-Shannon divergence in bits (0 for identical, 1 for disjoint distributions).

    Mappings (name -> probability) are compared on the names both hold, each renormalised over them; sequences
    must have the same length.
    """
    if isinstance(p, Mapping) and isinstance(q, Mapping):
        keys = [k for k in p if k in q]
        p, q = [float(p[k]) for k in keys], [float(q[k]) for k in keys]
    p, q = [float(v) for v in p], [float(v) for v in q]
    if len(p) != len(q):
        raise ValueError(f"distributions of different lengths: {len(p)} vs {len(q)}")
    sp, sq = sum(p), sum(q)
    if not p or sp <= 0 or sq <= 0:
        return 0.0
    total = 0.0
    for a, b in zip(p, q):
        a, b = a / sp, b / sq
        m = 0.5 * (a + b)
        if a > 0:
            total += 0.5 * a * math.log(a / m)
        if b > 0:
            total += 0.5 * b * math.log(b / m)
    return max(0.0, total / math.log(2.0))


def _finite_or_none(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _ranked(logits: Mapping[str, float]) -> list[str]:
    """Names best first."""
    return sorted(logits, key=lambda n: -float(logits[n]))


def next_keep_size(n: int, keep_schedule: Sequence[int]) -> int | None:
    """The largest size of ``keep_schedule`` below ``n`` (None when there is none)."""
    smaller = [k for k in keep_schedule if k < n]
    return max(smaller) if smaller else None


@dataclass
class Track:
    """What the rule remembers of one edge or node: its records ``(arch_step, lr, logits)`` back to the first one
    at least ``window`` arch steps old, how many consecutive checks it has not been moving (``stable``), and the
    logits of its latest checks (``recent``, as many as the longest test looks back)."""

    past: list[dict[str, Any]] = field(default_factory=list)
    stable: int = 0
    recent: list[dict[str, float]] = field(default_factory=list)

    def restart(self) -> None:
        """After a cut: the counts start again (the records stay: JSD compares the names both hold)."""
        self.stable, self.recent = 0, []

    def state_dict(self) -> dict[str, Any]:
        return {"past": self.past, "stable": self.stable, "recent": self.recent}

    @classmethod
    def from_state(cls, s: Mapping[str, Any]) -> Track:
        if "recent" not in s:
            raise ValueError("the checkpoint's rule state comes from an earlier version of the rule (before the "
                             "smallest-safe cuts); start the search again without --resume")
        past = [{"step": int(r["step"]), "lr": float(r["lr"]), "logits": dict(r["logits"])} for r in s["past"]]
        return cls(past, int(s["stable"]), [{k: float(v) for k, v in r.items()} for r in s.get("recent", [])])


@dataclass(frozen=True)
class Verdict:
    """The rule's answer for one edge or node at one check.

    Attributes:
        status: one of :data:`STATUSES`; ``cut`` means keep :attr:`keep` now, anything else names what blocked.
        keep: the names it would keep (ranked set, in the caller's order); None when there is nothing to decide.
        d: JSD in bits against the latest record at least ``window`` arch steps old (None while the window fills).
        threshold: the ε in force, in bits (``epsilon·(lr·s)²/(8 ln 2)``).
        steps: arch steps the window spans (``s``).
        lead: lowest kept logit minus highest dropped logit.
        margin: the lead required, in logits (``margin·2·lr·s``).
        stable: consecutive stable checks with the same leaders, this one included.
        moving, leaders_changed, lead_ok: each condition on its own, so that a blocked decision can be
            attributed (``jsd_only``: only the movement test stood in the way).
        widening: the kept names are those of a window ago and their lead has grown since: the movement goes the
            decision's way, so it does not hold the decision back.
        settled: a tie settled by mean logit (the boundary lead under the margin for ``settle`` x ``patience``
            checks, the names above it unchanged): the search could not tell these ops apart.
    """

    status: str
    keep: list[str] | None
    d: float | None = None
    threshold: float | None = None
    steps: int | None = None
    lead: float | None = None
    margin: float | None = None
    stable: int = 0
    moving: bool | None = None
    leaders_changed: bool | None = None
    lead_ok: bool | None = None
    jsd_only: bool = False
    widening: bool = False
    settled: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: an infinite lead (nothing to lead) is written as None."""
        return {k: _finite_or_none(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Cut:
    """A decision: on ``group``'s ``kind`` (``edge`` key ``"i->j"`` or ``node`` state ``"j"``), keep ``kept``."""

    kind: str
    where: str
    kept: list[str]
    dropped: list[str]
    verdict: Verdict

    def to_event(self, arch_step: int) -> dict[str, Any]:
        """The cut as the history records it (a node's inputs as state indices)."""
        as_names = (lambda xs: [int(x) for x in xs]) if self.kind == "node" else list
        return {"arch_step": int(arch_step), "kind": self.kind, "where": self.where, "kept": as_names(self.kept),
                "dropped": as_names(self.dropped), "lead": _finite_or_none(self.verdict.lead), "margin": self.verdict.margin,
                "d": self.verdict.d, "threshold": self.verdict.threshold, "widening": self.verdict.widening,
                "settled": self.verdict.settled}


class CellTracks:
    """The rule's memory for one cell architecture (α/β group): a :class:`Track` per edge and per node."""

    def __init__(self) -> None:
        self.edge: dict[str, Track] = {}
        self.node: dict[str, Track] = {}

    def state_dict(self) -> dict[str, Any]:
        return {"edge": {k: t.state_dict() for k, t in self.edge.items()},
                "node": {k: t.state_dict() for k, t in self.node.items()}}

    @classmethod
    def from_state(cls, s: Mapping[str, Any]) -> CellTracks:
        out = cls()
        out.edge = {k: Track.from_state(v) for k, v in s.get("edge", {}).items()}
        out.node = {str(k): Track.from_state(v) for k, v in s.get("node", {}).items()}
        return out


class Decider(Protocol):
    """What decides a cell's cuts at a check: the JSD rule, or one of the benchmark's controls
    (:mod:`iac_components.search.controls`). The pruning handler, the replay and the nnU-Net trainer talk to this."""

    def check_cell(self, tracks: CellTracks, alphas: Mapping[str, Mapping[str, float]],
                   betas: Mapping[str, Mapping[str, float]], arch_step: int, lr: float, prune: bool = True,
                   prune_nodes: bool = True) -> tuple[dict[str, dict[str, Verdict]], list[Cut]]: ...  # fmt: skip

    def may_stop(self, arch_step: int) -> bool:
        """Whether the search may end at ``arch_step`` once the cell is decided."""
        ...


class JSDRule:
    """The IAC-LTH rule's numbers and its decisions (see the module docstring).

    Args:
        epsilon: movement threshold as a fraction of the largest JSD Adam can produce over the window
            (dimensionless; ``d < epsilon·(lr·s)²/(8 ln 2)`` counts as stable). Every number left None is the
            shipped one (:class:`~iac_components.search.recipe.RuleSettings`).
        window: arch steps the comparison spans at least (with the latest record that old).
        patience: consecutive stable checks, with the same leaders, before a decision.
        margin: the lead the kept names need over the dropped ones, in units of ``2·lr·s`` logits; None: ``√epsilon``
            (an edge that passes the movement test covers at most about ``√epsilon`` of Adam's reach, so it cannot
            close a lead of ``√epsilon·2·lr·s`` within the next window).
        keep_schedule: op counts an edge may be cut to; must end at 1. A cut keeps the smallest of them whose
            boundary lead clears the margin.
        settle: after ``settle`` x ``patience`` checks in which an edge's or node's boundary lead never cleared the
            margin while the names above it stayed the same, the place at the boundary goes to the name with the
            highest mean logit over those checks (a tie the search cannot resolve); None: never.
        protected_last: op names that may not be an edge's last op (``none``: an edge must compute something).
    """

    def __init__(
        self,
        epsilon: float | None = None,
        window: int | None = None,
        patience: int | None = None,
        margin: float | None = None,
        keep_schedule: Sequence[int] | None = None,
        settle: int | None = -1,
        protected_last: Iterable[str] = ("none",),
    ) -> None:
        # None (settle: -1): the shipped value (iac_components.search.recipe, the one home of the search's numbers)
        from iac_components.search import recipe

        d = recipe.SEARCH_RECIPE.rule
        epsilon = d.epsilon if epsilon is None else epsilon
        window = d.window if window is None else window
        patience = d.patience if patience is None else patience
        margin = (d.margin if d.margin is not None else math.sqrt(epsilon)) if margin is None else margin
        keep_schedule = d.keep_schedule if keep_schedule is None else keep_schedule
        settle = d.settle if settle == -1 else settle
        if settle is not None and int(settle) < 1:
            raise ValueError(f"settle must be at least 1 (x patience checks) or None (never), got {settle}")
        if not epsilon > 0 or int(window) < 1 or int(patience) < 1 or not margin >= 0:
            raise ValueError(
                f"need epsilon > 0, window >= 1, patience >= 1, margin >= 0; got {epsilon}, {window}, {patience}, {margin}"
            )
        schedule = sorted({int(k) for k in keep_schedule}, reverse=True)
        if not schedule or schedule[-1] != 1:
            raise ValueError(f"keep_schedule must end at 1 (one op per edge), got {list(keep_schedule)}")
        self.epsilon = float(epsilon)
        self.window = int(window)
        self.patience = int(patience)
        self.margin = float(margin)
        self.keep_schedule = schedule
        self.settle = None if settle is None else int(settle)
        self.protected_last = frozenset(protected_last)

    def config(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon, "window": self.window, "patience": self.patience, "margin": self.margin,
                "keep_schedule": list(self.keep_schedule), "settle": self.settle}

    def may_stop(self, arch_step: int) -> bool:
        """The rule's search ends as soon as the cell is decided."""
        return True

    # --- the scale ------------------------------------------------------------------------------------------
    @staticmethod
    def max_jsd(lr: float, steps: int, logits: Mapping[str, float] | None = None) -> float:
        """The largest JSD (bits) Adam can produce over ``steps`` arch steps at learning rate ``lr``.

        Without ``logits``: the small-step bound ``(lr·s)²/(8 ln 2)``. With them: the JSD between ``softmax(x)``
        and ``softmax(x + δ)`` for the reachable ``δ`` (each logit moved by ``±lr·s``) that splits the
        probability mass most evenly, which maximises ``Var_p(δ)``: the bound for this distribution (smaller for
        a peaked one, and it saturates properly when ``lr·s`` is not small).
        """
        reach = float(lr) * steps
        if logits is None:
            return reach**2 / _8LN2
        p = softmax(logits)
        up, mass = set(), 0.0
        for name in sorted(p, key=lambda k: -p[k]):  # greedy balanced split of the mass
            if mass + p[name] <= 0.5 or not up:
                up.add(name)
                mass += p[name]
        moved = {k: v + (reach if k in up else -reach) for k, v in logits.items()}
        return jsd(p, softmax(moved))

    def threshold(self, lr: float, steps: int, logits: Mapping[str, float] | None = None) -> float:
        """The ε in force, in bits: ``epsilon`` × :meth:`max_jsd`."""
        return self.epsilon * self.max_jsd(lr, steps, logits)

    def margin_logits(self, lr: float, steps: int) -> float:
        """The lead required, in logits: ``margin`` × the most Adam can close between two logits (2·lr·s)."""
        return self.margin * 2.0 * float(lr) * steps

    # --- one edge or node -----------------------------------------------------------------------------------
    def check(self, track: Track, logits: Mapping[str, float], arch_step: int, lr: float, sizes: Sequence[int],
              protect: bool = False) -> Verdict:
        """Record ``logits`` (name -> logit over the live names) in ``track`` and judge them.

        Args:
            sizes: how many names a cut may keep (those below the number alive count); the smallest whose boundary
                lead clears the margin, with the same leaders for ``patience`` checks, is kept.
            protect: the names in ``protected_last`` may not be the last one kept (edges).
        """
        names = list(logits)
        bad = [k for k, v in logits.items() if not math.isfinite(float(v))]
        if bad:
            raise ValueError(f"non-finite logit for {bad[0]!r} at arch step {arch_step}: the rule cannot judge NaN/inf")
        track.past.append({"step": int(arch_step), "lr": float(lr), "logits": {k: float(v) for k, v in logits.items()}})
        old_enough = [n for n, r in enumerate(track.past) if r["step"] <= int(arch_step) - self.window]
        if old_enough:
            del track.past[: old_enough[-1]]  # keep the latest record that is old enough, and the newer ones
        sizes = sorted({int(k) for k in sizes if 0 < int(k) < len(names)})
        if not sizes:
            return Verdict("undecided", None)
        ranking = sorted(logits, key=lambda n: -float(logits[n]))
        track.recent = (track.recent + [{k: float(v) for k, v in logits.items()}])[-max(self.patience, (self.settle or 0) * self.patience):]
        nxt = sizes[-1]  # the next size down: what the verdict reports when nothing is cut
        top = self._kept(names, ranking, nxt, protect)
        lead = self._lead(logits, nxt, protect)
        if not old_enough:
            track.stable = 0
            return Verdict("filling_window", top, lead=lead)
        then = track.past[0]
        steps = max(1, int(arch_step) - then["step"])
        rate = sum(r["lr"] for r in track.past[1:]) / (len(track.past) - 1)
        before = {k: v for k, v in then["logits"].items() if k in logits}  # the names both records hold
        d = jsd(softmax(logits), softmax(before))
        thr, need = self.threshold(rate, steps, before), self.margin_logits(rate, steps)
        moving = d > thr
        track.stable = 0 if moving else track.stable + 1
        then_ranking = sorted(before, key=lambda n: -float(before[n])) if len(before) == len(logits) else None

        def same_leaders(k: int, checks: int) -> bool:
            recent = track.recent[-checks:]
            now = self._top(ranking, k, protect)
            return len(recent) == checks and all(self._top(_ranked(r), k, protect) == now for r in recent)

        def widening(k: int) -> bool:  # the same kept names as a window ago, further ahead now (by more than rounding)
            return (then_ranking is not None and self._top(then_ranking, k, protect) == self._top(ranking, k, protect)
                    and self._lead(logits, k, protect) > self._lead(before, k, protect) + 1e-9)

        for k in sizes:  # the most decisive safe cut first
            k_lead = self._lead(logits, k, protect)
            widens = moving and widening(k)
            if same_leaders(k, self.patience) and (track.stable >= self.patience or widens) and k_lead >= need:
                return Verdict("cut", self._kept(names, ranking, k, protect), d, thr, steps, k_lead, need, track.stable,
                               moving, False, True, False, widens)  # fmt: skip
        changed = not same_leaders(nxt, min(2, len(track.recent)))
        tie = self._settled_tie(track, nxt, need, protect) if self.settle else None
        if tie is not None:
            return Verdict("cut", [n for n in names if n in tie], d, thr, steps, lead, need, track.stable, moving,
                           changed, False, settled=True)  # fmt: skip
        lead_ok = lead >= need
        if moving:
            status = "moving"
        elif changed:
            status = "leaders_changed"
        elif track.stable < self.patience:
            status = "waiting"
        else:
            status = "undecided"
        jsd_only = moving and not changed and lead_ok  # same leaders, lead enough: only the movement blocks
        return Verdict(status, top, d, thr, steps, lead, need, track.stable, moving, changed, lead_ok, jsd_only)

    def _settled_tie(self, track: Track, k: int, need: float, protect: bool) -> frozenset[str] | None:
        """The names to keep at size ``k`` when the boundary is a tie the search cannot resolve: over the last
        ``settle`` x ``patience`` checks the boundary lead never cleared the margin while the names above it stayed
        the same; the ``k``-th place then goes to the name with the highest mean logit over those checks (the
        search had that long to separate them and did not). None otherwise."""
        checks = self.settle * self.patience
        recent = track.recent[-checks:]
        if len(recent) < checks or any(self._lead(r, k, protect) >= need for r in recent):
            return None
        # the names above the boundary: the plain top k-1 ('none' protection concerns the last op only, k = 1)
        above = {frozenset(_ranked(r)[: k - 1]) for r in recent}
        if len(above) != 1:
            return None
        (kept,) = above
        names = [n for n in recent[-1] if n not in kept and not (protect and k == 1 and n in self.protected_last)]
        if not names:
            return None
        mean = {n: sum(r[n] for r in recent if n in r) / len(recent) for n in names}
        return kept | {max(names, key=lambda n: (mean[n], -names.index(n)))}

    def _top(self, ranking: Sequence[str], k: int, protect: bool) -> frozenset[str]:
        """The names kept at size ``k`` from a ranking (best first): the ``k`` best, or with ``protect`` and ``k = 1``
        the best name that may be an edge's last op."""
        if protect and k == 1:
            free = [n for n in ranking if n not in self.protected_last]
            return frozenset(free[:1])
        return frozenset(ranking[:k])

    def _kept(self, names: Sequence[str], ranking: Sequence[str], k: int, protect: bool) -> list[str]:
        kept = self._top(ranking, k, protect)
        return [n for n in names if n in kept]  # in the caller's order

    def _lead(self, logits: Mapping[str, float], k: int, protect: bool) -> float:
        """The lowest kept logit minus the highest dropped one when keeping the ``k`` best (see :meth:`_top`)."""
        ranking = sorted(logits, key=lambda n: -float(logits[n]))
        if protect and k == 1:
            free = [n for n in ranking if n not in self.protected_last]
            if not free:
                return float("-inf")  # only protected names alive: the edge cannot be cut to one
            return float("inf") if len(free) == 1 else float(logits[free[0]] - logits[free[1]])
        if k >= len(ranking):
            return float("inf")
        return float(logits[ranking[k - 1]] - logits[ranking[k]])

    def check_edge(self, track: Track, logits: Mapping[str, float], arch_step: int, lr: float) -> Verdict:
        return self.check(track, logits, arch_step, lr, self.keep_schedule, protect=True)

    def check_node(self, track: Track, logits: Mapping[str, float], arch_step: int, lr: float) -> Verdict:
        return self.check(track, logits, arch_step, lr, [2] if len(logits) > 2 else [])

    # --- one cell -------------------------------------------------------------------------------------------
    def check_cell(
        self,
        tracks: CellTracks,
        alphas: Mapping[str, Mapping[str, float]],
        betas: Mapping[str, Mapping[str, float]],
        arch_step: int,
        lr: float,
        prune: bool = True,
        prune_nodes: bool = True,
    ) -> tuple[dict[str, dict[str, Verdict]], list[Cut]]:
        """Judge every undecided node, then every undecided edge of one cell architecture.

        Args:
            tracks: this cell's memory (updated in place; a cut resets its track, a dropped edge's track goes).
            alphas: edge key ``"i->j"`` -> op -> α logit, over the live edges and ops.
            betas: node state ``"j"`` -> input state ``"i"`` -> β logit, over the live inputs.
            prune: False for observe-only (a full search): verdicts are recorded, nothing is cut.
            prune_nodes: also decide nodes.

        Returns:
            The verdicts (``{"edge": {key: Verdict}, "node": {j: Verdict}}``) and the cuts to apply, nodes
            first: an edge whose node dropped it is not judged.
        """
        verdicts: dict[str, dict[str, Verdict]] = {"edge": {}, "node": {}}
        cuts: list[Cut] = []
        gone: set[str] = set()
        for j, logits in betas.items():
            j = str(j)
            if len(logits) <= 2:
                continue
            v = self.check_node(tracks.node.setdefault(j, Track()), logits, arch_step, lr)
            verdicts["node"][j] = v
            if prune and prune_nodes and v.status == "cut":
                dropped = [i for i in logits if i not in v.keep]
                cuts.append(Cut("node", j, list(v.keep), dropped, v))
                tracks.node[j].restart()
                gone.update(f"{i}->{j}" for i in dropped)
        for key, logits in alphas.items():
            if key in gone:
                tracks.edge.pop(key, None)
                continue
            if len(logits) <= 1:
                continue
            v = self.check_edge(tracks.edge.setdefault(key, Track()), logits, arch_step, lr)
            verdicts["edge"][key] = v
            if prune and v.status == "cut":
                cuts.append(Cut("edge", key, list(v.keep), [o for o in logits if o not in v.keep], v))
                tracks.edge[key].restart()
        return verdicts, cuts


def replay_history(history: Mapping[str, Any], rule: JSDRule | None = None, group: int = 0,
                   prune_nodes: bool = True) -> dict[str, Any]:
    """Replay ``rule`` on a recorded search history (its per-check α/β logits), with the same code the handler
    runs.

    On an IAC-LTH history with the rule it was run with, the replay makes exactly the handler's cuts (the
    logits it sees are the ones the handler saw). On a full search's history (observe-only) it answers "what
    would the rule have cut, and when", using the full search's trajectory restricted to the names still alive:
    exact up to each edge's first cut (after it the real trajectory would differ), and free to evaluate.

    Returns:
        ``cuts`` (one dict per cut: arch step, kind, where, kept, dropped), ``decided_step`` (arch step at which
        every node has two inputs and every edge one op, or None), ``edge_ops`` and ``node_inputs`` at the end,
        ``ops_alive_end``, and ``genotype`` (derived from the last check's logits on the live structure).
    """
    from iac_components.genotype import derive_from_logits

    rule = rule or JSDRule(**{k: v for k, v in history["rule"].items() if k in JSDRule().config()})
    checks = [c for e in history["epochs"] for c in e["checks"]]
    if not checks or "alpha" not in checks[0]:
        raise ValueError("the history has no per-check α/β logits (record it with this version of the handler)")
    first = checks[0]
    edge_ops = {k: list(v) for k, v in first["alpha"][group].items()}
    node_inputs = {str(j): list(v) for j, v in first["beta"][group].items()}
    tracks = CellTracks()
    cuts, decided = [], None
    for c in checks:
        alphas = {k: {o: c["alpha"][group][k][o] for o in ops} for k, ops in edge_ops.items()}
        betas = {j: {i: c["beta"][group][j][i] for i in ins} for j, ins in node_inputs.items()}
        _, made = rule.check_cell(tracks, alphas, betas, c["arch_step"], c["lr"], prune=True, prune_nodes=prune_nodes)
        for cut in made:
            cuts.append(cut.to_event(c["arch_step"]))
            if cut.kind == "node":
                node_inputs[cut.where] = [i for i in node_inputs[cut.where] if i in cut.kept]
                for i in cut.dropped:
                    edge_ops.pop(f"{i}->{cut.where}", None)
            else:
                edge_ops[cut.where] = [o for o in edge_ops[cut.where] if o in cut.kept]
        if decided is None and all(len(v) == 2 for v in node_inputs.values()) and all(
            len(v) == 1 for v in edge_ops.values()
        ):
            decided = c["arch_step"]
    last = checks[-1]
    genotype = derive_from_logits(
        {k: {o: last["alpha"][group][k][o] for o in ops} for k, ops in edge_ops.items()},
        {j: {i: last["beta"][group][j][i] for i in ins} for j, ins in node_inputs.items()},
    )
    return {
        "rule": rule.config(),
        "cuts": cuts,
        "decided_step": decided,
        "total_arch_steps": last["arch_step"],
        "edge_ops": edge_ops,
        "node_inputs": node_inputs,
        "ops_alive_end": sum(len(v) for v in edge_ops.values()),
        "genotype": genotype,
    }
