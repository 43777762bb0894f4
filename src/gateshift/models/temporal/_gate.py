"""The spatio-temporal gate shared by GSM and GSF (arXiv 1912.00381, Sec. 3; arXiv 2203.08897).

Published definition, on a clip laid out as ``(N, C, T, H, W)``::

    G = tanh(conv3d(relu(bn3d(X))))      conv3d: C -> 2, kernel 3x3x3, padding 1, groups 2

We compute exactly that without ever forming the 5-D tensor:

* ``bn3d`` normalises each channel over (N, T, H, W), which is what ``BatchNorm2d`` does over the
  frame batch ``(N*T, C, H, W)``; same statistics, same state-dict keys.
* A 3x3x3 kernel is three 3x3 kernels, one per temporal tap. Tap ``k`` at output frame ``t``
  reads input frame ``t + k - 1`` (zero outside the clip). So one grouped ``conv2d`` with
  ``2 groups x 3 taps = 6`` output maps gives every tap's response on every frame, and the gate is
  the sum of three of those maps taken from the previous, the same and the next frame.

Why: PyTorch's grouped ``Conv3d`` with two output channels is a slow path on CPU (its backward
especially), and the permute to ``(N, C, T, H, W)`` and back costs two copies per module. The 2-D
form stays in the backbone's memory format (channels_last included) and uses the fast 2-D
kernels. :class:`GateConv` stores the weight as those 6 taps and shows it in state dicts as the
published ``conv3D.weight (2, C/2, 3, 3, 3)``, so the authors' checkpoints load unchanged.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gateshift.models.temporal._time import split_time


class GateConv(nn.Module):
    """The gate's grouped 3x3x3 convolution (C -> 2 planes, groups 2), stored as 2-D taps.

    ``weight`` is ``(6, C/2, 3, 3)``: row ``3*g + k`` is group ``g``'s kernel for temporal tap
    ``k``. A 4-D parameter keeps ``model.to(memory_format=torch.channels_last)`` working (it
    refuses 5-D tensors). State dicts show the published Conv3d layout ``weight (2, C/2, 3, 3, 3)``
    and ``bias (2)``, and loading accepts it, so the authors' checkpoints map one to one.
    """

    def __init__(self, channels: int, *, zero_init: bool) -> None:
        super().__init__()
        half = channels // 2
        self.weight = nn.Parameter(torch.empty(6, half, 3, 3))
        self.bias = nn.Parameter(torch.empty(2))
        if zero_init:  # GSM: the module starts as a fixed channel permutation
            nn.init.zeros_(self.weight)
            nn.init.zeros_(self.bias)
        else:  # GSF: PyTorch's Conv3d default, uniform(+-1/sqrt(fan_in)), fan_in = C/2 * 27
            bound = 1.0 / math.sqrt(half * 27)
            nn.init.uniform_(self.weight, -bound, bound)
            nn.init.uniform_(self.bias, -bound, bound)
        self.register_state_dict_post_hook(_taps_to_conv3d)
        self.register_load_state_dict_pre_hook(_conv3d_to_taps)

    def extra_repr(self) -> str:
        return f"{2 * self.weight.shape[1]} -> 2, kernel 3x3x3, groups 2 (as 6 2-D taps)"


def taps_from_conv3d(weight: Tensor) -> Tensor:
    """Published ``(2, C/2, kT, kH, kW)`` -> ``(2 groups * 3 taps, C/2, kH, kW)``."""
    return weight.transpose(1, 2).reshape(6, weight.shape[1], 3, 3)


def conv3d_from_taps(taps: Tensor) -> Tensor:
    """``(6, C/2, 3, 3)`` -> published ``(2, C/2, 3, 3, 3)``."""
    return taps.view(2, 3, taps.shape[1], 3, 3).transpose(1, 2).contiguous()


def _taps_to_conv3d(module: nn.Module, state: dict[str, Any], prefix: str, meta: Any) -> None:
    key = prefix + "weight"
    if key in state:
        state[key] = conv3d_from_taps(state[key].detach())


def _conv3d_to_taps(
    module: nn.Module, state: dict[str, Any], prefix: str, *args: Any, **kwargs: Any
) -> None:
    key = prefix + "weight"
    if key in state and state[key].dim() == 5:
        state[key] = taps_from_conv3d(state[key])


def make_gate_layers(channels: int, *, zero_init: bool) -> tuple[nn.BatchNorm2d, GateConv]:
    """The gate's BN (on all ``channels``) and its grouped 3x3x3 convolution to 2 gate planes."""
    return nn.BatchNorm2d(channels), GateConv(channels, zero_init=zero_init)


def spatiotemporal_gate(x: Tensor, bn: nn.Module, conv: GateConv, num_segments: int) -> Tensor:
    """Gate planes ``(N, T, 2, H, W)`` in [-1, 1] for frames ``x`` of shape ``(N*T, C, H, W)``."""
    # Each group gets a 4th, all-zero kernel: oneDNN's NCHW grouped convolution is ~20x faster
    # with 4 outputs per group than with 3 (measured: 9.1 ms vs 0.38 ms for 64 channels at
    # 8x28x28); in channels_last the two take the same time.
    taps = conv.weight.view(2, 3, *conv.weight.shape[1:])  # (2 groups, 3 taps, C/2, 3, 3)
    padded = torch.cat((taps, taps.new_zeros(2, 1, *taps.shape[2:])), dim=1).flatten(0, 1)
    responses = F.conv2d(F.relu(bn(x)), padded, None, padding=1, groups=2)  # (N*T, 8, H, W)
    r = split_time(responses, num_segments).unflatten(2, (2, 4))  # (N, T, 2 groups, 4, H, W)
    gate = r[:, :, :, 1] + conv.bias.view(1, 1, 2, 1, 1).to(r.dtype)  # tap 1 reads frame t
    gate[:, 1:] += r[:, :-1, :, 0]  # tap 0 reads frame t-1 (zero before the first)
    gate[:, :-1] += r[:, 1:, :, 2]  # tap 2 reads frame t+1 (zero after the last)
    return torch.tanh(gate)  # (N, T, 2, H, W)
