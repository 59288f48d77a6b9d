"""``iac report RUN_DIR``: figures (PNG) and the numbers behind them (CSV/JSON) from a search history.

Figures: importance curves per edge and op; epoch-by-epoch similarity matrices (Hamming on top-1/2/3 codes,
cosine on the continuous importance vector); cosine similarity to the final vector; when each final op and node
choice emerges; per-edge difficulty; JSD per edge relative to the threshold in force, with the pruning events;
ops alive and epoch wall-clock; the cells' γ and contribution ``‖γ·cell‖/‖skip‖`` per level (with the retrain's,
when ``cell_contribution.json`` lies in the run folder); the final genotype as a cell graph. Needs matplotlib
(``pip install "iac_components[plot]"``).

The emergence and similarity analyses mean most on a full search (``--prune false``): in a pruned search an op
also leaves the top-k because it was deleted.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from iac_components.analysis.temporal import (
    blocked_counts,
    cosine_similarity_matrix,
    cosine_to_final,
    edge_order,
    emergence,
    hamming_similarity_matrix,
    importance_tensor,
    jsd_series,
    load_history,
    topk_codes,
)
from iac_components.genotype import NUM_INPUT_NODES, Genotype
from iac_components.utils import atomic_write, write_json_atomic

__all__ = ["write_report"]


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - matplotlib is in the test extra
        raise SystemExit('error: the report needs matplotlib: pip install "iac_components[plot]"') from e
    return plt


def _save(fig: Any, path: Path) -> str:
    def write(tmp: str) -> None:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")

    atomic_write(path, write)
    _plt().close(fig)
    return str(path)


def _write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)

    def write(tmp: str) -> None:
        Path(tmp).write_text(buf.getvalue())

    atomic_write(path, write)
    return str(path)


def write_report(run: str | os.PathLike, out: str | os.PathLike | None = None, group: int = 0) -> dict[str, Any]:
    """Write every figure and table of a search history under ``out`` (default ``<run>/report``).

    Args:
        run: a run folder holding ``search_history.json``, or the file.
        out: where the PNG/CSV/JSON files go.
        group: which architecture group (one unless the search used one genotype per level).

    Returns:
        The paths written and the numbers (also in ``report.json``).
    """
    plt = _plt()
    history = load_history(run)
    run_dir = Path(run) if Path(run).is_dir() else Path(run).parent
    out = Path(out) if out is not None else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    space = history["search_space"]
    ops, n_nodes = list(space["ops"]), int(space["n_nodes"])
    edges = edge_order(n_nodes)
    epochs = [int(e["epoch"]) for e in history["epochs"]]
    imp = importance_tensor(history, group)
    final = Genotype.from_dict(history["final_genotypes"][group])
    files: dict[str, str] = {}
    files |= _importance_figure(plt, out, epochs, edges, ops, imp)
    sims = {f"hamming_top{k}": hamming_similarity_matrix(topk_codes(imp, k)) for k in (1, 2, 3)}
    sims["cosine"] = cosine_similarity_matrix(imp)
    files |= _similarity_figure(plt, out, epochs, sims)
    to_final = cosine_to_final(imp)
    files |= _convergence_figure(plt, out, epochs, to_final)
    em = emergence(imp, epochs, final, ops, n_nodes)
    files |= _emergence_figures(plt, out, epochs, em)
    js = jsd_series(history, group)
    files |= _jsd_figure(plt, out, history, group, edges, js)
    alive = [e["ops_alive"] for e in history["epochs"]]
    wall = [e["wall_clock_s"] for e in history["epochs"]]
    files |= _cost_figure(plt, out, epochs, alive, wall)
    cells = [(int(e["epoch"]), e["cells"]) for e in history["epochs"] if e.get("cells")]
    retrain_file = run_dir / "cell_contribution.json"
    retrain = json.loads(retrain_file.read_text()) if retrain_file.is_file() else None
    files |= _cells_figure(plt, out, cells, retrain)
    files["genotype"] = _save(_cell_graph(plt, final), out / "genotype.png")

    numbers = {
        "run": str(run),
        "epochs": epochs,
        "ops": ops,
        "edges": edges,
        "final_genotype": final.to_dict(),
        "cosine_to_final": to_final.tolist(),
        "similarity": {k: v.tolist() for k, v in sims.items()},
        "emergence": em,
        "ops_alive": alive,
        "epoch_wall_clock_s": wall,
        "jsd": js,
        "rule_statuses": blocked_counts(history, group),
        "cells_search": cells[-1][1] if cells else None,
        "cells_retrain": retrain,
        "files": files,
    }
    files["report_json"] = str(write_json_atomic(out / "report.json", numbers, indent=None))
    return numbers


def _importance_figure(plt: Any, out: Path, epochs: list[int], edges: list[str], ops: list[str], imp: np.ndarray) -> dict[str, str]:
    """1. Importance curves per edge and op, and the table behind them."""
    files: dict[str, str] = {}
    cols = 4
    rows = int(np.ceil(len(edges) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), sharex=True, squeeze=False)
    colors = plt.get_cmap("tab10")
    for e, key in enumerate(edges):
        ax = axes[e // cols][e % cols]
        for o, name in enumerate(ops):
            ax.plot(epochs, imp[:, e, o], color=colors(o % 10), lw=1.2, label=name)
        ax.set_title(f"edge {key}", fontsize=9)
        ax.tick_params(labelsize=7)
        if e % cols == 0:
            ax.set_ylabel("importance", fontsize=8)
        if e // cols == rows - 1:
            ax.set_xlabel("epoch", fontsize=8)
    for e in range(len(edges), rows * cols):
        axes[e // cols][e % cols].axis("off")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower right", fontsize=8, ncol=2, bbox_to_anchor=(0.98, 0.02))
    fig.suptitle("Op importance softmax(β)·softmax(α) per edge (0 once pruned)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    files["importance_curves"] = _save(fig, out / "importance_curves.png")
    files["importance_csv"] = _write_csv(
        out / "importance.csv", ["epoch", "edge", "op", "importance"],
        [[epochs[t], edges[e], ops[o], f"{imp[t, e, o]:.6g}"] for t in range(len(epochs)) for e in range(len(edges))
         for o in range(len(ops))],
    )  # fmt: skip
    return files


def _similarity_figure(plt: Any, out: Path, epochs: list[int], sims: dict[str, np.ndarray]) -> dict[str, str]:
    """2. Epoch-by-epoch similarity matrices (Hamming on top-k codes, cosine) and their tables."""
    files: dict[str, str] = {}
    fig, axes = plt.subplots(1, 4, figsize=(17, 4.2))
    for ax, (name, m) in zip(axes, sims.items()):
        im = ax.imshow(m, origin="lower", cmap="viridis", vmin=min(0.0, float(m.min())), vmax=1.0,
                       extent=(epochs[0] - 0.5, epochs[-1] + 0.5, epochs[0] - 0.5, epochs[-1] + 0.5))
        ax.set_title(name.replace("_", " "), fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("epoch")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle("Similarity between the search states of two epochs", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    files["similarity_matrices"] = _save(fig, out / "similarity_matrices.png")
    for name, m in sims.items():
        files[f"similarity_{name}_csv"] = _write_csv(
            out / f"similarity_{name}.csv", ["epoch"] + [str(e) for e in epochs],
            [[epochs[a]] + [f"{v:.6g}" for v in m[a]] for a in range(len(epochs))],
        )  # fmt: skip
    return files


def _convergence_figure(plt: Any, out: Path, epochs: list[int], to_final: np.ndarray) -> dict[str, str]:
    """3. Cosine similarity of each epoch's importance vector to the final one."""
    files: dict[str, str] = {}
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(epochs, to_final, marker="o", ms=3)
    ax.axhline(0.95, color="grey", ls="--", lw=0.8, label="0.95")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cosine similarity to the final vector")
    ax.set_ylim(min(0.0, float(to_final.min())) - 0.02, 1.02)
    ax.legend(fontsize=8)
    ax.set_title("Convergence of the importance vector", fontsize=10)
    files["cosine_to_final"] = _save(fig, out / "cosine_to_final.png")
    return files


def _emergence_figures(plt: Any, out: Path, epochs: list[int], em: dict[str, Any]) -> dict[str, str]:
    """4-5. When each final op and node choice emerges, and the edges ordered by difficulty."""
    files: dict[str, str] = {}
    labels = [f"{k} {v['op']}" for k, v in em["edges"].items()]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [3, 1]})
    x = np.arange(len(labels))
    for n, (k, color) in enumerate([("top3", "tab:blue"), ("top2", "tab:orange"), ("top1", "tab:green")]):
        vals = [v[k] if v[k] is not None else np.nan for v in em["edges"].values()]
        axes[0].bar(x + (n - 1) * 0.27, vals, width=0.27, color=color, label=f"enters {k.replace('top', 'top-')}")
    axes[0].set_xticks(x, labels, rotation=35, ha="right", fontsize=8)
    axes[0].set_ylabel("first epoch (and stays)")
    axes[0].set_title("When each final op first ranks on its edge", fontsize=10)
    axes[0].legend(fontsize=8)
    nodes = list(em["nodes"].items())
    axes[1].bar([f"node {j}" for j, _ in nodes], [v["top2"] if v["top2"] is not None else np.nan for _, v in nodes],
                color="tab:purple")
    axes[1].set_ylabel("first epoch (and stays)")
    axes[1].yaxis.set_major_locator(plt.MaxNLocator(integer=True))
    axes[1].set_title("Final inputs are the node's top-2", fontsize=10)
    fig.tight_layout()
    files["emergence"] = _save(fig, out / "emergence.png")
    order = sorted(em["edges"].items(), key=lambda kv: (kv[1]["top1"] is None, kv[1]["top1"] or 0))
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(order) + 1.2))
    y = np.arange(len(order))
    last = epochs[-1]
    for n, (k, color) in enumerate([("top3", "tab:blue"), ("top2", "tab:orange"), ("top1", "tab:green")]):
        ax.barh(y + (n - 1) * 0.27, [v[k] if v[k] is not None else last for _, v in order], height=0.27, color=color,
                label=k.replace("top", "top-"))
    ax.set_yticks(y, [f"{e} ({v['op']})" for e, v in order], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("epoch at which the final op settles (easy edges first)")
    ax.set_title("Per-edge difficulty", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    files["edge_difficulty"] = _save(fig, out / "edge_difficulty.png")
    files["emergence_csv"] = _write_csv(
        out / "emergence.csv", ["edge", "op", "top3", "top2", "top1"],
        [[k, v["op"], v["top3"], v["top2"], v["top1"]] for k, v in em["edges"].items()],
    )  # fmt: skip
    return files


def _jsd_figure(plt: Any, out: Path, history: dict[str, Any], group: int, edges: list[str], js: dict[str, Any]) -> dict[str, str]:
    """6. JSD per edge relative to the threshold in force, with the pruning events."""
    files: dict[str, str] = {}
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for e, key in enumerate(edges):
        d, thr = js["edges"].get(key), js["threshold"].get(key)
        if d and any(v is not None for v in d):
            pts = [(s, v / t) for s, v, t in zip(js["arch_step"], d, thr) if v is not None and t and v > 0]
            if pts:
                ax.plot(*zip(*pts), lw=1, color=plt.get_cmap("tab20")(e % 20), label=key)
    ax.axhline(1.0, color="black", ls="--", lw=1, label="threshold in force")
    for ev in history["events"]:
        if ev["group"] == group:
            ax.axvline(ev["arch_step"], color="red", alpha=0.25, lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("architecture step (red: pruning events)")
    ax.set_ylabel("JSD(p(t) || p(t - window)) / threshold")
    ax.set_title(f"Stability of each edge ({history['method']})", fontsize=10)
    ax.legend(fontsize=7, ncol=3, loc="upper right")
    files["jsd"] = _save(fig, out / "jsd.png")
    files["jsd_csv"] = _write_csv(
        out / "jsd.csv", ["arch_step"] + edges,
        [[s] + ["" if js["edges"].get(k, [None] * len(js["arch_step"]))[n] is None else
                f"{js['edges'][k][n]:.6g}" for k in edges] for n, s in enumerate(js["arch_step"])],
    )  # fmt: skip
    return files


def _cost_figure(plt: Any, out: Path, epochs: list[int], alive: list[int], wall: list[float]) -> dict[str, str]:
    """7. Ops alive and the epoch's wall-clock."""
    files: dict[str, str] = {}
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.plot(epochs, alive, marker="o", ms=3, color="tab:blue")
    ax.set_xlabel("epoch")
    ax.set_ylabel("ops alive", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(epochs, wall, marker="s", ms=3, color="tab:red")
    ax2.set_ylabel("epoch wall-clock (s)", color="tab:red")
    ax.set_title("Pruning and the cost of an epoch", fontsize=10)
    files["cost"] = _save(fig, out / "cost.png")
    return files


def _cells_figure(plt: Any, out: Path, cells: list[tuple[int, dict[str, Any]]], retrain: dict[str, Any] | None) -> dict[str, str]:
    """8. The cells' γ and contribution per level over the search (and the retrain's, when known)."""
    files: dict[str, str] = {}
    if cells:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for level in range(len(cells[0][1]["ratio"])):
            color = plt.get_cmap("tab10")(level)
            axes[0].plot([t for t, _ in cells], [c["gamma_mean_abs"][level] for _, c in cells], color=color, label=f"level {level}")
            axes[1].plot([t for t, _ in cells], [c["ratio"][level] for _, c in cells], color=color, label=f"level {level}")
        axes[0].set_ylabel("mean |γ| (search)")
        axes[1].set_ylabel("‖γ·cell‖ / ‖skip‖ (search)")
        for ax in axes:
            ax.set_xlabel("epoch")
        axes[0].legend(fontsize=8)
        fig.suptitle("What the cells add to the skips", fontsize=10)
        files["cells"] = _save(fig, out / "cells.png")
    files["cells_csv"] = _write_csv(
        out / "cells.csv", ["stage", "epoch", "level", "gamma_mean_abs", "gamma_max_abs", "ratio"],
        [["search", t, lv, c["gamma_mean_abs"][lv], c["gamma_max_abs"][lv], c["ratio"][lv]]
         for t, c in cells for lv in range(len(c["ratio"]))]
        + ([["retrain", retrain["epoch"], lv, retrain["gamma_mean_abs"][lv], retrain["gamma_max_abs"][lv], retrain["ratio"][lv]]
            for lv in range(len(retrain["ratio"]))] if retrain else []),
    )  # fmt: skip
    return files


def _cell_graph(plt: Any, genotype: Genotype) -> Any:
    """Inputs on the left, intermediate nodes in a zig-zag row, the output on the right; arrows run between the
    boxes' edges and carry the op's name."""
    fig, ax = plt.subplots(figsize=(9, 4.8))
    n = genotype.n_nodes
    pos: dict[Any, tuple[float, float]] = {0: (0.02, 0.82), 1: (0.02, 0.18)}
    for k in range(n):
        pos[k + NUM_INPUT_NODES] = (0.3 + 0.55 * k / max(1, n - 1), 0.66 if k % 2 == 0 else 0.34)
    pos["out"] = (1.0, 0.5)
    names = {0: "skip f_i", 1: "coarse f_i+1", "out": "output"}
    boxes = {}
    for state, (x, y) in pos.items():
        boxes[state] = ax.text(
            x, y, names.get(state, f"node {state}"), ha="center", va="center", fontsize=10, zorder=3,
            bbox={"boxstyle": "round,pad=0.4", "fc": "lightyellow" if state in names else "lightblue"},
        )  # fmt: skip
    fig.canvas.draw()  # the boxes need their size before arrows can attach to them

    def arrow(a: Any, b: Any, **style: Any) -> None:
        ax.annotate("", xy=pos[b], xytext=pos[a], zorder=4, arrowprops={
            "arrowstyle": "-|>", "mutation_scale": 14, "patchA": boxes[a].get_bbox_patch(),
            "patchB": boxes[b].get_bbox_patch(), "shrinkA": 2, "shrinkB": 2, **style})

    for i, j, op in genotype.edges():
        arrow(i, j, color="tab:gray", lw=1.3, connectionstyle="arc3,rad=0.08")
        (x0, y0), (x1, y1) = pos[i], pos[j]
        ax.text(0.5 * x0 + 0.5 * x1, 0.5 * y0 + 0.5 * y1, op, fontsize=8, color="darkred", ha="center",
                va="center", zorder=5, bbox={"fc": "white", "ec": "none", "alpha": 0.85, "pad": 0.6})
    for k in range(n):
        arrow(k + NUM_INPUT_NODES, "out", color="silver", lw=0.8, ls="--")
    ax.set_xlim(-0.08, 1.08)
    ax.set_ylim(0.05, 0.95)
    ax.axis("off")
    ax.set_title("Derived IAC cell; output = concat(nodes) -> 1x1 conv -> norm, added as skip + γ·cell", fontsize=10)
    return fig
