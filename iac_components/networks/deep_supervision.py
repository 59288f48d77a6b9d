"""One convention for deeply supervised networks, and the loss that reads it.

MONAI's ``DynUNet`` returns, in training mode with deep supervision, one tensor ``(B, N, C, *spatial)``: the main
output first, then the upsampled auxiliary outputs; in eval mode the main output ``(B, C, *spatial)``. This
package keeps that convention for every deeply supervised backbone (a single tensor decollates, traces and pads
like any other output):

* :class:`DeepSupervisionStack` makes a network that returns a *list* of full-resolution outputs (MONAI's
  ``BasicUNetPlusPlus``: ``[x_0_1, x_0_2, x_0_3, x_0_4]``, the last the main one) follow it;
* :class:`StackedDeepSupervisionLoss` is MONAI's ``DeepSupervisionLoss`` that also accepts the stacked tensor
  (it unbinds axis 1 into the list ``DeepSupervisionLoss`` weighs: 1, 0.5, 0.25, ... with ``weight_mode="exp"``),
  and any plain output, so one loss serves every backbone, and frozen (eval-mode) backbones during the search.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from monai.losses import DeepSupervisionLoss

__all__ = ["DeepSupervisionStack", "StackedDeepSupervisionLoss"]


class DeepSupervisionStack(nn.Module):
    """Wrap a network that returns a list of same-size outputs: eval mode -> the main output; training mode ->
    ``torch.stack([main, *others], dim=1)`` (or the main output alone when ``deep_supervision`` is off).

    Args:
        network: the wrapped network (``state_dict`` keys get the prefix ``network.``).
        main_index: position of the main output in the list (``-1`` for ``BasicUNetPlusPlus``).
        deep_supervision: stack the auxiliary outputs in training mode.
    """

    def __init__(self, network: nn.Module, main_index: int = -1, deep_supervision: bool = True):
        super().__init__()
        self.network = network
        self.main_index = main_index
        self.deep_supervision = deep_supervision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = self.network(x)
        if isinstance(outputs, torch.Tensor):
            return outputs
        outputs = list(outputs)
        main = outputs.pop(self.main_index)
        if not (self.training and self.deep_supervision) or not outputs:
            return main
        others = outputs[::-1] if self.main_index == -1 else outputs  # the deeper the path, the earlier
        return torch.stack([main, *others], dim=1)


class StackedDeepSupervisionLoss(DeepSupervisionLoss):
    """MONAI ``DeepSupervisionLoss`` that also accepts a deep-supervision stack ``(B, N, C, *spatial)``.

    An input with one axis more than the target is unbound along axis 1 into ``N`` outputs (main first), which
    ``DeepSupervisionLoss`` weighs (``weight_mode="exp"``: 1, 0.5, 0.25, ...) and sums; a list is used as is; a
    plain output goes to the wrapped loss.

    Args:
        loss: the loss of each output, e.g. ``DiceCELoss(to_onehot_y=True, softmax=True)``.
        weight_mode, weights: as ``DeepSupervisionLoss``.
    """

    def forward(self, input: Any, target: torch.Tensor) -> torch.Tensor:  # noqa: A002 - MONAI's signature
        if isinstance(input, torch.Tensor) and input.ndim == target.ndim + 1:
            input = list(torch.unbind(input, dim=1))
        return super().forward(input, target)
