"""The search recipe: every number of the IAC-LTH search in one place.

The bundles' ``search.json`` (written by ``iac bundles generate``), the nnU-Net search trainer, the pruning
handler's and the rule's defaults, the demo and the evidence runner all read :data:`SEARCH_RECIPE` (the demo
and the benchmark as named differences from it, :func:`demo_search`). A calibration that changes a default
changes it here, and nowhere else; docs/method.md gives the measurement or the argument behind each value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from iac_components.ops import DEFAULT_OPS

__all__ = ["SEARCH_RECIPE", "RuleSettings", "SearchRecipe", "demo_search"]


@dataclass(frozen=True)
class RuleSettings:
    """The JSD rule's numbers (:class:`~iac_components.search.rule.JSDRule`; docs/method.md, "the rule").

    Attributes:
        epsilon: movement threshold, a fraction of the largest JSD Adam can produce over the window.
        window: arch steps a comparison spans at least.
        patience: consecutive stable checks with the same leaders before a decision.
        margin: the lead the kept ops need over the dropped ones, in units of ``2·lr·s`` logits (None: ``√epsilon``).
        keep_schedule: op counts an edge may be cut to (ends at 1); a cut keeps the smallest whose lead clears the
            margin.
        settle: after ``settle`` x ``patience`` checks whose boundary lead never cleared the margin (the names above
            it unchanged), the boundary place goes to the best mean logit over them: a tie the search cannot resolve
            (None: never).
        interval: arch steps between checks (None: once per epoch).
    """

    epsilon: float = 0.1
    window: int = 32
    patience: int = 2
    margin: float | None = None
    keep_schedule: tuple[int, ...] = (4, 2, 1)
    settle: int | None = None
    interval: int | None = None

    def rule_kwargs(self) -> dict[str, Any]:
        """The arguments of :class:`~iac_components.search.rule.JSDRule`."""
        return {"epsilon": self.epsilon, "window": self.window, "patience": self.patience, "margin": self.margin,
                "keep_schedule": tuple(self.keep_schedule), "settle": self.settle}  # fmt: skip

    def to_config(self) -> dict[str, Any]:
        """The ``pruning`` entry of ``search.json``."""
        return {**self.rule_kwargs(), "keep_schedule": list(self.keep_schedule), "interval": self.interval}


@dataclass(frozen=True)
class SearchRecipe:
    """The search: the space, the bilevel optimisers, the warm-up, the budget and the rule.

    Attributes:
        ops: candidate ops of every edge.
        cell_channels: the cells' inner width (``min(C, cell_channels)`` per level).
        partial_k: PC-DARTS partial channels (1/K of the channels go through the ops).
        n_nodes: intermediate nodes per cell.
        share_genotype: one α/β for every level.
        learning_rate, momentum, weight_decay: SGD on the cells' weights.
        arch_learning_rate, arch_betas, arch_weight_decay: Adam on α and β (no weight decay: docs/method.md).
        warmup_steps: weight steps before the first arch step.
        epochs: the full search's budget (the paper's 200).
        batch_size: slices per batch.
        rule: the JSD rule.
    """

    ops: tuple[str, ...] = DEFAULT_OPS
    cell_channels: int = 32
    partial_k: int = 4
    n_nodes: int = 4
    share_genotype: bool = True
    learning_rate: float = 0.025
    momentum: float = 0.9
    weight_decay: float = 3e-4
    arch_learning_rate: float = 6e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 0.0
    warmup_steps: int = 600
    epochs: int = 200
    batch_size: int = 16
    rule: RuleSettings = field(default_factory=RuleSettings)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()} | {
            "rule": self.rule.to_config()}

    def overrides(self, base: SearchRecipe | None = None) -> dict[str, Any]:
        """The bundle overrides (config ids) that turn ``base`` (default :data:`SEARCH_RECIPE`) into this recipe."""
        base = base or globals()["SEARCH_RECIPE"]
        ids = {"ops": "ops", "cell_channels": "cell_channels", "partial_k": "partial_k", "learning_rate": "learning_rate",
               "arch_learning_rate": "arch_learning_rate", "warmup_steps": "warmup_steps", "epochs": "epochs",
               "batch_size": "batch_size"}  # fmt: skip
        out = {ids[k]: (list(getattr(self, k)) if k == "ops" else getattr(self, k))
               for k in ids if getattr(self, k) != getattr(base, k)}  # fmt: skip
        for k, v in self.rule.to_config().items():
            if v != base.rule.to_config()[k]:
                out[f"pruning#{k}"] = v
        return out


#: The search the bundles ship.
SEARCH_RECIPE = SearchRecipe()

def demo_search() -> SearchRecipe:
    """The demo's search (``iac demo``, the evidence runner's default): the shipped recipe (read when called, so a
    change of :data:`SEARCH_RECIPE` reaches it) with the differences that fit a search into minutes on two CPU
    cores, each argued in docs/method.md ("the demo")."""
    return replace(
        SEARCH_RECIPE,
        ops=("skip_connect", "avg_pool_3x3", "conv_3x3", "sep_conv_3x3", "dil_conv_3x3"),
        cell_channels=16,
        learning_rate=0.05,
        arch_learning_rate=1e-2,
        warmup_steps=78,
        # the cap where the demo gives up: over six search seeds the demo's search decided at epochs 15-18 (one
        # thread; benchmarks/results/demo_decision.md) and later than 18 with two threads' rounding on one machine,
        # at 12 on another; 30 leaves that spread well inside (a decided search stops there: the cap costs nothing)
        epochs=30,
        batch_size=8,
        # the bundles' rule but for two values (docs/method.md, "the demo"): a window of 16 arch steps (the bundles'
        # 32 is about one epoch of real ACDC's; the demo's epochs have 13), and ties settled after 3 x patience
        # stable checks (its five ops include two parameter-free ones that α does not tell apart in a short search)
        rule=replace(SEARCH_RECIPE.rule, window=16, settle=3),
    )
