"""The search under torchrun: 2 processes on the CPU (gloo, 127.0.0.1), each run bounded by a timeout so that a
hang fails instead of blocking CI. The ranks must end at the same arch step with identical α, structure,
genotype, history and cell weights, after cuts taken on the synchronised α; a resumed 2-rank search ends where an
uninterrupted one does. Single-process behaviour of the helpers is checked without a process group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from launch_utils import torchrun

from iac_components import distributed

WORKER = Path(__file__).with_name("ddp_search_worker.py")


def _ranks(out: Path) -> tuple[dict, dict]:
    return json.loads((out / "rank0.json").read_text()), json.loads((out / "rank1.json").read_text())


@pytest.mark.slow
def test_two_rank_search_stops_at_the_same_step_with_one_architecture(tmp_path):
    full = tmp_path / "full"
    torchrun(str(WORKER), "run", str(full), "80")
    r0, r1 = _ranks(full)
    assert r0["decided_at"] is not None and r0["epoch"] < 80  # ended early, by the rule
    assert r0["events"], "no cut was made"
    for key in ("epoch", "arch_steps", "decided_at", "alpha", "structure", "genotypes", "events", "history_epochs",
                "weights_sha256"):  # fmt: skip
        assert r0[key] == r1[key], key
    assert r0["samples_seen"] == r1["samples_seen"] == 8  # each rank its half of the 16 search-train samples
    # rank 0 alone wrote the outputs, and they are what both ranks hold
    history = json.loads((full / "search_history.json").read_text())
    assert history["events"] == r0["events"] and history["decided_at"] == r0["decided_at"]
    genotype = json.loads((full / "genotype.json").read_text())
    assert genotype["search"]["arch_steps"] == r0["arch_steps"]

    # resumed from a checkpoint after a pruning epoch (not the last): the same search
    stop = next(e["epoch"] for e in r0["events"] if e["epoch"] < r0["epoch"] - 1)
    part = tmp_path / "part"
    torchrun(str(WORKER), "run", str(part), str(stop))
    ckpt = part / "ckpt" / f"checkpoint_epoch={stop}.pt"
    assert ckpt.is_file()
    torchrun(str(WORKER), "resume", str(part), "80", str(ckpt))
    p0, p1 = _ranks(part)
    for key in ("epoch", "arch_steps", "decided_at", "alpha", "structure", "genotypes", "events"):
        assert p0[key] == r0[key] == p1[key], key


def test_helpers_are_no_ops_in_one_process():
    assert not distributed.is_distributed() and distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.is_main_process()
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    distributed.average_gradients([p])
    distributed.broadcast_tensors([p])
    distributed.agree("anything", {"a": 1})
    assert torch.equal(p.grad, torch.full((3,), 2.0)) and torch.equal(p.detach(), torch.ones(3))
    assert distributed.shard([1, 2, 3]) == [1, 2, 3]
    rows = [{"case_id": "b"}, {"case_id": "a"}]
    assert distributed.gather_rows(rows, ["a", "b"], "case_id") == rows  # one process: as they came
