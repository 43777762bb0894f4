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

Outside tracing the 3x3 convolution itself is split further (:func:`_gate_by_fold`): a
convolution with only 3 outputs per group leaves most of a vector unit idle, so a 1x1
convolution first gives all 27 (tap, dy, dx) responses per group (27 outputs per group, an
efficient matrix product), the temporal taps are summed across frames, and the 9 spatial
offsets are scattered back with zero padding (a col2im, :func:`_fold_offsets`). Same sums,
~1.5x faster on BN-Inception's gates, forward and backward. In bf16/fp16 the sums run on
float32 planes. Under tracing/export the gate is the single 3x3 conv2d (fewer, plainer ops).

In CPU inference (no autograd graph, float32/bfloat16) two fused C++ passes of :mod:`._native`
replace eager ops: the eval BatchNorm + ReLU (BN folded to a per-channel scale and shift, kept
until the BN changes) and the frame and offset sums + tanh over the 54 maps.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gateshift.models.temporal import _native
from gateshift.models.temporal._cache import InferenceCache
from gateshift.models.temporal._time import memory_format_of, split_time


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


def fold_gather_index(half: int, channel_order: Tensor | None = None) -> Tensor:
    """Index into ``taps.flatten()`` giving :func:`_gate_by_fold`'s 1x1 weight ``(54, half)``.

    Row ``(g, k, o)`` (group, temporal tap, spatial offset ``o = 3*dy + dx``) holds the tap's
    kernel at the mirrored offset ``8 - o``, because ``F.fold`` scatters where a convolution
    gathers. Column ``c`` reads input channel ``channel_order[c]`` of the group (identity by
    default; GSM passes its interleave order, see :mod:`.gsm`).
    """
    order = torch.arange(half) if channel_order is None else channel_order
    g = torch.arange(2).view(2, 1, 1, 1)
    k = torch.arange(3).view(1, 3, 1, 1)
    o = torch.arange(9).view(1, 1, 9, 1)
    c = order.view(1, 1, 1, half)
    return (((3 * g + k) * half + c) * 9 + (8 - o)).reshape(-1)


def make_gate_layers(channels: int, *, zero_init: bool) -> tuple[nn.BatchNorm2d, GateConv]:
    """The gate's BN (on all ``channels``) and its grouped 3x3x3 convolution to 2 gate planes."""
    return nn.BatchNorm2d(channels), GateConv(channels, zero_init=zero_init)


def spatiotemporal_gate(
    x: Tensor,
    bn: nn.Module,
    conv: GateConv,
    num_segments: int,
    affine_cache: InferenceCache[tuple[Tensor, Tensor]] | None = None,
) -> Tensor:
    """Gate planes ``(N, T, 2, H, W)`` in [-1, 1] for frames ``x`` of shape ``(N*T, C, H, W)``."""
    u = gate_input(x, bn, affine_cache)
    return gate_from_taps(u, conv.weight, conv.bias, num_segments, conv.fold_index, conv.cache)


def gate_input(
    x: Tensor,
    bn: nn.Module,
    affine_cache: InferenceCache[tuple[Tensor, Tensor]] | None = None,
    index: Tensor | None = None,
) -> Tensor:
    """``relu(bn(x))``; with ``index``, for ``x`` whose channel ``j`` is ``bn``'s channel
    ``index[j]`` (:func:`batch_norm_at`).

    In inference (eval BatchNorm2d, no autograd graph) on CPU this is one fused pass
    (:func:`._native.affine_relu`) with BN folded to a per-channel scale and shift, kept in
    ``affine_cache`` until the BN's parameters or statistics change.
    """
    if eval_batch_norm(bn, x) and _native.takes(x):
        assert isinstance(bn, nn.BatchNorm2d)
        tensors = batch_norm_state(bn)
        if index is not None:
            tensors.append(index)

        def affine() -> tuple[Tensor, Tensor]:
            return batch_norm_affine(bn, index)

        scale, shift = (
            affine() if affine_cache is None else affine_cache.get(tensors, bn.eps, affine)
        )
        u = _native.affine_relu(x, scale, shift)
        if u is not None:
            return u
    y = bn(x) if index is None else batch_norm_at(bn, x, index)  # type: ignore[arg-type]
    return F.relu(y, inplace=True)


def eval_batch_norm(bn: nn.Module, x: Tensor) -> bool:
    """True when ``bn(x)`` is a fixed per-channel affine map and nothing records it."""
    if type(bn) is not nn.BatchNorm2d or bn.training or bn.running_var is None:
        return False
    if bn._forward_hooks or bn._forward_pre_hooks or tracing():
        return False  # hooks must see bn(x); traces get plain ops
    params = [p for p in (bn.weight, bn.bias) if p is not None]
    return not (
        torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params))
    )


def batch_norm_state(bn: nn.BatchNorm2d) -> list[Tensor]:
    """The tensors an eval BatchNorm's output depends on, for :class:`InferenceCache` keys.

    BatchNorm's kernel updates the running statistics without bumping their version counters;
    ``num_batches_tracked``, which the module bumps, marks each such update.
    """
    stats = (bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.num_batches_tracked)
    return [t for t in stats if t is not None]


def batch_norm_affine(bn: nn.BatchNorm2d, index: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """An eval BatchNorm as float32 ``(scale, shift)`` with ``bn(x) = x * scale + shift`` per
    channel (taken at ``index`` when given)."""
    assert bn.running_mean is not None and bn.running_var is not None
    mean, var = bn.running_mean.float(), bn.running_var.float()
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().float()
    shift = -mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().float()
    if index is not None:
        scale, shift = scale.index_select(0, index), shift.index_select(0, index)
    return scale, shift


def batch_norm_at(bn: nn.BatchNorm2d, x: Tensor, index: Tensor) -> Tensor:
    """``bn`` applied to ``x`` whose channel ``j`` is channel ``index[j]`` of what ``bn`` was
    built for: parameters and running statistics are taken at ``index``, and in training the
    updated statistics are written back there (``index`` is a permutation)."""
    update = bn.training and bn.track_running_stats
    momentum = 0.0 if bn.momentum is None else bn.momentum
    if update and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        if bn.momentum is None:  # cumulative moving average
            momentum = 1.0 / float(bn.num_batches_tracked)
    use_batch_stats = bn.training or bn.running_mean is None
    stats = None
    if bn.running_mean is not None and bn.running_var is not None and (update or not bn.training):
        stats = (bn.running_mean.index_select(0, index), bn.running_var.index_select(0, index))
    out = F.batch_norm(
        x,
        None if stats is None else stats[0],
        None if stats is None else stats[1],
        None if bn.weight is None else bn.weight.index_select(0, index),
        None if bn.bias is None else bn.bias.index_select(0, index),
        use_batch_stats,
        momentum,
        bn.eps,
    )
    if update and stats is not None and bn.running_mean is not None:
        bn.running_mean.index_copy_(0, index, stats[0])
        bn.running_var.index_copy_(0, index, stats[1])  # type: ignore[union-attr]
    return out


def gate_from_taps(
    u: Tensor,
    taps: Tensor,
    bias: Tensor,
    num_segments: int,
    fold_index: Tensor | None = None,
    cache: InferenceCache[Tensor] | None = None,
) -> Tensor:
    """``tanh`` of the grouped 3x3x3 convolution of ``u = relu(bn(x))``, given as 2-D ``taps``.

    ``fold_index`` (:func:`fold_gather_index`) selects the 1x1 + fold computation, used
    outside tracing; without it, or under tracing, one grouped 3x3 conv2d. ``cache`` keeps the
    1x1 weight between inference calls.
    The gate comes back in ``u``'s dtype and, seen as frames ``(N*T, 2, H, W)``, in ``u``'s
    memory format: the gated shift multiplies it into frames of that layout, and a gate in the
    other layout made that product up to 2x slower (strided reads of the gate in channels_last).
    """
    if fold_index is not None and not tracing():
        gate = _gate_by_fold(u, taps, bias, num_segments, fold_index, cache)
    else:
        gate = _gate_by_conv(u, taps, bias, num_segments)
    frames = gate.view(-1, *gate.shape[2:])  # (N*T, 2, H, W)
    return frames.to(u.dtype, memory_format=memory_format_of(u)).view(gate.shape)


def _gate_by_conv(u: Tensor, taps: Tensor, bias: Tensor, num_segments: int) -> Tensor:
    """The gate as one grouped 3x3 conv2d to the 6 tap responses, summed across frames."""
    # Each group gets a 4th, all-zero kernel: oneDNN's NCHW grouped convolution is ~20x faster
    # with 4 outputs per group than with 3 (measured: 9.1 ms vs 0.38 ms for 64 channels at
    # 8x28x28); in channels_last the two take the same time.
    grouped = taps.view(2, 3, *taps.shape[1:])  # (2 groups, 3 taps, C/2, 3, 3)
    padded = F.pad(grouped, (0, 0, 0, 0, 0, 0, 0, 1)).flatten(0, 1)  # (8, C/2, 3, 3)
    responses = F.conv2d(u, padded.to(u.dtype), None, padding=1, groups=2)  # (N*T, 8, H, W)
    # The frame sums run on planes in float32 (or float64): strided reads of bf16
    # channels_last responses made them 3-4x slower than this one small conversion and transpose.
    acc = torch.float64 if u.dtype == torch.float64 else torch.float32
    planes = responses.to(acc, memory_format=torch.contiguous_format)
    r = split_time(planes, num_segments).unflatten(2, (2, 4))  # (N, T, 2 groups, 4, H, W)
    gate = r[:, :, :, 1] + bias.view(1, 1, 2, 1, 1).to(r.dtype)  # tap 1 reads frame t
    gate[:, 1:] += r[:, :-1, :, 0]  # tap 0 reads frame t-1 (zero before the first)
    gate[:, :-1] += r[:, 1:, :, 2]  # tap 2 reads frame t+1 (zero after the last)
    return torch.tanh_(gate)  # (N, T, 2, H, W)


def _gate_by_fold(
    u: Tensor,
    taps: Tensor,
    bias: Tensor,
    num_segments: int,
    fold_index: Tensor,
    cache: InferenceCache[Tensor] | None = None,
) -> Tensor:
    """The same gate as a 1x1 convolution to 54 maps, a temporal sum and a col2im fold."""
    channels = u.shape[1]

    def fold_weight() -> Tensor:
        flat = taps.flatten().index_select(0, fold_index)
        return flat.view(54, channels // 2, 1, 1).to(u.dtype)

    weight = fold_weight() if cache is None else cache.get((taps, fold_index), u.dtype, fold_weight)
    y = F.conv2d(u, weight, None, groups=2)  # (N*T, 54 = (g, k, o), H, W)
    if not (torch.is_grad_enabled() and y.requires_grad):
        gate = _native.gate_fold(y, bias, num_segments)  # one C++ pass, where it applies
        if gate is not None:
            return gate
    return gate_from_maps(y, bias, num_segments)


def gate_from_maps(y: Tensor, bias: Tensor, num_segments: int) -> Tensor:
    """The gate ``(N, T, 2, H, W)`` from the 1x1 convolution's 54 maps ``(N*T, 54, H, W)``:
    map ``(g, k, o)`` of frame ``t + k - 1`` summed into plane ``g`` of frame ``t`` at spatial
    offset ``o``, plus bias, tanh."""
    if y.dtype not in (torch.float32, torch.float64):
        # bf16/fp16: the sums run on float32 planes; one conversion and transpose here cost
        # less than strided half-precision slice adds (ResNet-50 GSM bf16: +31% over TSN
        # this way, +38% with the 3x3 path)
        y = y.to(torch.float32, memory_format=torch.contiguous_format)
    y = split_time(y, num_segments).unflatten(2, (2, 3, 3, 3))  # (N, T, g, k, dy, dx, H, W)
    z = y[:, :, :, 1].clone(memory_format=torch.contiguous_format)  # tap 1 reads frame t
    z[:, 1:] += y[:, :-1, :, 0]  # tap 0 reads frame t-1 (zero before the first)
    z[:, :-1] += y[:, 1:, :, 2]  # tap 2 reads frame t+1 (zero after the last)
    return torch.tanh_(_fold_offsets(z, bias))  # (N, T, 2, H, W)


def _fold_offsets(z: Tensor, bias: Tensor) -> Tensor:
    """``F.fold(z, kernel 3, padding 1) + bias`` for ``z`` ``(N, T, 2, 3, 3, H, W)``.

    The 9 offset maps are scattered one axis at a time (3 column shifts, then 3 row shifts) with
    slice adds; the same sums as ``F.fold``, whose CPU col2im took 40 us a call on these small
    maps and made BN-Inception's GSM ~0.5% slower end to end.
    """
    a = z[..., 1, :, :].clone()  # (N, T, 2, 3 rows, H, W): the map at column offset 0
    a[..., :-1] += z[..., 0, :, 1:]  # column offset -1: what lands on w came from w + 1
    a[..., 1:] += z[..., 2, :, :-1]  # column offset +1
    out = a[..., 1, :, :] + bias.view(1, 1, 2, 1, 1).to(a.dtype)  # (N, T, 2, H, W)
    out[..., :-1, :] += a[..., 0, 1:, :]  # row offset -1
    out[..., 1:, :] += a[..., 2, :-1, :]  # row offset +1
    return out


def tracing() -> bool:
    """True under torch.export / torch.compile / jit tracing, where plain ops trace best."""
    return bool(torch.compiler.is_compiling() or torch.jit.is_tracing())
