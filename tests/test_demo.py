"""`iac demo` end to end at a toy size: the same code path as the README's main command, seconds not minutes."""

from __future__ import annotations

import copy
import json

import pytest

import iac_components.demo as demo

# the whole-pipeline run is in the slow tier (`pytest -m slow`)


@pytest.fixture
def toy_overrides(monkeypatch):
    o = copy.deepcopy(demo.DEMO_OVERRIDES)
    o["train"]["epochs"] = 1
    o["search"].update(epochs=2, warmup_steps=2)
    o["retrain"]["epochs"] = 1
    monkeypatch.setattr(demo, "DEMO_OVERRIDES", o)
    return o


@pytest.mark.slow
def test_demo_runs_every_step_and_prints_the_summary(tmp_path, toy_overrides, capsys):
    summary = demo.run_demo(tmp_path / "demo", patients=6, seed=0, threads=1)
    out = capsys.readouterr().out
    for step in ("train", "search", "retrain", "evaluate", "inference"):
        assert f"[demo] {step} done" in out
        assert (tmp_path / "demo" / "logs" / f"{step}.log").stat().st_size > 0
    assert "test Dice, U-Net + IAC" in out and "ops alive" in out
    assert "IAC had 1 more epochs of training" in out  # the IAC - baseline line is not read as the cells' gain
    assert "cells after search" in out and "cells after retrain" in out and "‖γ·cell‖/‖skip‖" in out
    assert "demo's search settings" in out and "arch_learning_rate 0.01" in out and "cannot" in out
    assert "ops skip_connect/avg_pool_3x3/conv_3x3/sep_conv_3x3/dil_conv_3x3" in out
    stages = next(line for line in out.splitlines() if line.strip().startswith("time per stage"))
    assert all(f"{step} " in stages for step in ("train", "search", "retrain", "evaluate", "export", "inference"))
    history = json.loads((tmp_path / "demo" / "eval" / "search_history.json").read_text())
    assert all(e["cells"]["forward_macs"] > 0 for e in history["epochs"])  # the cost proxy, every epoch
    assert "Epoch[" not in out  # the workflows' logs go to the log files, not the console
    # progress; the demo searches 5 of the 8 ops: 14 edges x 5
    assert "[demo]   search epoch 1/2: 70 ops alive, loss " in out and "[demo]   search epoch 2/2" in out
    saved = json.loads((tmp_path / "demo" / "demo_summary.json").read_text())
    assert saved["search"]["epochs"] == 2 and saved["search"]["ops_alive_start"] == 14 * 5
    assert 0.0 <= saved["dice"]["baseline"] <= 1.0 and 0.0 <= saved["dice"]["iac"] <= 1.0
    assert len(saved["cells"]["search"]["ratio"]) == 4 and len(saved["cells"]["retrain"]["gamma_max_abs"]) == 4
    assert saved["search"]["rule"]["window"] == 16 and saved["search"]["rule"]["settle"] == 3  # listed in its table
    decided = next(line for line in out.splitlines() if line.strip().startswith("cell decided early"))
    if saved["search"]["decided_by_pruning"]:  # the decided epoch as a fraction of the cap, or why not
        assert f"at epoch {saved['search']['decided_epoch']} of 2 (" in decided and "of the cap" in decided
    else:
        assert "stopped at its cap of 2 epochs" in decided
    for key in ("genotype", "search_history", "model_ts"):
        assert (tmp_path / "demo" / saved["outputs"][key].split("/demo/", 1)[1]).exists()
    preds = list((tmp_path / "demo" / "predictions").glob("*.nii.gz"))
    assert len(preds) == 1
    assert summary == saved



def test_the_table_reports_the_decided_epoch_as_a_fraction_of_the_cap(capsys):
    """The demo exists to show the method's defining behaviour: a decided cell, and when."""
    summary = {
        "search": {"wall_clock_s": 100.0, "epochs": 12, "max_epochs": 18, "arch_steps": 78, "ops_alive_start": 70,
                   "ops_alive_end": 8, "decided_by_pruning": True, "decided_epoch": 12, "decided_arch_step": 78,
                   "pruning_events": 19, "rule": {}, "overrides": {"pruning#window": 16}},
        "dice": {"baseline": 0.85, "iac": 0.87, "diff": None}, "cells": {}, "step_s": {"search": 100.0},
        "total_s": 250.0, "outputs": {},
    }  # fmt: skip
    demo._print_table(summary)
    out = capsys.readouterr().out
    assert "yes, by the JSD rule at epoch 12 of 18 (0.67 of the cap; arch step 78)" in out
