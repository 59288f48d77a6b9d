"""Running a benchmark's steps side by side: the task graph on slots (real processes), the device slots, one
seed's steps and their order, and the cells' MAC count per epoch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from iac_components.evidence.runner import SeedRun, cell_macs_per_epoch, seed_tasks
from iac_components.evidence.schedule import ScheduleError, Slot, device_slots, run_graph, topological

# a task writes when it started and ended and what its slot's environment said, sleeping in between
TASK = (
    "import json, os, sys, time\n"
    "t0 = time.time(); time.sleep(float(sys.argv[2]))\n"
    "open(sys.argv[1], 'w').write(json.dumps({'start': t0, 'end': time.time(), 'gpu': os.environ.get('CUDA_VISIBLE_DEVICES')}))\n"
    "sys.exit(int(sys.argv[3]))\n"
)


def _starter(tmp_path, sleep=0.3, fail=()):
    def start(name, slot):
        log = tmp_path / f"{name}.log"
        args = [sys.executable, "-c", TASK, str(tmp_path / f"{name}.json"), str(sleep), "1" if name in fail else "0"]
        return subprocess.Popen(args, env={**slot.env, "PATH": ""}), log

    return start


def _times(tmp_path, names):
    return {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in names}


def test_steps_start_after_what_they_need_and_never_more_than_the_slots(tmp_path):
    graph = {"a": (), "b": ("a",), "c": ("a",), "d": ("a",), "e": ("b", "c")}
    slots = [Slot("cuda:0", {"CUDA_VISIBLE_DEVICES": "0"}), Slot("cuda:0", {"CUDA_VISIBLE_DEVICES": "1"})]
    finished = run_graph(graph, _starter(tmp_path), slots, poll_s=0.02)
    assert sorted(finished) == sorted(graph) and finished[0] == "a" and finished.index("e") > finished.index("b")
    t = _times(tmp_path, graph)
    for name, needs in graph.items():
        assert all(t[name]["start"] >= t[n]["end"] for n in needs), name
    # b, c, d were ready together: two ran at once (one per GPU), never three
    edges = sorted([(v["start"], 1) for v in t.values()] + [(v["end"], -1) for v in t.values()])
    running = [sum(d for _, d in edges[: i + 1]) for i in range(len(edges))]
    assert max(running) == 2
    assert {v["gpu"] for v in t.values()} == {"0", "1"}


def test_a_failed_step_starts_nothing_that_needs_it_and_names_its_log(tmp_path):
    graph = {"a": (), "b": ("a",), "c": ()}
    with pytest.raises(ScheduleError, match=r"^task 'a' failed with exit code 1; its log: .*a\.log$"):
        run_graph(graph, _starter(tmp_path, sleep=0.05, fail={"a"}), [Slot("cpu")], poll_s=0.02)
    assert not (tmp_path / "b.json").exists() and not (tmp_path / "c.json").exists()


def test_unknown_needs_and_cycles_fail_before_anything_starts(tmp_path):
    with pytest.raises(ValueError, match="task 'b' needs 'x', which is not a task"):
        run_graph({"a": (), "b": ("x",)}, _starter(tmp_path), [Slot("cpu")])
    with pytest.raises(ValueError, match="need each other"):
        topological({"a": ("b",), "b": ("a",)})
    assert list(tmp_path.iterdir()) == []


def test_device_slots(monkeypatch):
    assert [s.device for s in device_slots("cpu", jobs=3, threads=1)] == ["cpu"] * 3
    gpus = device_slots("cuda:1,3", jobs=2)
    assert [(s.device, s.env["CUDA_VISIBLE_DEVICES"]) for s in gpus] == [("cuda:0", "1")] * 2 + [("cuda:0", "3")] * 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in device_slots("cuda")] == ["2", "5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ValueError, match="no CUDA device is visible; run with --devices cpu"):
        device_slots("cuda")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        device_slots("tpu")
    with pytest.raises(ValueError, match="jobs=0"):
        device_slots("cpu", jobs=0)


def test_one_seeds_steps_run_searches_before_their_controls_and_retrains(tmp_path):
    tasks = seed_tasks(noise_seeds=(11, 12), n_random=2)
    order = topological(tasks)
    assert order[:4] == ["baseline", "search_full", "search_full_seed11", "search_full_seed12"]
    assert tasks["search_sgas"] == tasks["search_random_cuts"] == ("search_lth",)
    assert set(tasks["retrain_truncated"]) == {"search_full", "search_lth"}
    assert [t for t in order if t.startswith("retrain_")] == [
        "retrain_full", "retrain_lth", "retrain_truncated", "retrain_random_cuts", "retrain_sgas", "retrain_no_cells",
        "retrain_random_0", "retrain_random_1"]  # fmt: skip
    with pytest.raises(ValueError, match="unknown benchmark task 'evaluate'"):
        SeedRun(tmp_path, 1, tmp_path, tmp_path, 2, 1).run_task("evaluate")


def test_cell_macs_per_epoch_counts_the_structure_each_epoch_started_with():
    epochs = [  # 3 weight steps per epoch; arch steps from epoch 2; a cut at the end of epoch 2
        {"iteration": 3, "arch_steps": 0, "cells": {"forward_macs": 100}},
        {"iteration": 6, "arch_steps": 3, "cells": {"forward_macs": 40}},
        {"iteration": 7, "arch_steps": 4, "cells": {"forward_macs": 40}},  # stopped early in epoch 3
    ]
    assert cell_macs_per_epoch({"epochs": epochs}, batch_size=2) == [100 * 3 * 2, 100 * 6 * 2, 40 * 2 * 2]
    assert cell_macs_per_epoch({"epochs": [{"iteration": 1, "arch_steps": 0, "cells": None}]}, 2) is None


def test_impossible_options_stop_the_benchmark_before_any_data_is_written(tmp_path):
    from iac_components.evidence.runner import run_benchmark

    with pytest.raises(ScheduleError, match=r"^patients=10: the benchmark trains and searches on 15 patients"):
        run_benchmark(out=tmp_path / "b", seeds="1", patients=10, results=tmp_path / "r")
    with pytest.raises(ScheduleError, match="unknown device 'tpu'"):
        run_benchmark(out=tmp_path / "b", seeds="1", devices="tpu", results=tmp_path / "r")
    assert not (tmp_path / "b" / "raw").exists() and not list((tmp_path / "b").glob("seed*"))


def test_a_step_interrupted_after_its_first_checkpoint_runs_again(tmp_path, monkeypatch):
    import iac_components.evidence.runner as runner

    calls = []
    monkeypatch.setattr(runner, "run_workflow", lambda config, run_id, log, overrides: calls.append(config.name))
    seed_run = SeedRun(tmp_path, 1, tmp_path / "raw", tmp_path / "configs", 2, 1)
    model = seed_run.run / "retrain_lth" / "model.pt"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"best-so-far")  # a checkpoint saved before the interruption, no time stamp
    seed_run._timed("retrain_lth", "retrain.json", {}, model)
    assert calls == ["retrain.json"] and (seed_run.run / "retrain_lth_s.txt").is_file()
    seed_run._timed("retrain_lth", "retrain.json", {}, model)  # finished: not run again
    assert calls == ["retrain.json"]


def test_each_retrain_arm_trains_the_cell_it_names(tmp_path, monkeypatch):
    """random_<k> draws a random cell; random_cuts retrains what its control search wrote; no_cells has none."""
    import iac_components.evidence.runner as runner

    seen = {}

    def fake_run(config, run_id, log, overrides):
        if config.name == "retrain.json":
            seen[log.stem] = overrides["genotype_file"]
            (Path(overrides["ckpt_dir"]) / "model.pt").write_bytes(b"")

    monkeypatch.setattr(runner, "run_workflow", fake_run)
    seed_run = SeedRun(tmp_path, 1, tmp_path / "raw", tmp_path / "configs", 2, 1, n_random=1)
    (seed_run.run / "baseline").mkdir(parents=True)
    (seed_run.run / "baseline" / "baseline.pt").write_bytes(b"")
    for arm in ("random_cuts", "random_0", "no_cells"):
        eval_csv = seed_run.run / f"retrain_{arm}" / "evaluation" / "iac" / "metrics_per_case.csv"
        eval_csv.parent.mkdir(parents=True)
        eval_csv.write_text("")
        seed_run.run_task(f"retrain_{arm}")
    assert seen == {"retrain_random_cuts": str(seed_run.run / "search_random_cuts" / "genotype.json"),
                    "retrain_random_0": str(seed_run.run / "random_0_genotype.json"), "retrain_no_cells": "none"}  # fmt: skip
    assert (seed_run.run / "random_0_genotype.json").is_file()
