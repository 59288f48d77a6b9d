"""The JSD rule on scripted α/β trajectories: an engine whose "arch step" writes α and β from a script."""

from __future__ import annotations

import json

import pytest
import torch
from ignite.engine import Engine, Events

from iac_components.cell import SearchCells
from iac_components.genotype import edge_key, load_genotypes
from iac_components.search.engine import SearchEvents
from iac_components.search.pruning import JSDPruningHandler

OPS = ["skip_connect", "avg_pool_3x3", "max_pool_3x3", "conv_3x3", "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"]
RANKED = [3.0, 2.5, 2.0, 1.5, 0.0, -0.5, -1.0, -1.5]  # a decided edge: clear gaps between all ranks


class _Net(torch.nn.Module):
    def __init__(self, cells):
        super().__init__()
        self.cells = cells

    def arch_parameters(self):
        return self.cells.arch_parameters()

    def weight_parameters(self):
        return self.cells.weight_parameters()


class ScriptedSearch(Engine):
    """Each iteration after warm-up is one 'arch step' that sets α and β to ``script(step, kind, where, names)``."""

    def __init__(self, script, warmup_steps=0, epoch_length=4, ops=OPS):
        super().__init__(self._step)
        self.register_events(*SearchEvents)
        self.network = _Net(SearchCells([8, 8], ops=ops, cell_channels=8, partial_k=1))
        self.optimizer = torch.optim.SGD(list(self.network.weight_parameters()), lr=0.1)
        self.arch_optimizer = torch.optim.Adam(list(self.network.arch_parameters()), lr=0.1)
        self.script, self.warmup_steps, self.epoch_length = script, warmup_steps, epoch_length

    @property
    def arch_steps(self):
        return max(0, self.state.iteration - self.warmup_steps)

    def in_warmup(self):
        return self.state.iteration <= self.warmup_steps

    def _step(self, engine, batch):
        if self.in_warmup():
            return
        arch = self.network.cells.archs[0]
        with torch.no_grad():
            for key, ops in arch.edge_ops.items():
                i, j = map(int, key.split("->"))
                arch.alpha(i, j).copy_(torch.tensor(self.script(self.arch_steps, "edge", key, ops)))
            for j, inputs in arch.node_inputs.items():
                arch.beta(j).copy_(torch.tensor(self.script(self.arch_steps, "node", j, inputs)))
        self.fire_event(SearchEvents.ARCH_STEP_COMPLETED)

    def go(self, epochs):
        return self.run(range(self.epoch_length), max_epochs=epochs)


def _script(edges=None, nodes=None):
    """Per-edge / per-node logit functions; the default keeps everything at zero (uniform)."""
    edges, nodes = edges or {}, nodes or {}

    def script(step, kind, where, names):
        table = edges if kind == "edge" else nodes
        fn = table.get(where)
        if fn is None:
            return [0.0] * len(names)
        return fn(step, names)

    return script


def _by_name(values, universe=OPS):
    return lambda step, names: [values[universe.index(n)] for n in names]


def _handler(**kw):
    # arch lr 0.1, one check per epoch of 4 arch steps: threshold 0.1·(0.4)²/(8 ln 2) bits, margin 0.5·0.8 logits
    kw = {"epsilon": 0.1, "window": 4, "patience": 2, "margin": 0.5, **kw}
    return JSDPruningHandler(**kw)


def test_stable_decided_edge_is_cut_to_the_smallest_size_whose_lead_clears_the_margin():
    eng = ScriptedSearch(_script({"0->2": _by_name(RANKED)}))
    h = _handler()
    h.attach(eng)
    eng.go(3)
    # checks once per epoch (4 arch steps): d exists from check 2, stable at checks 2 and 3 -> cut at check 3, and
    # straight to one op: the best leads the second by more than the margin, so the smaller sizes between are moot
    arch = eng.network.cells.archs[0]
    assert arch.edge_ops["0->2"] == ["skip_connect"]
    ev = [e for e in h.events if e["kind"] == "edge"]
    assert [(e["where"], e["epoch"], e["arch_step"]) for e in ev] == [("0->2", 3, 12)]
    assert ev[0]["dropped"] == [o for o in OPS if o != "skip_connect"]
    # where only the bottom of the ranking is separated, the edge steps down to the size whose boundary is
    close_top = [RANKED[0], RANKED[0] - 0.01, RANKED[0] - 0.02, RANKED[0] - 0.03] + RANKED[4:]
    eng2 = ScriptedSearch(_script({"0->2": _by_name(close_top)}))
    h2 = _handler()
    h2.attach(eng2)
    eng2.go(3)
    assert eng2.network.cells.archs[0].edge_ops["0->2"] == ["skip_connect", "avg_pool_3x3", "max_pool_3x3", "conv_3x3"]


def test_unstable_edge_is_untouched():
    flip = lambda step, names: [RANKED[OPS.index(n)] * (1 if (step // 4) % 2 else -1) for n in names]  # noqa: E731
    eng = ScriptedSearch(_script({"0->2": flip, "1->2": _by_name(RANKED)}))
    h = _handler()
    h.attach(eng)
    eng.go(6)
    arch = eng.network.cells.archs[0]
    assert arch.edge_ops["0->2"] == OPS
    assert h.epochs[-1]["groups"][0]["d_edge"]["0->2"] > 0.1
    assert len(arch.edge_ops["1->2"]) < 8  # the rule itself works in the same run


def test_near_uniform_alpha_that_barely_moves_is_stable_but_not_pruned():
    tiny = lambda step, names: [1e-4 * step * OPS.index(n) for n in names]  # noqa: E731
    eng = ScriptedSearch(_script({"0->2": tiny}))
    h = _handler()
    h.attach(eng)
    eng.go(8)
    assert eng.network.cells.archs[0].edge_ops["0->2"] == OPS
    assert h.epochs[-1]["groups"][0]["stable_edge"]["0->2"] >= 6  # stable all along ...
    assert h.events == []  # ... but undecided


def test_warmup_steps_do_not_count():
    eng = ScriptedSearch(_script({"0->2": _by_name(RANKED)}), warmup_steps=8)
    h = _handler()
    h.attach(eng)
    eng.go(5)
    assert [(e["epoch"], e["arch_step"]) for e in h.events] == [(5, 12)]
    assert h.epochs[1]["checks"] == [] and h.epochs[1]["arch_steps"] == 0


def test_interval_counts_arch_steps_so_epsilon_carries_across_epoch_lengths():
    # the same trajectory per arch step, epochs 4x longer: pruning happens at the same arch step
    drift = lambda step, names: [RANKED[OPS.index(n)] + 0.05 * min(step, 20) for n in names]  # noqa: E731
    steps = []
    for epoch_length in (4, 16):
        eng = ScriptedSearch(_script({"0->2": _by_name(RANKED), "0->3": drift}), epoch_length=epoch_length)
        h = _handler(interval=4)
        h.attach(eng)
        eng.go(48 // epoch_length)
        steps.append([(e["where"], e["arch_step"]) for e in h.events])
    assert steps[0] == steps[1] and steps[0]


def test_node_keeps_its_two_best_inputs():
    # node 4 (inputs 0..3): β favours 3 and 1; edge 0->4 has a strong op but a tiny β, so it loses
    betas = {4: lambda step, names: [-3.0, 2.0, 0.0, 2.5][: len(names)] if len(names) == 4 else [2.0, 2.5]}
    eng = ScriptedSearch(_script({"0->4": _by_name(RANKED)}, betas))
    h = _handler()
    h.attach(eng)
    eng.go(3)
    arch = eng.network.cells.archs[0]
    assert arch.node_inputs[4] == [1, 3]
    assert "0->4" not in arch.edge_ops and "2->4" not in arch.edge_ops
    assert all("e0_4" not in c.edges and "e2_4" not in c.edges for c in eng.network.cells.cells)
    node_events = [e for e in h.events if e["kind"] == "node"]
    assert [(e["where"], e["kept"], e["dropped"]) for e in node_events] == [("4", [1, 3], [0, 2])]


def decided_script():
    """Every edge ranked (shifted per edge), every node with a clear top 2: the JSD rule decides the cell."""
    node_logits = {2: [1.0, 0.0], 3: [0.0, 2.0, 1.0], 4: [0.0, 0.0, 3.0, 2.0], 5: [3.0, 0.0, 0.0, 0.0, 2.0]}
    nodes = {j: (lambda step, names, j=j: [node_logits[j][i] for i in names]) for j in node_logits}
    edges = {}
    for j in range(2, 6):
        for i in range(j):
            shift = (i + j) % 8
            edges[edge_key(i, j)] = _by_name(RANKED[shift:] + RANKED[:shift])
    return _script(edges, nodes)


def test_engine_terminates_when_everything_is_decided_and_writes_the_genotype(tmp_path):
    eng = ScriptedSearch(decided_script())
    h = _handler(genotype_path=tmp_path / "genotype.json", history_path=tmp_path / "search_history.json")
    h.attach(eng)
    eng.go(50)
    assert eng.state.epoch < 50 and eng.network.cells.is_decided()
    g = load_genotypes(tmp_path / "genotype.json")[0]
    assert [sorted(i for i, _ in node) for node in g.nodes] == [[0, 1], [1, 2], [2, 3], [0, 4]]
    best = lambda i, j: OPS[(8 - (i + j) % 8) % 8]  # where RANKED's top value lands after the shift  # noqa: E731
    assert g.nodes == tuple(tuple((i, best(i, j)) for i in ins) for j, ins in zip(range(2, 6), ([0, 1], [1, 2], [2, 3], [0, 4])))
    hist = json.loads((tmp_path / "search_history.json").read_text())
    assert hist["decided_at"]["epoch"] == eng.state.epoch
    assert hist["epochs"][-1]["ops_alive"] == 8 and hist["ops_alive_start"] == 14 * 8  # the unpruned space
    assert [e["ops_alive"] for e in hist["epochs"]] == sorted((e["ops_alive"] for e in hist["epochs"]), reverse=True)
    for key in ("alpha", "beta", "importance", "alpha_beta", "p", "q", "d_edge", "d_node"):
        assert key in hist["epochs"][0]["groups"][0]
    assert {"epoch", "arch_steps", "wall_clock_s", "events", "checks", "ops_alive"} <= set(hist["epochs"][0])


def test_observe_only_records_the_same_history_and_prunes_nothing(tmp_path):
    eng = ScriptedSearch(_script({"0->2": _by_name(RANKED)}))
    h = _handler(prune=False, history_path=tmp_path / "h.json", genotype_path=tmp_path / "g.json")
    h.attach(eng)
    eng.go(5)
    assert eng.state.epoch == 5 and eng.network.cells.archs[0].ops_alive() == 14 * 8
    hist = json.loads((tmp_path / "h.json").read_text())
    assert len(hist["epochs"]) == 5 and hist["events"] == [] and hist["method"].startswith("full search")
    assert hist["epochs"][-1]["groups"][0]["stable_edge"]["0->2"] == 4
    assert load_genotypes(tmp_path / "g.json")[0].nodes[0][0] == (0, "skip_connect")


@pytest.mark.parametrize("bad", [{"epsilon": 0}, {"window": 0}, {"keep_schedule": (4, 2)}])
def test_bad_rule_numbers_are_refused(bad):
    with pytest.raises(ValueError):
        JSDPruningHandler(**bad)


def test_string_booleans_from_the_command_line():
    assert JSDPruningHandler(prune="false").prune is False
    assert JSDPruningHandler(prune="0").prune is False
    assert JSDPruningHandler(prune="True").prune is True
    with pytest.raises(ValueError, match="not a boolean"):
        JSDPruningHandler(prune="maybe")


def test_epoch_events_fire_in_order_with_checkpoint_saver_after(tmp_path):
    order = []
    eng = ScriptedSearch(_script({"0->2": _by_name(RANKED)}))
    h = _handler()
    h.attach(eng)
    eng.add_event_handler(Events.EPOCH_COMPLETED, lambda e: order.append(len(h.epochs)))
    eng.go(2)
    assert order == [1, 2]  # a handler attached after sees the epoch already recorded


def test_leaders_that_keep_swapping_are_not_a_decision():
    # the top three rotate and the 4th and 5th trade places every check while the distribution barely moves (JSD
    # tiny): no size keeps its leaders from one check to the next, so no prune, even with no margin
    def swapping(step, names):
        v = list(RANKED)
        if (step // 4) % 2:  # every other check the ranking starts b, c, a, e, d: every top set changes
            v[0], v[1], v[2], v[3], v[4] = v[2], v[0], v[1], v[4], v[3]
        return [v[OPS.index(n)] * 0.01 for n in names]

    eng = ScriptedSearch(_script({"0->2": swapping}))
    h = _handler(margin=0.0)
    h.attach(eng)
    eng.go(8)
    assert eng.network.cells.archs[0].edge_ops["0->2"] == OPS
    last = h.epochs[-1]["checks"][-1]["verdicts"][0]["edge"]["0->2"]
    assert last["d"] < last["threshold"] and last["status"] == "leaders_changed"
    # not moving all along (the stable count grows), and never the same leaders twice
    assert max(e["groups"][0]["stable_edge"]["0->2"] for e in h.epochs) >= 6
    statuses = [c["verdicts"][0]["edge"]["0->2"]["status"] for e in h.epochs for c in e["checks"]]
    assert set(statuses[1:]) == {"leaders_changed"}


def test_replaying_the_rule_on_a_full_history_finds_the_same_first_cuts(tmp_path):
    """The calibration sweep replays the rule on a full search's recorded checks; for each edge's first decision
    that replay is exact: it matches what the handler does in a real pruned run on the same trajectory."""
    from iac_components.evidence.calibration import replay_rule

    shifted = {edge_key(i, j): _by_name(RANKED[(i + j) % 8:] + RANKED[:(i + j) % 8]) for j in range(2, 6) for i in range(j)}
    rule = {"epsilon": 0.1, "window": 4, "patience": 2, "margin": 0.5}
    full = ScriptedSearch(_script(shifted))
    JSDPruningHandler(prune=False, history_path=tmp_path / "full.json", **rule).attach(full)
    full.go(4)
    replay = replay_rule(json.loads((tmp_path / "full.json").read_text()), **rule)
    lth = ScriptedSearch(_script(shifted))
    h = _handler(**rule)
    h.attach(lth)
    lth.go(4)
    real_first = {}
    for e in h.events:
        if e["kind"] == "edge":
            real_first.setdefault(e["where"], e["arch_step"])
    assert real_first and replay["first_cuts"] == real_first


def _noisy_cell(seed):
    """A whole cell whose α/β drift and settle at different times, with per-step noise: many kinds of verdict."""
    gen = torch.Generator().manual_seed(seed)
    base = {k: torch.randn(len(OPS), generator=gen) * 2 for k in (edge_key(i, j) for j in range(2, 6) for i in range(j))}
    noise = torch.randn(200, len(OPS), generator=gen) * 0.05
    node_base = {j: torch.randn(j, generator=gen) * 2 for j in range(2, 6)}

    def edges(key):
        settle = 8 + 4 * (sum(map(int, key.split("->"))) % 5)
        return lambda step, names: [float(base[key][OPS.index(n)] * min(step, settle) / settle + noise[step, OPS.index(n)])
                                    for n in names]

    def nodes(j):
        return lambda step, names: [float(node_base[j][i] * min(step, 16) / 16 + noise[step, i]) for i in names]

    return _script({k: edges(k) for k in base}, {j: nodes(j) for j in node_base})


def test_the_handler_and_the_replay_make_identical_decisions(tmp_path):
    """One implementation of the rule: replaying an IAC-LTH history with its own rule gives the handler's cuts."""
    from iac_components.search.rule import JSDRule, replay_history

    eng = ScriptedSearch(_noisy_cell(3))
    h = _handler(history_path=tmp_path / "h.json", genotype_path=tmp_path / "g.json")
    h.attach(eng)
    eng.go(40)
    hist = json.loads((tmp_path / "h.json").read_text())
    made = [(e["arch_step"], e["kind"], e["where"], e["kept"]) for e in hist["events"]]
    assert len(made) > 10 and any(k == "node" for _, k, _, _ in made)
    replay = replay_history(hist, JSDRule(**{k: hist["rule"][k] for k in ("epsilon", "window", "patience", "margin", "keep_schedule")}))
    assert [(c["arch_step"], c["kind"], c["where"], c["kept"]) for c in replay["cuts"]] == made
    assert replay["genotype"] == load_genotypes(tmp_path / "g.json")[0]
    # the history says, per check, edge and node, the divergence, the threshold in force and what blocked
    statuses = {v["status"] for e in hist["epochs"] for c in e["checks"] for v in c["verdicts"][0]["edge"].values()}
    assert {"filling_window", "cut"} <= statuses and statuses & {"moving", "waiting", "undecided", "leaders_changed"}
    v = next(v for e in hist["epochs"] for c in e["checks"] for v in c["verdicts"][0]["edge"].values() if v["d"] is not None)
    assert v["threshold"] > 0 and v["margin"] > 0 and v["steps"] == 4


def test_every_cut_is_logged(caplog):
    import logging

    eng = ScriptedSearch(_script({"0->2": _by_name(RANKED)}))
    h = _handler()
    h.attach(eng)
    with caplog.at_level(logging.INFO):
        eng.go(3)
    lines = [r.getMessage() for r in caplog.records if "IAC-LTH cut" in r.getMessage()]
    assert len(lines) == 1 and "edge 0->2" in lines[0] and "arch step 12" in lines[0]


def test_one_progress_line_per_epoch(caplog):
    import logging

    eng = ScriptedSearch(_script({"0->2": _by_name(RANKED)}))
    _handler().attach(eng)
    with caplog.at_level(logging.INFO, logger="iac_components.progress"):
        eng.go(3)
    lines = [r.getMessage() for r in caplog.records if r.name == "iac_components.progress"]
    assert len(lines) == 3 and lines[0].startswith("search epoch 1/3: 112 ops alive, ") and "min left" in lines[0]
    assert lines[-1].startswith("search epoch 3/3: 105 ops alive")  # 0->2 cut to 1 op at the third check
