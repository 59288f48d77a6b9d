"""A straightforward IAC search supernet: the performance reference that ``bench_throughput.py`` measures against.

Written the obvious way, as a first implementation of the search space would be: every edge is a PC-DARTS
mixed op (the first C/K channels through every op, weighted-summed, concatenated with the bypass channels,
channel-shuffled); every node sums its β-weighted edges; α and β are plain parameters; one training iteration
is ``loss.backward()`` + ``step()`` for the architecture on one batch, then the same for the weights on another.
The ops themselves are the project's (``iac_components.ops``), so both implementations do the same arithmetic;
what differs is how the work is organised. Used only by ``bench_throughput.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from iac_components.ops import DEFAULT_OPS, build_op

__all__ = ["ReferenceSupernet"]


def _shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


class _MixedOp(nn.Module):
    def __init__(self, c: int, k: int, ops: Sequence[str]):
        super().__init__()
        self.k = k
        self.ops = nn.ModuleList([build_op(o, c // k, 2, affine=False) for o in ops])

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        c = x.shape[1] // self.k
        xa, xb = x[:, :c], x[:, c:]
        out = sum(wi * op(xa) for wi, op in zip(w, self.ops))
        return _shuffle(torch.cat([out, xb], dim=1), self.k)


class _Cell(nn.Module):
    def __init__(self, c_skip: int, c_coarse: int, width: int, k: int, ops: Sequence[str], n_nodes: int = 4):
        super().__init__()
        self.pre0 = nn.Sequential(nn.Conv2d(c_skip, width, 1, bias=False), nn.BatchNorm2d(width))
        self.pre1 = nn.Sequential(nn.Conv2d(c_coarse, width, 1, bias=False), nn.BatchNorm2d(width))
        self.edges = nn.ModuleList([_MixedOp(width, k, ops) for j in range(n_nodes) for _ in range(j + 2)])
        self.post = nn.Sequential(nn.Conv2d(n_nodes * width, c_skip, 1, bias=False), nn.BatchNorm2d(c_skip))
        self.gamma = nn.Parameter(torch.zeros(1))
        self.n_nodes = n_nodes

    def forward(self, skip: torch.Tensor, coarse: torch.Tensor, alphas: torch.Tensor, betas: list[torch.Tensor]):
        s1 = F.interpolate(coarse, size=skip.shape[2:], mode="bilinear", align_corners=False)
        states = [self.pre0(skip), self.pre1(s1)]
        e = 0
        for j in range(self.n_nodes):
            q = F.softmax(betas[j], dim=0)
            node = 0
            for i, h in enumerate(states):
                node = node + q[i] * self.edges[e](h, F.softmax(alphas[e], dim=0))
                e += 1
            states.append(node)
        return skip + self.gamma * self.post(torch.cat(states[2:], dim=1))


class ReferenceSupernet(nn.Module):
    """FlexibleUNet (any registered encoder) with straightforward search cells on its skips; frozen backbone.

    Args:
        network: a MONAI ``FlexibleUNet``.
        feature_channels: channels of its encoder features (f_0..f_n).
        width: cell width (``min(C, width)`` per level).
        k: PC-DARTS K.
        ops: candidate ops.
    """

    def __init__(self, network: nn.Module, feature_channels: Sequence[int], width: int = 32, k: int = 4,
                 ops: Sequence[str] = DEFAULT_OPS):
        super().__init__()
        self.net = network
        for p in self.net.parameters():
            p.requires_grad_(False)
        n = len(feature_channels) - 1
        self.cells = nn.ModuleList(
            [_Cell(feature_channels[i], feature_channels[i + 1], min(feature_channels[i], width), k, ops) for i in range(n)]
        )
        self.alphas = nn.Parameter(1e-3 * torch.randn(14, len(ops)))
        self.betas = nn.ParameterList([nn.Parameter(1e-3 * torch.randn(j + 2)) for j in range(4)])

    def train(self, mode: bool = True) -> ReferenceSupernet:
        super().train(mode)
        self.net.eval()
        return self

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alphas, *self.betas]

    def weight_parameters(self) -> list[nn.Parameter]:
        return list(self.cells.parameters())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.net.encoder(x)
        n = len(self.cells)
        skips = [self.cells[i](feats[i], feats[i + 1], self.alphas, list(self.betas)) for i in range(n)]
        out = self.net.decoder(skips + list(feats[n:]), self.net.skip_connect)
        return self.net.segmentation_head(out)
