"""The benchmark's equal-budget controls (random cuts on LTH's schedule, SGAS-style greedy decisions), carried out
by the pruning handler on scripted α/β trajectories."""

from __future__ import annotations

import json

import pytest

from iac_components.genotype import load_genotypes
from iac_components.search.controls import RandomCuts, SGASSchedule, make_control
from iac_components.search.pruning import JSDPruningHandler
from iac_components.search.rule import JSDRule
from tests.search.test_pruning import OPS, ScriptedSearch, _by_name, _handler, _script, decided_script


def _run(tmp_path, name, epochs=50, **kw):
    eng = ScriptedSearch(decided_script())
    h = _handler(genotype_path=tmp_path / f"{name}_genotype.json", history_path=tmp_path / f"{name}_history.json", **kw)
    h.attach(eng)
    eng.go(epochs)
    return eng, h, json.loads((tmp_path / f"{name}_history.json").read_text())


def test_random_cuts_follow_lths_schedule_and_end_at_its_arch_step(tmp_path):
    lth_eng, _, lth = _run(tmp_path, "lth")
    control = {"name": "random_cuts", "schedule": str(tmp_path / "lth_history.json"), "seed": 3}
    eng, _, hist = _run(tmp_path, "random", control=control)
    # decided, and stopped, at LTH's arch step: an equal budget
    assert eng.network.cells.is_decided()
    assert hist["decided_at"] == lth["decided_at"] and eng.state.epoch == lth_eng.state.epoch
    # every cut at an arch step where LTH cut (the ones left at LTH's last step are decided there)
    assert {e["arch_step"] for e in hist["events"]} <= {e["arch_step"] for e in lth["events"]}
    assert hist["method"] == "control: random_cuts" and hist["rule"]["control"]["seed"] == 3
    random_g = load_genotypes(tmp_path / "random_genotype.json")[0]
    lth_g = load_genotypes(tmp_path / "lth_genotype.json")[0]
    assert random_g != lth_g  # the choices are not α's (with this seed they differ from LTH's)
    # the same seed makes the same choices (a resumed search too: draws depend on the place and time only)
    _run(tmp_path, "again", control=control)
    assert load_genotypes(tmp_path / "again_genotype.json")[0] == random_g


def test_random_cuts_decided_early_run_on_to_lths_last_arch_step(tmp_path):
    _, _, lth = _run(tmp_path, "lth")
    last = lth["events"][-1]["arch_step"]
    # a schedule whose last cut comes 20 arch steps after the cell is decided (as when LTH's last cut falls on an
    # edge that random node cuts have already removed): the control must not end before it
    late = dict(lth["events"][-1], arch_step=last + 20)
    (tmp_path / "long_history.json").write_text(json.dumps({"events": lth["events"] + [late]}))
    control = {"name": "random_cuts", "schedule": str(tmp_path / "long_history.json"), "seed": 3}
    eng, _, hist = _run(tmp_path, "random_long", control=control)
    assert hist["decided_at"]["arch_step"] <= last  # decided when LTH's cell was ...
    assert eng.arch_steps == last + 20  # ... but ran on, with the decided cell, to the schedule's last arch step
    assert eng.network.cells.is_decided()


def test_random_cuts_keep_as_many_as_lth_on_the_same_edge():
    events = [{"arch_step": 4, "kind": "edge", "where": "0->2", "kept": OPS[:4], "dropped": OPS[4:]}]
    rc = RandomCuts(events, seed=0)
    alphas = {"0->2": dict.fromkeys(OPS, 0.0), "1->2": dict.fromkeys(OPS, 0.0)}
    betas = {"2": {"0": 0.0, "1": 0.0}}
    _, cuts = rc.check_cell(None, alphas, betas, arch_step=3, lr=0.1)
    assert cuts == []  # not due yet
    _, cuts = rc.check_cell(None, alphas, betas, arch_step=4, lr=0.1)
    # the schedule is done: the 4 kept on 0->2, then every edge decided to one op at that step
    assert [(c.kind, c.where, len(c.kept)) for c in cuts] == [("edge", "0->2", 4), ("edge", "0->2", 1), ("edge", "1->2", 1)]
    assert set(cuts[1].kept) <= set(cuts[0].kept)


def test_sgas_decides_one_edge_or_node_every_T_steps_most_certain_first(tmp_path):
    peaked = [8.0] + [0.0] * 7  # a certain edge: SGAS's first decision
    eng = ScriptedSearch(_script({"0->3": _by_name(peaked)}))
    h = _handler(interval=1, control={"name": "sgas", "every": 3},
                 genotype_path=tmp_path / "g.json", history_path=tmp_path / "h.json")  # fmt: skip
    h.attach(eng)
    eng.go(60)
    ev = h.events
    # one decision every 3 arch steps until the cell is decided
    assert [e["arch_step"] for e in ev] == [3 * (n + 1) for n in range(len(ev))]
    assert (ev[0]["kind"], ev[0]["where"], ev[0]["kept"]) == ("edge", "0->3", [OPS[0]])
    assert all(len(e["kept"]) == (2 if e["kind"] == "node" else 1) for e in ev)
    assert eng.network.cells.is_decided() and h.decided_at["arch_step"] == ev[-1]["arch_step"]
    assert json.loads((tmp_path / "h.json").read_text())["method"] == "control: sgas"


def test_sgas_score_is_importance_times_certainty():
    s = SGASSchedule(every=1)
    assert s.edge_score(dict.fromkeys(OPS, 0.0)) == pytest.approx(0.0, abs=1e-12)  # uniform: no certainty
    assert s.edge_score({"conv_3x3": 20.0, "sep_conv_3x3": 0.0}) == pytest.approx(1.0, abs=1e-6)
    # mass on `none` is no importance
    assert s.edge_score({"none": 20.0, "conv_3x3": 0.0, "sep_conv_3x3": 0.0}) < 1e-6
    assert s.node_score({"0": 10.0, "1": 10.0, "2": -10.0}) > s.node_score({"0": 0.0, "1": 0.0, "2": 0.0})


def test_control_state_is_checkpointed(tmp_path):
    eng = ScriptedSearch(_script({"0->3": _by_name([8.0] + [0.0] * 7)}))
    h = _handler(interval=1, control={"name": "sgas", "every": 3})
    h.attach(eng)
    eng.go(2)
    state = h.state_dict()
    assert state["controls"] == [{"made": len(h.events)}]
    fresh = ScriptedSearch(_script())
    h2 = _handler(interval=1, control={"name": "sgas", "every": 3})
    h2.attach(fresh)
    h2.load_state_dict(state)
    assert h2._deciders[0].made == len(h.events)


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"name": "coin"}, "unknown pruning control 'coin'"),
        ({"name": "sgas"}, "pruning control 'sgas'"),
        ({"name": "random_cuts", "schedule": "/nonexistent/search_history.json"}, "/nonexistent/search_history.json"),
    ],
)
def test_bad_control_specs_fail_in_one_line(spec, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message.replace("(", r"\(")) as e:
        JSDPruningHandler(control=spec)
    assert "\n" not in str(e.value)


def test_make_control_gives_each_group_its_own_state():
    a, b = (make_control({"name": "sgas", "every": 2}, g, JSDRule()) for g in (0, 1))
    a.made = 3
    assert b.made == 0
