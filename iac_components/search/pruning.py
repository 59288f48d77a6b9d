"""IAC-LTH: Jensen-Shannon-divergence progressive pruning of the IAC search, as an Ignite handler.

The observation behind IAC-LTH (Benedykciuk et al. 2026): the ops that end up in the final cell emerge among
the strongest early and their architecture parameters stabilise long before the end of a 200-epoch search.
:class:`JSDPruningHandler` hands the live α/β logits to the pure rule (:class:`~iac_components.search.rule.JSDRule`,
which the replay and any other trainer share) every ``interval`` architecture steps, and carries out what the
rule decides: the wiring, the surgery (pruned ops and edges are deleted, their parameters leave the optimisers),
``engine.terminate()`` when the cell is decided, the history and the handler's checkpoint state. Every cut is
logged through the engine's logger.

With ``prune=False`` (observe-only) it records the same history for a full-length search and prunes nothing.

Under ``torchrun`` every rank runs the handler: the rule sees rank 0's α/β (identical anyway: the engine averages
the gradients), the ranks check that their cuts agree before applying them at the same arch step, so they stop at
the same step with the same structure; only rank 0 logs and writes the history and the genotype.

What the search leaves behind (the history's epochs, the files, the progress line, the cells' contribution and the
peak memory) is :mod:`iac_components.search.record`'s: the handler decides and cuts, the record measures and writes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from ignite.engine import Engine, Events

from iac_components.cell import SearchCells
from iac_components.distributed import agree, broadcast_tensors, is_main_process
from iac_components.genotype import parse_edge_key
from iac_components.search.controls import make_control
from iac_components.search.engine import SearchEvents
from iac_components.search.optim import sync_optimizer
from iac_components.search.record import (
    PROGRESS,
    SearchRecord,
    contribution_text,
    engine_device,
    epoch_entry,
    named_floats,
    progress_line,
)
from iac_components.search.rule import CellTracks, Decider, JSDRule, jsd, next_keep_size
from iac_components.utils import as_bool

__all__ = ["JSDPruningHandler", "jsd", "next_keep_size"]

def _why(v: Any) -> str:
    """Why the rule cut, in the words of its verdict (margin and movement; a widening lead; a settled tie)."""
    lead = f"lead {v.lead:.3g} {'>=' if v.lead >= v.margin else '<'} {v.margin:.3g} logits"
    if v.settled:
        return f"a tie settled by mean logit ({lead} for settle x patience checks)"
    movement = (f"moving (JSD {v.d:.3g} > {v.threshold:.3g} bits) towards the decision" if v.widening else
                f"JSD {v.d:.3g} < {v.threshold:.3g} bits")
    return f"{lead}; {movement}"


def _arch_lr(engine: Engine) -> float:
    return float(engine.arch_optimizer.param_groups[0]["lr"])


class JSDPruningHandler:
    """Progressive pruning of the IAC search by the JSD stability rule (IAC-LTH).

    Attach it to an :class:`~iac_components.search.engine.IACSearchTrainer` whose network has
    :class:`~iac_components.cell.SearchCells` (``network.cells``). List it before the ``CheckpointSaver`` in the
    trainer's handlers so that a checkpoint holds the epoch's pruning.

    Args:
        epsilon, window, patience, margin, keep_schedule, settle: the rule's numbers (None, settle -1: the shipped
            ones, :data:`~iac_components.search.recipe.SEARCH_RECIPE`)
            (:class:`~iac_components.search.rule.JSDRule`; ε and the margin are relative to how far Adam can move
            the logits over the window, so they carry across arch learning rates and check cadences).
        interval: architecture steps between checks (None: one check per epoch).
        prune: False for observe-only (a full search: history, no pruning, no early stop).
        prune_nodes: also decide nodes' inputs early.
        genotype_path: where the genotype is written (when decided, or when the run ends).
        history_path: where the history is written (every epoch, atomically).
        terminate: stop the engine when the cell is fully decided.
        identity: what makes this search this run (seed, folds, search space): saved with its checkpoints, and a
            resume from a checkpoint of another run is refused in one line.
        control: a control in place of the JSD rule, for the benchmark's equal-budget comparisons
            (``{"name": "random_cuts", "schedule": <LTH search_history.json>, "seed": S}`` or
            ``{"name": "sgas", "every": T}``; :mod:`iac_components.search.controls`); None: the rule.

    docs/method.md gives the measurements behind the defaults.
    """

    def __init__(
        self,
        epsilon: float | None = None,
        window: int | None = None,
        patience: int | None = None,
        margin: float | None = None,
        keep_schedule: Sequence[int] | None = None,
        settle: int | None = -1,
        interval: int | None = None,
        prune: bool | str = True,
        prune_nodes: bool | str = True,
        genotype_path: str | os.PathLike | None = None,
        history_path: str | os.PathLike | None = None,
        terminate: bool | str = True,
        control: Mapping[str, Any] | None = None,
        identity: Mapping[str, Any] | None = None,
    ) -> None:
        self.rule = JSDRule(epsilon, window, patience, margin, keep_schedule, settle)
        self.identity = dict(identity) if identity else None
        self.control = dict(control) if control else None
        if self.control is not None:
            make_control(self.control, 0, self.rule)  # a bad spec fails here, in one line, not at the first check
        self._deciders: list[Decider] = []
        if interval is not None and int(interval) < 1:
            raise ValueError(f"interval must be at least 1 arch step (or None: once per epoch), got {interval}")
        self.interval = None if interval is None else int(interval)
        self.prune = as_bool(prune)
        self.prune_nodes = as_bool(prune_nodes)
        self.terminate = as_bool(terminate)
        self.record = SearchRecord(history_path, genotype_path)
        self.logger = logging.getLogger(__name__)
        self._engine: Engine | None = None
        self._tracks: list[CellTracks] = []
        self._checks: list[dict[str, Any]] = []  # checks of the running epoch
        self._epoch_start: float | None = None
        self.decided_at: dict[str, int] | None = None
        self.final_contribution: dict[str, Any] | None = None

    # the rule's numbers, read through the handler (configs and the history name them here)
    epsilon = property(lambda self: self.rule.epsilon)
    window = property(lambda self: self.rule.window)
    patience = property(lambda self: self.rule.patience)
    margin = property(lambda self: self.rule.margin)
    keep_schedule = property(lambda self: self.rule.keep_schedule)
    settle = property(lambda self: self.rule.settle)

    @property
    def method(self) -> str:
        """What decides the cell, in words (the history, the genotype file and the log say it)."""
        if not self.prune:
            return "full search (observe-only)"
        return "IAC-LTH (JSD pruning)" if self.control is None else f"control: {self.control['name']}"

    def _control_config(self) -> dict[str, Any] | None:
        if self.control is None:
            return None
        return self._deciders[0].config() if self._deciders else dict(self.control)

    # --- wiring ---------------------------------------------------------------------------------------------
    @property
    def cells(self) -> SearchCells:
        if self._engine is None:
            raise RuntimeError("JSDPruningHandler is not attached to a search engine yet")
        cells = getattr(self._engine.network, "cells", None)
        if not isinstance(cells, SearchCells):
            raise TypeError(f"the engine's network has no SearchCells (got {type(cells).__name__})")
        return cells

    def attach(self, engine: Engine) -> None:
        self._engine = engine
        self._tracks = [CellTracks() for _ in self.cells.archs]
        self._deciders = [make_control(self.control, g, self.rule) if self.control else self.rule
                          for g in range(len(self.cells.archs))]  # fmt: skip
        self.logger = getattr(engine, "logger", None) or self.logger
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(SearchEvents.ARCH_STEP_COMPLETED, self._arch_step_completed)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        engine.add_event_handler(Events.COMPLETED, self._completed)

    def _interval(self, engine: Engine) -> int:
        return self.interval or int(engine.state.epoch_length)

    # --- events ---------------------------------------------------------------------------------------------
    def _epoch_started(self, engine: Engine) -> None:
        self._epoch_start = time.perf_counter()
        self._checks = []
        if engine_device(engine).type == "cuda":
            torch.cuda.reset_peak_memory_stats(engine_device(engine))

    def _arch_step_completed(self, engine: Engine) -> None:
        if engine.arch_steps % self._interval(engine) == 0:
            self(engine)

    def __call__(self, engine: Engine) -> None:
        """Run one check: hand every group's live logits to the rule, carry out its cuts."""
        cells = self.cells
        lr = _arch_lr(engine)
        # under torchrun: α/β are identical on every rank (averaged gradients); take rank 0's bits all the same,
        # so that every rank's rule sees the same logits, then check that the ranks' cuts agree before any applies
        broadcast_tensors(list(engine.network.arch_parameters()))
        check: dict[str, Any] = {"arch_step": engine.arch_steps, "lr": lr, "alpha": [], "beta": [], "verdicts": [],
                                 "d_edge": [], "d_node": [], "events": []}
        decided = []
        for g, arch in enumerate(cells.archs):
            alphas = {k: named_floats(arch.edge_ops[k], v.float()) for k, v in arch.alpha_dict().items()}
            betas = {str(j): named_floats(arch.node_inputs[j], v.float()) for j, v in arch.beta_dict().items()}
            check["alpha"].append(alphas)
            check["beta"].append(betas)
            verdicts, cuts = self._deciders[g].check_cell(
                self._tracks[g], alphas, betas, engine.arch_steps, lr, prune=self.prune, prune_nodes=self.prune_nodes
            )
            check["verdicts"].append({kind: {k: v.to_dict() for k, v in vs.items()} for kind, vs in verdicts.items()})
            check["d_edge"].append({k: v.d for k, v in verdicts["edge"].items()})
            check["d_node"].append({k: v.d for k, v in verdicts["node"].items()})
            decided.append(cuts)
        agree(f"the cuts at arch step {engine.arch_steps}",
              [[c.to_event(engine.arch_steps) for c in cuts] for cuts in decided])  # fmt: skip
        for g, cuts in enumerate(decided):
            for cut in cuts:
                if cut.kind == "node":
                    remap = cells.prune_node(g, int(cut.where), [int(i) for i in cut.kept])
                else:
                    remap = cells.prune_edge(g, *parse_edge_key(cut.where), cut.kept)
                self._apply(engine, remap)
                event = {"epoch": engine.state.epoch, "group": g, **cut.to_event(engine.arch_steps)}
                check["events"].append(event)
                why = "not the JSD rule" if self.control is not None else _why(cut.verdict)
                who = "IAC-LTH" if self.control is None else f"Control {self.control['name']}"
                self._log(
                    f"{who} cut at epoch {event['epoch']}, arch step {event['arch_step']}: {cut.kind} {cut.where} "
                    f"keeps {cut.kept}, drops {cut.dropped} ({why}); {sum(a.ops_alive() for a in cells.archs)} ops alive"
                )
        self._checks.append(check)
        self.record.events.extend(check["events"])
        if self.prune and cells.is_decided():
            if self.decided_at is None:
                self.decided_at = {"epoch": engine.state.epoch, "arch_step": engine.arch_steps}
                self._log(f"{'IAC-LTH' if self.control is None else self.method}: the cell is decided at epoch "
                          f"{engine.state.epoch}, arch step {engine.arch_steps}: "
                          f"{'; '.join(str(g) for g in cells.genotypes())}")
            # a control on another search's schedule runs to that schedule's end (an equal budget of arch steps)
            if self.terminate and all(d.may_stop(engine.arch_steps) for d in self._deciders):
                engine.terminate()

    def _log(self, message: str) -> None:
        if is_main_process():
            self.logger.info(message)

    def _apply(self, engine: Engine, remap: Mapping) -> None:
        """Take what was deleted out of both optimisers (and carry the kept α/β state over)."""
        net = engine.network
        sync_optimizer(engine.arch_optimizer, net.arch_parameters(), remap)
        sync_optimizer(engine.optimizer, net.weight_parameters())

    def _epoch_completed(self, engine: Engine) -> None:
        wall = time.perf_counter() - (self._epoch_start or time.perf_counter())
        self.record.elapsed += wall
        self.record.add_epoch(epoch_entry(engine, self.cells, self._checks, self._tracks, wall, self.record.elapsed))
        self.record.write_history(self.history())
        if is_main_process():
            PROGRESS.info(progress_line(engine, self.epochs[-1], self.prune))

    def _completed(self, engine: Engine) -> None:
        if not self.epochs or self.epochs[-1]["epoch"] != engine.state.epoch:
            # terminated inside an epoch (decided): Ignite skips EPOCH_COMPLETED, but the partial epoch counts
            self._epoch_completed(engine)
            self.epochs[-1]["partial"] = True
        self.final_contribution = self.epochs[-1].get("cells")
        if self.final_contribution:
            self._log("IAC cells at the end of the search: " + contribution_text(self.final_contribution))
        self.record.write_history(self.history())
        cells = self.cells
        self.record.write_genotype(cells, {
            "method": self.method,
            "decided_by_pruning": self.decided_at is not None,
            "epochs": engine.state.epoch,
            "arch_steps": engine.arch_steps,
            "search_wall_clock_s": self.record.elapsed,
            "cell_config": cells.config,
            "rule": self.rule.config() | {"interval": self.interval, "control": self._control_config()},
        })  # fmt: skip

    # --- the record (search/record.py measures and writes; the handler says what decided) ---------------------
    epochs = property(lambda self: self.record.epochs)
    events = property(lambda self: self.record.events)
    history_path = property(lambda self: self.record.history_path)
    genotype_path = property(lambda self: self.record.genotype_path)

    def history(self) -> dict[str, Any]:
        """The history document (``search_history.json``) as it stands."""
        rule = self.rule.config() | {"interval": self.interval, "prune": self.prune, "prune_nodes": self.prune_nodes,
                                     "control": self._control_config(),
                                     "units": "epsilon: fraction of (lr*steps)^2/(8 ln 2) bits; margin: "
                                              "multiples of 2*lr*steps logits"}  # fmt: skip
        return self.record.document(self.method, rule, self.cells, self.decided_at)

    # --- checkpointing --------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: the pruned structure first, then the rule's memory and the history.
        Plain JSON-like data, so it loads with ``torch.load(weights_only=True)``."""
        return {
            "structure": self.cells.structure(),
            "tracks": [t.state_dict() for t in self._tracks],
            **self.record.state_dict(),  # epochs, events, elapsed
            "decided_at": self.decided_at,
            "identity": self.identity,
            "controls": [d.state_dict() for d in self._deciders] if self.control else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Re-prune the (fresh) network to the saved structure and rebuild the optimisers' parameter groups, so
        that the network's and optimisers' saved states load after this one (list this handler first in the
        checkpoint's ``load_dict``).

        Raises:
            ValueError: one line, when the checkpoint comes from another search space or handler version.
        """
        engine = self._engine
        if engine is None:
            raise RuntimeError("attach JSDPruningHandler to the search engine before loading its state")
        if "tracks" not in state:
            raise ValueError("the checkpoint's pruning state comes from an older version of the handler; "
                             "start the search again without --resume")
        theirs = state.get("identity")
        if self.identity and theirs and theirs != self.identity:
            differ = ", ".join(f"{k} {theirs.get(k)!r} there, {v!r} here" for k, v in self.identity.items()
                               if theirs.get(k) != v)  # fmt: skip
            raise SystemExit(f"error: --resume: the newest checkpoint under this run's output folder belongs to another "
                             f"search ({differ}); give each run its own --output_dir, or start without --resume")
        remap = self.cells.apply_structure(state["structure"])
        self._apply(engine, remap)
        self._tracks = [CellTracks.from_state(t) for t in state["tracks"]]
        self.record.load_state_dict(state)
        self.decided_at = state["decided_at"]
        for d, s in zip(self._deciders if self.control else [], state.get("controls") or []):
            d.load_state_dict(s)
