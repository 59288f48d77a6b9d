"""One rank of the 2-process search tests (test_distributed.py runs it under torchrun, gloo, 127.0.0.1).

``python ddp_search_worker.py MODE OUT MAX_EPOCHS [CHECKPOINT]``; MODE ``run`` (saves a checkpoint every epoch on
rank 0) or ``resume`` (from CHECKPOINT). Each rank writes what it ended with to ``OUT/rank<r>.json``."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from monai.handlers import CheckpointLoader, CheckpointSaver

sys.path.insert(0, str(Path(__file__).parent))
from test_engine import _checkpoint_handlers, make_search  # noqa: E402

mode, out, max_epochs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
dist.init_process_group("gloo")
rank = dist.get_rank()
engine, pruning = make_search(max_epochs=max_epochs, out=out, distributed=True)
if mode == "resume":
    CheckpointLoader(sys.argv[4], _checkpoint_handlers(engine, pruning, None), map_location="cpu").attach(engine)
elif rank == 0:
    CheckpointSaver(str(out / "ckpt"), _checkpoint_handlers(engine, pruning, None), save_interval=1).attach(engine)
engine.run()
net = engine.network
weights = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in net.weight_parameters())).hexdigest()
state = {
    "epoch": engine.state.epoch,
    "arch_steps": engine.arch_steps,
    "decided_at": pruning.decided_at,
    "alpha": [a.detach().tolist() for a in net.arch_parameters()],
    "structure": net.cells.structure(),
    "genotypes": [g.to_dict() for g in net.cells.genotypes()],
    "events": pruning.events,
    "history_epochs": [{k: e[k] for k in ("epoch", "arch_steps", "ops_alive", "groups")} for e in pruning.epochs],
    "weights_sha256": weights,
    "samples_seen": len(engine.data_loader.sampler),
}
(out / f"rank{rank}.json").write_text(json.dumps(state, sort_keys=True))
dist.destroy_process_group()
