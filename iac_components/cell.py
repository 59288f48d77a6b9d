"""Implantable Adaptive Cells: the searched supernet cell, the fixed (derived) cell, and per-network cell sets.

An IAC cell sits on one skip connection of a U-Net (Benedykciuk et al., "Efficient Search of Implantable
Adaptive Cells for Medical Image Segmentation", 2026; cells after DARTS, Liu et al. 2019, with the partial
channels and edge normalisation of PC-DARTS, Xu et al. 2020). It reads two encoder features, the skip feature
``s`` of its level and the next coarser feature ``c``, and returns ``s + γ·cell(s, c)`` with a learnable ``γ``
that starts at 0, so implanting cells into a trained U-Net changes nothing until the cells have learnt.

Inside, both inputs are projected (1x1 conv + norm) to ``cell_channels``; the coarse one is resized to the skip's
grid. Intermediate node ``j`` sums its incoming edges; the output concatenates the intermediate nodes and
projects back to the skip's channels.

* :class:`SearchCell`: every edge is a :class:`MixedEdge` weighted by ``softmax(α_e)`` over its live ops, and
  node ``j`` weights its edges by ``softmax(β_j)``. α and β live in a :class:`CellArchitecture`, apart from the
  weights, and may be shared by the cells of all levels.
* :class:`FixedCell`: exactly the ops of a :class:`~iac_components.genotype.Genotype`, at full width.
* :class:`SearchCells` / :class:`FixedCells`: one cell per skip of a network, the object handed to
  :func:`iac_components.implant.implant`.

Pruning deletes ops and edges (modules, weights and their α/β), never masks them: what is pruned costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_norm_layer

from iac_components.genotype import NUM_INPUT_NODES, Genotype, derive_genotype, edge_importance, edge_key
from iac_components.ops import DEFAULT_OPS, build_op, channels_first_norms, check_op_names, relu_first_forward

__all__ = [
    "CellArchitecture",
    "FixedCell",
    "FixedCells",
    "IACCells",
    "MixedEdge",
    "ParamRemap",
    "SearchCell",
    "SearchCells",
    "channel_shuffle",
]

ParamRemap = dict[nn.Parameter, tuple[nn.Parameter, torch.Tensor]]
"""Old parameter -> (the parameter replacing it, indices of the old entries it keeps); for optimiser surgery."""

# ops without weights give the same result on every edge leaving a node: computed once per node
# (a pool's BN in the supernet is affine-free and sees the same input on every edge: the same output too)
_PARAMETER_FREE = frozenset({"none", "skip_connect", "avg_pool_3x3", "max_pool_3x3"})
_POOLS = frozenset({"avg_pool_3x3", "max_pool_3x3"})


def _pname(i: int, j: int) -> str:
    # module and parameter names may not contain '.', and '->' reads badly in state dicts
    return f"e{i}_{j}"


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave ``groups`` channel groups (ShuffleNet), so that every channel reaches the ops over time."""
    b, c = x.shape[:2]
    return x.view(b, groups, c // groups, *x.shape[2:]).transpose(1, 2).reshape(x.shape)


class _Projection(nn.Module):
    """1x1 conv to the cell width (at the input's own resolution, so a coarse input is cheap) -> resize -> norm."""

    def __init__(self, in_channels: int, out_channels: int, spatial_dims: int, norm: str | tuple):
        super().__init__()
        self.conv = Conv[Conv.CONV, spatial_dims](in_channels, out_channels, 1, bias=False)
        self.norm = get_norm_layer(norm, spatial_dims=spatial_dims, channels=out_channels)

    def forward(self, x: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        x = self.conv(x)
        if size is not None and tuple(x.shape[2:]) != tuple(size):
            x = F.interpolate(x, size=tuple(size), mode="bilinear" if x.ndim == 4 else "trilinear", align_corners=False)
        return self.norm(x)


class MixedEdge(nn.Module):
    """One edge of the supernet: ``Σ_o w_o · o(x)`` over its live ops.

    The edge sees only the op part of the PC-DARTS partial channels (``channels / partial_k`` channels); the
    bypassing channels and the channel shuffle are applied once per node by :class:`SearchCell` (the shuffle
    is a fixed permutation, so shuffling the node's sum equals PC-DARTS's sum of shuffled edges). ``partial_k =
    1`` is plain DARTS.

    Args:
        channels: cell width.
        ops: names of the candidate ops (registry names).
        partial_k: the PC-DARTS K.
        spatial_dims: 2 or 3.
    """

    def __init__(self, channels: int, ops: Sequence[str], partial_k: int = 4, spatial_dims: int = 2):
        super().__init__()
        if channels % partial_k:
            raise ValueError(f"cell width {channels} is not divisible by partial_k={partial_k}")
        self.partial_k = partial_k
        self.op_channels = channels // partial_k
        self.ops = nn.ModuleDict({name: self._search_op(name, spatial_dims) for name in ops})

    def _search_op(self, name: str, spatial_dims: int) -> nn.Module:
        op = build_op(name, self.op_channels, spatial_dims, affine=False)
        if name in _POOLS:
            # DARTS / PC-DARTS: a pool's output is normalised (BN without affine) so that it sits on the scale of
            # the conv ops' normalised outputs, which α weighs it against; the fixed cell has no such norm
            op = nn.Sequential(op, get_norm_layer(("batch", {"affine": False}), spatial_dims=spatial_dims,
                                                  channels=self.op_channels))
        return channels_first_norms(op)

    @property
    def op_names(self) -> list[str]:
        return list(self.ops.keys())

    def forward(self, x: torch.Tensor, weights: torch.Tensor, shared: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Mix the ops on ``x`` (the op channels only).

        Args:
            x: ``(N, channels / partial_k, ...)``.
            weights: one weight per live op, in :attr:`op_names` order.
            shared: results of parameter-free ops (pools, identity) and of the ReLU that the conv ops start with,
                on this same ``x``, filled and reused by every edge that leaves the same node, so each is computed
                once per node rather than per op and edge.
        """
        out = None
        for w, (name, op) in zip(weights, self.ops.items()):
            if shared is None:
                y = op(x)
            elif name in _PARAMETER_FREE:
                y = shared.get(name)
                if y is None:
                    y = shared[name] = op(x)
            else:
                y = relu_first_forward(op, x, shared)
            y = w * y
            out = y if out is None else out + y
        return out

    def prune(self, keep: Sequence[str]) -> None:
        """Delete every op not in ``keep`` (modules and weights go; nothing is masked)."""
        for name in self.op_names:
            if name not in keep:
                del self.ops[name]


class CellArchitecture(nn.Module):
    """α (per edge, over its live ops) and β (per node, over its live inputs) of one genotype, and the live
    structure they describe.

    Args:
        n_nodes: intermediate nodes (4 gives 2+3+4+5 = 14 edges).
        ops: candidate op names.
        init_scale: α and β start as ``init_scale · N(0, 1)`` (DARTS).
    """

    def __init__(self, n_nodes: int = 4, ops: Sequence[str] = DEFAULT_OPS, init_scale: float = 1e-3):
        super().__init__()
        self.n_nodes = n_nodes
        self.op_space = check_op_names(ops)
        self.node_inputs: dict[int, list[int]] = {
            j: list(range(j)) for j in range(NUM_INPUT_NODES, NUM_INPUT_NODES + n_nodes)
        }
        self.edge_ops: dict[str, list[str]] = {
            edge_key(i, j): list(self.op_space) for j, inputs in self.node_inputs.items() for i in inputs
        }
        self.alphas = nn.ParameterDict(
            {
                _pname(i, j): nn.Parameter(init_scale * torch.randn(len(self.op_space)))
                for j, inputs in self.node_inputs.items()
                for i in inputs
            }
        )
        self.betas = nn.ParameterDict(
            {f"n{j}": nn.Parameter(init_scale * torch.randn(len(inputs))) for j, inputs in self.node_inputs.items()}
        )

    # views -------------------------------------------------------------------------------------------------
    def alpha(self, i: int, j: int) -> nn.Parameter:
        return self.alphas[_pname(i, j)]

    def beta(self, j: int) -> nn.Parameter:
        return self.betas[f"n{j}"]

    def alpha_dict(self) -> dict[str, torch.Tensor]:
        """Edge key -> α logits (detached) over the edge's live ops."""
        return {edge_key(i, j): self.alpha(i, j).detach() for j, ins in self.node_inputs.items() for i in ins}

    def beta_dict(self) -> dict[int, torch.Tensor]:
        return {j: self.beta(j).detach() for j in self.node_inputs}

    def edge_probs(self) -> dict[str, torch.Tensor]:
        """p_e = softmax(α_e) over the live ops of each live edge."""
        return {k: torch.softmax(a.float(), 0) for k, a in self.alpha_dict().items()}

    def node_probs(self) -> dict[int, torch.Tensor]:
        """q_j = softmax(β_j) over the live inputs of each node."""
        return {j: torch.softmax(b.float(), 0) for j, b in self.beta_dict().items()}

    def importance(self) -> dict[str, torch.Tensor]:
        return edge_importance(self.alpha_dict(), self.beta_dict(), self.node_inputs)

    def derive(self) -> Genotype:
        return derive_genotype(self.alpha_dict(), self.beta_dict(), self.node_inputs, self.edge_ops)

    def is_decided(self) -> bool:
        """Every node has two inputs and every live edge one op: the cell is a genotype."""
        return all(len(v) == 2 for v in self.node_inputs.values()) and all(len(v) == 1 for v in self.edge_ops.values())

    def ops_alive(self) -> int:
        return sum(len(v) for v in self.edge_ops.values())

    def ops_in_space(self) -> int:
        """Ops of the unpruned search space (every edge, every candidate op), whatever has been pruned since."""
        return sum(j for j in range(NUM_INPUT_NODES, NUM_INPUT_NODES + self.n_nodes)) * len(self.op_space)

    # structure changes -------------------------------------------------------------------------------------
    def prune_edge(self, i: int, j: int, keep: Sequence[str]) -> ParamRemap:
        """Keep only ``keep`` (in the current order) on edge ``i -> j``; returns the α remap."""
        key, name = edge_key(i, j), _pname(i, j)
        current = self.edge_ops[key]
        bad = [o for o in keep if o not in current]
        if bad or not keep:
            raise ValueError(f"edge {key}: cannot keep {list(keep)}; its live ops are {current}")
        idx = torch.tensor([k for k, o in enumerate(current) if o in keep], dtype=torch.long)
        old = self.alphas[name]
        new = nn.Parameter(old.detach()[idx].clone())
        self.alphas[name] = new
        self.edge_ops[key] = [current[k] for k in idx.tolist()]
        return {old: (new, idx)}

    def prune_node(self, j: int, keep: Sequence[int]) -> ParamRemap:
        """Keep only the inputs ``keep`` of node ``j``; the other edges (and their α) are deleted."""
        current = self.node_inputs[j]
        if any(i not in current for i in keep) or not keep:
            raise ValueError(f"node {j}: cannot keep inputs {list(keep)}; its live inputs are {current}")
        idx = torch.tensor([k for k, i in enumerate(current) if i in keep], dtype=torch.long)
        old = self.betas[f"n{j}"]
        new = nn.Parameter(old.detach()[idx].clone())
        self.betas[f"n{j}"] = new
        for i in current:
            if i not in keep:
                del self.alphas[_pname(i, j)]
                del self.edge_ops[edge_key(i, j)]
        self.node_inputs[j] = [current[k] for k in idx.tolist()]
        return {old: (new, idx)}

    def structure(self) -> dict[str, Any]:
        """The live structure as plain JSON-able data (for checkpoints and the history)."""
        return {
            "edge_ops": {k: list(v) for k, v in self.edge_ops.items()},
            "node_inputs": {str(j): list(v) for j, v in self.node_inputs.items()},
        }

    def check_structure(self, structure: Mapping[str, Any]) -> None:
        """Raise a one-line ValueError unless ``structure`` can be reached from this (unpruned) search space."""
        node_inputs = {int(j): v for j, v in structure.get("node_inputs", {}).items()}
        if set(node_inputs) != set(self.node_inputs):
            raise ValueError(
                f"checkpoint cell has nodes {sorted(node_inputs)} but this search space has {sorted(self.node_inputs)}"
            )
        for key, ops in structure.get("edge_ops", {}).items():
            if key not in self.edge_ops or any(o not in self.edge_ops[key] for o in ops):
                raise ValueError(
                    f"checkpoint edge {key} with ops {ops} does not exist in this search space (ops {list(self.op_space)})"
                )


class _CellBase(nn.Module):
    """Projections, output projection and γ, shared by the search and the fixed cell."""

    def __init__(
        self,
        skip_channels: int,
        coarse_channels: int,
        cell_channels: int,
        n_nodes: int,
        spatial_dims: int,
        norm: str | tuple,
        channels_last: bool | None = None,
    ):
        super().__init__()
        self.n_nodes = n_nodes
        self.cell_channels = cell_channels
        self.channels_last = channels_last
        self.preprocess_skip = _Projection(skip_channels, cell_channels, spatial_dims, norm)
        self.preprocess_coarse = _Projection(coarse_channels, cell_channels, spatial_dims, norm)
        self.postprocess = nn.Sequential(
            Conv[Conv.CONV, spatial_dims](n_nodes * cell_channels, skip_channels, 1, bias=False),
            get_norm_layer(norm, spatial_dims=spatial_dims, channels=skip_channels),
        )
        # γ per output channel, from 0: the implanted network starts as the trained U-Net, and each channel of the
        # skip can take as much of the cell as helps it (one scalar γ made the cells' signal a single number that
        # a short fine-tune barely moved)
        self.gamma = nn.Parameter(torch.zeros(skip_channels))

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        """The memory layout the ops run in: channels-last for 2-D maps when asked, or by default on the CPU,
        where it makes the depthwise convolutions and pools of the search space several times faster.

        Never under bf16 autocast on the CPU: there torch's weight gradient of a *dilated* depthwise convolution
        in channels-last is non-finite in a sizeable share of cases (``benchmarks/check_bf16_depthwise_grad.py``,
        results in ``benchmarks/results/bf16_depthwise_grad.md``), which turned a bf16 search NaN within its first
        steps; the contiguous kernels are finite."""
        use = self.channels_last if self.channels_last is not None else x.device.type == "cpu"
        if use and x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            use = False
        return x.contiguous(memory_format=torch.channels_last) if use and x.ndim == 4 else x

    def _inputs(self, skip: torch.Tensor, coarse: torch.Tensor) -> list[torch.Tensor]:
        return [self.preprocess_skip(skip), self.preprocess_coarse(coarse, skip.shape[2:])]

    def _output(self, skip: torch.Tensor, states: list[torch.Tensor]) -> torch.Tensor:
        cell = self.postprocess(torch.cat(states[NUM_INPUT_NODES:], dim=1))
        gamma = self.gamma.to(cell.dtype).view(1, -1, *([1] * (cell.ndim - 2)))
        return skip + gamma * cell


class SearchCell(_CellBase):
    """The supernet cell of one skip connection (weights only; α/β come from a :class:`CellArchitecture`).

    Args:
        skip_channels: channels of the skip feature (state 0) and of the output.
        coarse_channels: channels of the next coarser encoder feature (state 1).
        cell_channels: inner width of the cell.
        n_nodes: intermediate nodes.
        ops: candidate ops on every edge.
        partial_k: PC-DARTS K (1 = all channels through the ops).
        spatial_dims: 2 or 3.
        norm: MONAI norm spec for the projections.
        channels_last: run the ops on channels-last tensors (2-D); None: on CPU tensors only.
    """

    def __init__(
        self,
        skip_channels: int,
        coarse_channels: int,
        cell_channels: int = 32,
        n_nodes: int = 4,
        ops: Sequence[str] = DEFAULT_OPS,
        partial_k: int = 4,
        spatial_dims: int = 2,
        norm: str | tuple = "batch",
        channels_last: bool | None = None,
    ):
        super().__init__(skip_channels, coarse_channels, cell_channels, n_nodes, spatial_dims, norm, channels_last)
        self.partial_k = partial_k
        self.edges = nn.ModuleDict(
            {
                _pname(i, j): MixedEdge(cell_channels, ops, partial_k, spatial_dims)
                for j in range(NUM_INPUT_NODES, NUM_INPUT_NODES + n_nodes)
                for i in range(j)
            }
        )

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor, arch: CellArchitecture) -> torch.Tensor:
        k = self.partial_k
        c_op = self.cell_channels // k
        states = self._inputs(skip, coarse)
        # per state: its op channels (laid out once for the convolutions), its bypass channels, and the shared
        # results of parameter-free ops; every edge leaving the state reuses them
        prepared = [self._prepare(s, c_op) for s in states]
        for j, inputs in arch.node_inputs.items():
            q = torch.softmax(arch.beta(j), dim=0)
            op_sum, bypass = None, None
            for n, i in enumerate(inputs):
                xa, xb, shared = prepared[i]
                y = q[n] * self.edges[_pname(i, j)](xa, torch.softmax(arch.alpha(i, j), dim=0), shared)
                op_sum = y if op_sum is None else op_sum + y
                if k > 1:
                    b = q[n] * xb
                    bypass = b if bypass is None else bypass + b
            node = op_sum if k == 1 else channel_shuffle(torch.cat([op_sum, bypass], dim=1), k)
            states.append(node)
            prepared.append(self._prepare(node, c_op))
        return self._output(skip, states)

    def _prepare(self, state: torch.Tensor, c_op: int) -> tuple[torch.Tensor, torch.Tensor | None, dict]:
        xa = self._layout(state[:, :c_op] if self.partial_k > 1 else state)
        return xa, (state[:, c_op:] if self.partial_k > 1 else None), {}

    def apply_structure(self, structure: Mapping[str, Any]) -> None:
        """Delete every edge and op that ``structure`` (from :meth:`CellArchitecture.structure`) does not hold."""
        live = structure["edge_ops"]
        for name in list(self.edges.keys()):
            i, j = (int(s) for s in name[1:].split("_"))
            key = edge_key(i, j)
            if key not in live:
                del self.edges[name]
            else:
                self.edges[name].prune(live[key])


class FixedCell(_CellBase):
    """The cell of a genotype: each node sums its two ops (at full width, fresh weights).

    Args:
        skip_channels: channels of the skip feature and of the output.
        coarse_channels: channels of the next coarser encoder feature.
        genotype: the cell to build.
        cell_channels: inner width.
        spatial_dims: 2 or 3.
        norm: MONAI norm spec for the projections.
        channels_last: run the ops on channels-last tensors (2-D); None: on CPU tensors only.
    """

    def __init__(
        self,
        skip_channels: int,
        coarse_channels: int,
        genotype: Genotype,
        cell_channels: int = 32,
        spatial_dims: int = 2,
        norm: str | tuple = "batch",
        channels_last: bool | None = None,
    ):
        genotype.validate()
        super().__init__(
            skip_channels, coarse_channels, cell_channels, genotype.n_nodes, spatial_dims, norm, channels_last
        )
        self.genotype = genotype
        self.edges = nn.ModuleDict(
            {_pname(i, j): build_op(op, cell_channels, spatial_dims, affine=True) for i, j, op in genotype.edges()}
        )
        self._node_inputs = [
            (j + NUM_INPUT_NODES, [i for i, _ in node]) for j, node in enumerate(genotype.nodes)
        ]

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        states = [self._layout(s) for s in self._inputs(skip, coarse)]
        relu_caches: list[dict] = [{} for _ in range(len(states) + len(self._node_inputs))]  # one ReLU per node
        for j, inputs in self._node_inputs:
            a, b = inputs
            states.append(
                relu_first_forward(self.edges[_pname(a, j)], states[a], relu_caches[a])
                + relu_first_forward(self.edges[_pname(b, j)], states[b], relu_caches[b])
            )
        return self._output(skip, states)


def _level_widths(feature_channels: Sequence[int], cell_channels: int, partial_k: int = 1) -> list[int]:
    widths = [min(int(c), cell_channels) for c in feature_channels[:-1]]
    for level, w in enumerate(widths):
        if w % partial_k:
            raise ValueError(
                f"cell width {w} at skip {level} is not divisible by partial_k={partial_k}; "
                "choose cell_channels/partial_k so that min(skip channels, cell_channels) divides by K"
            )
    return widths


class IACCells(nn.Module):
    """One cell per skip connection: ``forward(features)`` maps the encoder features ``f_0..f_n`` to the new
    skips ``f'_0..f'_{n-1}`` (cell ``i`` reads ``f_i`` and ``f_{i+1}``)."""

    cells: nn.ModuleList

    @property
    def num_levels(self) -> int:
        return len(self.cells)


class SearchCells(IACCells):
    """The supernet cells of a network and their architecture parameters.

    Args:
        feature_channels: channels of the encoder features ``f_0..f_n`` (``n`` skips); from the backbone adapter.
        ops: candidate ops (registry names).
        n_nodes: intermediate nodes per cell.
        cell_channels: inner width; each level uses ``min(its skip channels, cell_channels)``.
        partial_k: PC-DARTS K.
        share_genotype: one α/β for all levels (DARTS-style, the default) or one per level.
        spatial_dims: 2 or 3.
        norm: MONAI norm spec of the projections.
        channels_last: run the ops on channels-last tensors (2-D); None: on CPU tensors only.
    """

    def __init__(
        self,
        feature_channels: Sequence[int],
        ops: Sequence[str] = DEFAULT_OPS,
        n_nodes: int = 4,
        cell_channels: int = 32,
        partial_k: int = 4,
        share_genotype: bool = True,
        spatial_dims: int = 2,
        norm: str | tuple = "batch",
        channels_last: bool | None = None,
    ):
        super().__init__()
        ops = check_op_names(ops)
        widths = _level_widths(feature_channels, cell_channels, partial_k)
        self.config = {
            "ops": list(ops),
            "n_nodes": n_nodes,
            "cell_channels": cell_channels,
            "partial_k": partial_k,
            "share_genotype": share_genotype,
            "spatial_dims": spatial_dims,
            "feature_channels": [int(c) for c in feature_channels],
        }
        self.share_genotype = share_genotype
        self.archs = nn.ModuleList([CellArchitecture(n_nodes, ops) for _ in range(1 if share_genotype else len(widths))])
        self.cells = nn.ModuleList(
            [
                SearchCell(
                    feature_channels[i], feature_channels[i + 1], w, n_nodes, ops, partial_k, spatial_dims, norm,
                    channels_last,
                )
                for i, w in enumerate(widths)
            ]
        )

    def arch_of(self, level: int) -> CellArchitecture:
        return self.archs[0 if self.share_genotype else level]

    def levels_of(self, group: int) -> list[int]:
        """The levels whose cells use the architecture ``group``."""
        return list(range(self.num_levels)) if self.share_genotype else [group]

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [cell(features[i], features[i + 1], self.arch_of(i)) for i, cell in enumerate(self.cells)]

    def arch_parameters(self) -> Iterator[nn.Parameter]:
        """α and β (all groups), in a canonical order."""
        return self.archs.parameters()

    def weight_parameters(self) -> Iterator[nn.Parameter]:
        """Everything that is not α/β: op weights, projections, norms, γ."""
        return self.cells.parameters()

    def genotypes(self) -> list[Genotype]:
        """The derived genotype of each architecture group (one when shared)."""
        return [a.derive() for a in self.archs]

    def is_decided(self) -> bool:
        return all(a.is_decided() for a in self.archs)

    def prune_edge(self, group: int, i: int, j: int, keep: Sequence[str]) -> ParamRemap:
        """Keep only the ops ``keep`` on edge ``i -> j`` of architecture ``group`` and in all its cells."""
        remap = self.archs[group].prune_edge(i, j, keep)
        for level in self.levels_of(group):
            self.cells[level].edges[_pname(i, j)].prune(keep)
        return remap

    def prune_node(self, group: int, j: int, keep: Sequence[int]) -> ParamRemap:
        """Keep only the inputs ``keep`` of node ``j`` of architecture ``group``; the other edges are deleted."""
        dropped = [i for i in self.archs[group].node_inputs[j] if i not in keep]
        remap = self.archs[group].prune_node(j, keep)
        for level in self.levels_of(group):
            for i in dropped:
                del self.cells[level].edges[_pname(i, j)]
        return remap

    def structure(self) -> list[dict[str, Any]]:
        return [a.structure() for a in self.archs]

    def apply_structure(self, structure: Sequence[Mapping[str, Any]]) -> ParamRemap:
        """Prune this (fresh) supernet to ``structure``, e.g. before loading a checkpoint of a pruned search.

        Raises:
            ValueError: one line, when the structure comes from another search space.
        """
        if len(structure) != len(self.archs):
            raise ValueError(
                f"checkpoint holds {len(structure)} cell architectures but this search space has {len(self.archs)} "
                f"(share_genotype={self.share_genotype})"
            )
        remap: ParamRemap = {}
        for g, (arch, s) in enumerate(zip(self.archs, structure)):
            arch.check_structure(s)
            for j_str, inputs in s["node_inputs"].items():
                if list(inputs) != arch.node_inputs[int(j_str)]:
                    remap.update(self.prune_node(g, int(j_str), inputs))
            for key, ops in s["edge_ops"].items():
                i, j = (int(x) for x in key.split("->"))
                if list(ops) != arch.edge_ops[key]:
                    remap.update(self.prune_edge(g, i, j, ops))
        return remap


class FixedCells(IACCells):
    """The cells of a derived architecture, one per skip.

    Args:
        feature_channels: channels of the encoder features ``f_0..f_n``.
        genotypes: one genotype (shared by all levels) or one per level.
        cell_channels: inner width; each level uses ``min(its skip channels, cell_channels)``.
        spatial_dims: 2 or 3.
        norm: MONAI norm spec of the projections.
        channels_last: run the ops on channels-last tensors (2-D); None: on CPU tensors only.
    """

    def __init__(
        self,
        feature_channels: Sequence[int],
        genotypes: Genotype | Sequence[Genotype],
        cell_channels: int = 32,
        spatial_dims: int = 2,
        norm: str | tuple = "batch",
        channels_last: bool | None = None,
    ):
        super().__init__()
        widths = _level_widths(feature_channels, cell_channels)
        if isinstance(genotypes, Genotype):
            genotypes = [genotypes] * len(widths)
        genotypes = list(genotypes)
        if len(genotypes) == 1:
            genotypes = genotypes * len(widths)
        if len(genotypes) != len(widths):
            raise ValueError(f"{len(genotypes)} genotypes for a network with {len(widths)} skips")
        shared = all(g == genotypes[0] for g in genotypes)
        #: what rebuilds these cells (saved with a retrained model: ModelRecord in iac_components.bundles.runtime)
        self.config = {
            "cell_channels": int(cell_channels), "spatial_dims": int(spatial_dims), "num_levels": len(widths),
            "share_genotype": shared, "genotypes": [g.to_dict() for g in (genotypes[:1] if shared else genotypes)],
        }  # fmt: skip
        self.cells = nn.ModuleList(
            [
                FixedCell(feature_channels[i], feature_channels[i + 1], g, w, spatial_dims, norm, channels_last)
                for i, (g, w) in enumerate(zip(genotypes, widths))
            ]
        )

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [cell(features[i], features[i + 1]) for i, cell in enumerate(self.cells)]

    def inherit_weights(self, search_cells: SearchCells) -> None:
        """Copy the searched weights of the kept ops, projections and γ (only possible with ``partial_k = 1``,
        where the searched ops have the fixed ops' width).

        Raises:
            ValueError: when the search used ``partial_k > 1`` or the cells do not match.
        """
        if search_cells.config["partial_k"] != 1:
            raise ValueError(
                f"fixed cells can inherit searched weights only when partial_k = 1 (the search used "
                f"partial_k = {search_cells.config['partial_k']}: its ops are narrower)"
            )
        if search_cells.num_levels != self.num_levels:
            raise ValueError(f"{search_cells.num_levels} searched cells for {self.num_levels} fixed cells")
        for fixed, searched in zip(self.cells, search_cells.cells):
            state = {k: v for k, v in searched.state_dict().items() if not k.startswith("edges.")}
            for i, j, op in fixed.genotype.edges():
                name = _pname(i, j)
                if name not in searched.edges or op not in searched.edges[name].ops:
                    raise ValueError(f"searched cell has no op {op!r} on edge {edge_key(i, j)}")
                for k, v in searched.edges[name].ops[op].state_dict().items():
                    state[f"edges.{name}.{k}"] = v
            # the searched norms are affine-free (DARTS); the fixed ones start from weight 1, bias 0: the same map
            fixed.load_state_dict(state, strict=False)
