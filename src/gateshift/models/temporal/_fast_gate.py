"""The spatio-temporal gate of GSM and GSF on the fast paths (the definition: :mod:`.gsm`).

Same maths as ``tanh(conv3d(relu(bn3d(X))))``, in another order of sums:

* A 3x3x3 kernel is three 3x3 kernels, one per temporal tap; tap ``k`` at output frame ``t``
  reads input frame ``t + k - 1`` (zero outside the clip). A 3x3 convolution with 3 outputs
  per group leaves most of a vector unit idle, so a 1x1 convolution first gives all 27
  (tap, dy, dx) responses per group (54 maps, an efficient matrix product); the temporal taps
  are then summed across frames and the 9 spatial offsets scattered back with zero padding (a
  col2im). ~1.5x faster on BN-Inception's gates, forward and backward, than the 3x3 conv, and
  it stays in the backbone's memory format (grouped ``Conv3d`` with 2 outputs is a slow path on
  CPU, and the permute to ``(N, C, T, H, W)`` costs two copies).
* In bf16/fp16 the sums run on float32 planes (strided half-precision slice adds were slower
  than one conversion).
* Training: the tap sums run inside :class:`_GateSum`, whose backward is their adjoint written
  out (an im2col of the time-shifted gradient), not autograd through the slice adds.
* Native path (CPU inference, eval BN): the BN is folded into a per-channel scale and shift,
  and BN + ReLU and the sums + tanh each run as one C++ loop (:mod:`._native`); every derived
  weight is kept in one :class:`.InferenceCache` (a :data:`NativePlan`) until a parameter or
  BN statistic changes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gateshift.models.temporal import _native
from gateshift.models.temporal._cache import InferenceCache
from gateshift.models.temporal._time import memory_format_of, split_time

if TYPE_CHECKING:
    from gateshift.models.temporal._gate import GateConv
    from gateshift.models.temporal.gsm import Path

#: The native path's weights: BN scale and shift (float32), 1x1 weight, gate bias (float32).
NativePlan = tuple[Tensor, Tensor, Tensor, Tensor]


def fast_gate(
    frames: Tensor,
    bn: nn.Module,
    conv: GateConv,
    num_segments: int,
    path: Path,
    plan: InferenceCache[NativePlan],
    index: Tensor | None = None,
    fold_index: Tensor | None = None,
) -> Tensor:
    """Gate planes ``(N, T, 2, H, W)`` for ``frames`` ``(N*T, C, H, W)``, in the frames' dtype
    and (seen as frames) memory format: the shift multiplies it into frames of that layout.

    ``index``: ``frames``' channel ``j`` is ``bn``'s channel ``index[j]``, and ``fold_index``
    (:func:`fold_gather_index` in that order) reads the gate's weights to match.
    """
    fold_index = conv.fold_index if fold_index is None else fold_index
    if path == "native":
        weights = _native_plan(bn, conv, fold_index, index, frames.dtype, plan)
        gate = _native.gate(frames, weights, num_segments)
        if gate is not None:
            return gate
    y = bn(frames) if index is None else batch_norm_at(bn, frames, index)  # type: ignore[arg-type]
    u = F.relu(y, inplace=True)
    half = conv.weight.shape[1]

    def fold_weight() -> Tensor:
        flat = conv.weight.flatten().index_select(0, fold_index)
        return flat.view(54, half, 1, 1).to(u.dtype)

    weight = conv.cache.get((conv.weight, fold_index), u.dtype, fold_weight)
    maps = F.conv2d(u, weight, None, groups=2)  # (N*T, 54 = (g, k, o), H, W)
    gate = gate_from_maps(maps, conv.bias, num_segments)
    planes = gate.view(-1, *gate.shape[2:])  # (N*T, 2, H, W)
    return planes.to(u.dtype, memory_format=memory_format_of(u)).view(gate.shape)


def _native_plan(
    bn: nn.Module,
    conv: GateConv,
    fold_index: Tensor,
    index: Tensor | None,
    dtype: torch.dtype,
    cache: InferenceCache[NativePlan],
) -> NativePlan:
    assert isinstance(bn, nn.BatchNorm2d)  # eval_batch_norm(bn) held when the path was chosen
    tensors = [*batch_norm_state(bn), conv.weight, conv.bias, fold_index]
    if index is not None:
        tensors.append(index)

    def plan() -> NativePlan:
        scale, shift = batch_norm_affine(bn, index)
        taps = conv.weight.flatten().index_select(0, fold_index)
        weight = taps.view(54, conv.weight.shape[1], 1, 1).to(dtype)
        return scale, shift, weight, conv.bias.detach().float().contiguous()

    return cache.get(tensors, (bn.eps, dtype), plan)


def fold_gather_index(half: int, channel_order: Tensor | None = None) -> Tensor:
    """Index into ``taps.flatten()`` giving the gate's 1x1 weight ``(54, half)``.

    Row ``(g, k, o)`` (group, temporal tap, spatial offset ``o = 3*dy + dx``) holds the tap's
    kernel at the mirrored offset ``8 - o``, because the col2im scatters where a convolution
    gathers. Column ``c`` reads input channel ``channel_order[c]`` of the group (identity by
    default; GSM after a folded convolution passes its interleave order).
    """
    order = torch.arange(half) if channel_order is None else channel_order
    g = torch.arange(2).view(2, 1, 1, 1)
    k = torch.arange(3).view(1, 3, 1, 1)
    o = torch.arange(9).view(1, 1, 9, 1)
    c = order.view(1, 1, 1, half)
    return (((3 * g + k) * half + c) * 9 + (8 - o)).reshape(-1)


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
    if torch.is_grad_enabled() and (y.requires_grad or bias.requires_grad):
        return torch.tanh(_GateSum.apply(y, bias))
    return torch.tanh_(_gate_sum(y, bias))  # (N, T, 2, H, W)


def _gate_sum(y: Tensor, bias: Tensor) -> Tensor:
    """The gate before its tanh, from the taps ``y`` ``(N, T, g, k, dy, dx, H, W)``."""
    z = y[:, :, :, 1].clone(memory_format=torch.contiguous_format)  # tap 1 reads frame t
    z[:, 1:] += y[:, :-1, :, 0]  # tap 0 reads frame t-1 (zero before the first)
    z[:, :-1] += y[:, 1:, :, 2]  # tap 2 reads frame t+1 (zero after the last)
    return _fold_offsets(z, bias)


class _GateSum(torch.autograd.Function):
    """:func:`_gate_sum` with its adjoint written out for training.

    Autograd through the slice adds would give each of the 27 taps its own zero-filled
    full-size gradient and add them up (in a ResNet-18 GSM training step at width 24 those
    fills, copies and adds took about as long as the block's convolutions). The adjoint is a
    gather instead: tap ``(k, dy, dx)`` of frame ``t`` at ``(h, w)`` fed the gate of frame
    ``t + 1 - k`` at ``(h + 1 - dy, w + 1 - dx)`` (zero outside the clip and the frame), so its
    gradient is that entry of the zero-padded output gradient: an im2col of the time-shifted
    gradient (``F.unfold``).
    """

    @staticmethod
    def forward(ctx: Any, y: Tensor, bias: Tensor) -> Tensor:
        ctx.bias_dtype = bias.dtype
        return _gate_sum(y, bias)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor]:
        n, t, g, h, w = grad.shape
        padded = F.pad(grad, (0, 0, 0, 0, 0, 0, 1, 1))  # zero frames before and after
        # frame t's tap k reads padded frame t + 2 - k; then the 3x3 spatial offsets (an im2col)
        taps = torch.stack([padded[:, 2 - k : 2 - k + t] for k in range(3)], dim=3)
        offsets = F.unfold(taps.view(n * t, g * 3, h, w), 3, padding=1)  # (N*T, (g, k, o), H*W)
        grad_bias = grad.sum(dim=(0, 1, 3, 4)).to(ctx.bias_dtype)
        return offsets.view(n, t, g, 3, 3, 3, h, w), grad_bias


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


# ---------------------------------------------------------------- BatchNorm helpers


def eval_batch_norm(bn: nn.Module) -> bool:
    """True when ``bn`` is a fixed per-channel affine map that no hook needs to see."""
    if type(bn) is not nn.BatchNorm2d or bn.training or bn.running_var is None:
        return False
    return not (bn._forward_hooks or bn._forward_pre_hooks)


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
    return scale.contiguous(), shift.contiguous()


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
