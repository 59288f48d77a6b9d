"""A 2-D segmentation network applied slice by slice to 3-D volumes, as one traceable 3-D model.

The bundles' model contract for inference (``inference.json``, ``models/model.ts``, MONAI Label): a 3-D volume
``(B, C, H, W, D)`` in, 3-D logits ``(B, K, H, W, D)`` out, predicted slice-wise along the last (axial) axis by the
2-D network. The depth axis is folded into the batch, so the model is one traceable graph and MONAI Label
reports it as 3-D; a ``SlidingWindowInferer`` with ``roi_size=(H, W, n)`` bounds how many slices run at once.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

__all__ = ["SliceWise"]

_PREFIX = "network."


class SliceWise(nn.Module):
    """Run a 2-D network on every axial slice of a 3-D batch.

    Its ``state_dict`` is the 2-D network's own (no ``network.`` prefix), so a checkpoint of the 2-D network
    (``model.pt`` of the retrain) loads into it unchanged, and the other way round.

    Args:
        network: a 2-D network ``(N, C, H, W) -> (N, K, H, W)``; in eval mode a list/tuple output (deep
            supervision) gives its first element.
    """

    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network
        self.register_state_dict_post_hook(_strip_prefix)
        self.register_load_state_dict_pre_hook(_add_prefix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w, d = x.shape
        slices = x.permute(0, 4, 1, 2, 3).reshape(b * d, c, h, w)
        y = self.network(slices)
        if isinstance(y, (list, tuple)):
            y = y[0]
        return y.reshape(b, d, y.shape[1], h, w).permute(0, 2, 3, 4, 1)


def _strip_prefix(module: nn.Module, state_dict: dict[str, Any], prefix: str, local_metadata: Any) -> None:
    for key in [k for k in state_dict if k.startswith(prefix + _PREFIX)]:
        state_dict[prefix + key[len(prefix) + len(_PREFIX) :]] = state_dict.pop(key)


def _add_prefix(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(prefix + _PREFIX)]:
        state_dict[prefix + _PREFIX + key[len(prefix) :]] = state_dict.pop(key)
