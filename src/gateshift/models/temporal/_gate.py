"""Storage of the spatio-temporal gate's convolution, shared by GSM and GSF.

The published gate is ``conv3d(C -> 2, kernel 3x3x3, padding 1, groups 2)`` after BN and ReLU
(GSM arXiv 1912.00381, Sec. 3; GSF arXiv 2203.08897). A 3x3x3 kernel is three 3x3 kernels,
one per temporal tap, so :class:`GateConv` stores its weight as those 6 two-dimensional taps:
a 4-D parameter keeps ``model.to(memory_format=torch.channels_last)`` working (it refuses 5-D
tensors), and the fast paths (:mod:`._fast_gate`) read the taps directly. State dicts show the
published ``conv3D.weight (2, C/2, 3, 3, 3)``, and loading accepts it, so the authors'
checkpoints load unchanged. ``bn3d`` normalises each channel over ``(N, T, H, W)``, which is
what ``BatchNorm2d`` does over the frame batch ``(N*T, C, H, W)``: same statistics, same keys.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gateshift.models.temporal._cache import InferenceCache
from gateshift.models.temporal._fast_gate import fold_gather_index
from gateshift.models.temporal._time import tracing


class GateConv(nn.Module):
    """The gate's grouped 3x3x3 convolution (C -> 2 planes, groups 2), stored as 2-D taps.

    ``weight`` is ``(6, C/2, 3, 3)``: row ``3*g + k`` is group ``g``'s kernel for temporal tap
    ``k``. A 4-D parameter keeps ``model.to(memory_format=torch.channels_last)`` working (it
    refuses 5-D tensors). State dicts show the published Conv3d layout ``weight (2, C/2, 3, 3, 3)``
    and ``bias (2)``, and loading accepts it, so the authors' checkpoints map one to one.
    """

    fold_index: Tensor

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
        self.register_buffer("fold_index", fold_gather_index(half), persistent=False)
        self.cache: InferenceCache[Tensor] = InferenceCache()  # the 1x1 weight, inference
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


def tap_sum_weight(num_segments: int, like: Tensor, *, first_tap: int) -> Tensor:
    """The sums over time of a gate's three temporal taps as a 1x1 convolution's weight
    ``(2T, 6T, 1, 1)``: output ``2t + g`` (group ``g`` of frame ``t``) sums input ``6s + 3g + k``
    (group ``g``'s tap ``k`` of frame ``s``) where ``s = t + first_tap + k``; frames outside the
    clip are absent, i.e. zero padding. ``first_tap`` is -1 for the published kernel (t-1, t,
    t+1), -2 for the causal one (t-2, t-1, t). In ``like``'s dtype and device, built per call
    from a few ops on constants, which a traced graph folds (a cached tensor would leak a
    tracer's fake tensor into later calls)."""
    t, dtype, device = num_segments, like.dtype, like.device
    frames = torch.arange(t, device=device)
    offset = frames[None, :] - frames[:, None]  # offset[t, s] = s - t
    taps = torch.arange(3, device=device) + first_tap
    hits = (offset[:, :, None] == taps).to(dtype)  # hits[t, s, k] = 1 where s = t + first_tap + k
    same_group = torch.eye(2, dtype=dtype, device=device)
    weight = hits[:, None, :, None, :] * same_group[None, :, None, :, None]  # (t, g, s, g', k)
    return weight.reshape(2 * t, 6 * t, 1, 1)


def dense_taps(weight: Tensor) -> Tensor:
    """The grouped ``(6, C/2, 3, 3)`` tap weight as the dense ``(6, C, 3, 3)`` one that gives
    the same six maps (zeros across the two groups). In an exported graph it is a constant, and
    ONNX Runtime's dense convolution with six outputs ran faster than its grouped one: on the
    MobileNetV2 GSM (2-core Intel Xeon, 2 threads, benchmarks/export_runtime.py) the fp32 file
    went from 0.084 to 0.077 s a clip."""
    zeros = torch.zeros_like(weight[:3])
    return torch.cat((torch.cat((weight[:3], zeros), 1), torch.cat((zeros, weight[3:]), 1)))


def tap_sum_gate(
    x: Tensor, bn: nn.Module, conv: GateConv, num_segments: int, *, first_tap: int
) -> Tensor:
    """Gate planes ``(N, T, 2, H, W)`` of frames ``x`` ``(N*T, C, H, W)`` in plain 2-D ops:
    ``tanh`` of the gate's 3x3x3 convolution of ``relu(bn(x))`` over frames ``t + first_tap``
    to ``t + first_tap + 2`` (zeros outside the clip). One grouped 3x3 convolution gives every
    temporal tap's response, and one 1x1 convolution with :func:`tap_sum_weight` sums them
    over time, so a graph gets two convolutions and no slices, zero frames or adds."""
    u = F.relu(bn(x))  # (N*T, C, H, W)
    if tracing():  # exported graphs: the same sums as one dense convolution (see dense_taps)
        taps = F.conv2d(u, dense_taps(conv.weight), None, padding=1)
    else:
        taps = F.conv2d(u, conv.weight, None, padding=1, groups=2)  # (N*T, 6 = (g, k), H, W)
    h, w = taps.shape[-2:]
    clip_taps = taps.reshape(-1, 6 * num_segments, h, w)  # channel 6t + 3g + k
    weight = tap_sum_weight(num_segments, taps, first_tap=first_tap)
    g = F.conv2d(clip_taps, weight, conv.bias.to(taps.dtype).repeat(num_segments))
    return torch.tanh(g).view(-1, num_segments, 2, h, w)
