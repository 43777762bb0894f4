"""GSM's gated shift on the fast paths (the definition: :func:`.gsm.gated_shift`).

Eager (:func:`shift_two_passes`): the interleaved output is written in two passes over memory,
``out = X - G*X`` then the shifted ``G*X`` added in place. Training runs it inside
:class:`GatedShiftFunction`, whose backward is closed-form, in a handful of passes (without the
interleave, on CPU, the native kernels run forward and backward in one pass each)::

    D_1[t] = dZ_1[t-1] - dZ_1[t],   D_2[t] = dZ_2[t+1] - dZ_2[t]
    dX = dZ + G * D,                 dG = sum over the half's channels of X * D

The interleave folded into the convolution before GSM (:func:`fold_interleave`): the interleave
is a fixed permutation of channels inside each half, and everything else GSM does is per
channel or per half, so ``interleave(GSM(X)) = GSM'(X[src])`` where ``src`` is the
interleave's source index (:func:`interleave_source`) and ``GSM'`` is GSM without the
interleave, its gate's BN parameters and conv input channels taken in ``src`` order. When GSM
sits right after a plain convolution (every published placement), ``X[src]`` costs nothing: it
is the convolution with its output channels (weight rows, bias) taken in ``src`` order. That
spares the strided interleaved write (in channels_last it made the gated shift 3x slower in
fp32 and 3.4x in bf16). Weights stay stored in the published layout; only the forward indexes
them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

from gateshift.models.temporal import _native
from gateshift.models.temporal._cache import InferenceCache
from gateshift.models.temporal._time import same_format_as

if TYPE_CHECKING:
    from gateshift.models.temporal.gsm import Path

#: A convolution's weight and bias with output channels in interleave order.
FoldedWeights = tuple[Tensor, Tensor | None]


def fast_gated_shift(
    x: Tensor, gate: Tensor, num_segments: int, path: Path, *, interleave: bool, in_place: bool
) -> Tensor:
    """``Z`` for frames ``(N*T, C, H, W)`` and gate ``(N, T, 2, H, W)`` on ``path``;
    ``in_place`` lets the native kernel write into ``x`` (frames nothing else holds)."""
    if path == "autograd":
        out: Tensor = GatedShiftFunction.apply(x, gate, num_segments, interleave)
        return out
    if path == "native" and not interleave:
        native = _native.gated_shift(x, gate, num_segments, inplace=in_place)
        if native is not None:
            return native
    return shift_two_passes(x, gate, num_segments, interleave)


def _views(
    x: Tensor, out: Tensor, gate: Tensor, num_segments: int, interleave: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Input, output and gate as broadcast-compatible views indexed ``[n, t, half, a, b, h, w]``.

    Input channel ``g*C/2 + a*C/4 + b`` is at ``[g, a, b]``; with the interleave the output view
    puts the same ``[g, a, b]`` at channel ``g*C/2 + 2b + a``. Without it ``a`` has size 1.
    """
    c, h, w = x.shape[1:]
    pairs = 2 if interleave else 1
    xv = x.view(-1, num_segments, 2, pairs, c // (2 * pairs), h, w)  # (N, T, half, a, b, H, W)
    if interleave:
        ov = out.view(-1, num_segments, 2, c // 4, 2, h, w).transpose(3, 4)  # same indexing
    else:
        ov = out.view(xv.shape)
    return xv, ov, gate.view(-1, num_segments, 2, 1, h, w)  # gate: (N, T, half, 1, H, W)


def shift_two_passes(x: Tensor, gate: Tensor, num_segments: int, interleave: bool) -> Tensor:
    """The eager gated shift: two passes over memory, interleaved output written in place.

    Work is split over the interleave's pair index ``a`` so the innermost loop runs over the
    C/4 channels ``b``; left to itself, the iterator would pick ``a`` (length 2) innermost for a
    channels_last output, which made the interleaved write 5x slower.
    """
    g = gate.to(x.dtype)
    out = torch.empty_like(x)  # keeps x's memory format
    xv, ov, gv = _views(x, out, g, num_segments, interleave)
    for a in range(xv.shape[3]):
        xa, oa = xv[:, :, :, a], ov[:, :, :, a]  # (N, T, half, b, H, W)
        torch.addcmul(xa, xa, gv, value=-1, out=oa)  # R = X - G*X everywhere
        oa[:, :-1, 0].addcmul_(xa[:, 1:, 0], gv[:, 1:, 0])  # half 1 += gated next frame
        oa[:, 1:, 1].addcmul_(xa[:, :-1, 1], gv[:, :-1, 1])  # half 2 += gated previous frame
    return out


class GatedShiftFunction(torch.autograd.Function):
    """``Z = shift(G*X) + X - G*X`` (+ interleave) with the closed-form gradients above."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, x: Tensor, gate: Tensor, num_segments: int, interleave: bool
    ) -> Tensor:
        native = None if interleave else _native.gated_shift(x, gate, num_segments)
        out = shift_two_passes(x, gate, num_segments, interleave) if native is None else native
        ctx.save_for_backward(x, gate)
        ctx.num_segments = num_segments  # type: ignore[attr-defined]
        ctx.interleave = interleave  # type: ignore[attr-defined]
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor, Tensor, None, None]:
        x, gate = ctx.saved_tensors  # type: ignore[attr-defined]
        num_segments: int = ctx.num_segments  # type: ignore[attr-defined]
        interleave: bool = ctx.interleave  # type: ignore[attr-defined]
        native = (
            None if interleave else _native.gated_shift_backward(x, gate, grad_out, num_segments)
        )
        if native is not None:
            return native[0], native[1].to(gate.dtype), None, None
        g = gate.to(x.dtype)
        grad_out = same_format_as(grad_out.to(x.dtype), x)
        grad_x = torch.empty_like(x)
        xv, gov, gv = _views(x, grad_out, g, num_segments, interleave)
        dv = grad_x.view(xv.shape)  # D, then dX; indexed like xv
        for a in range(xv.shape[3]):  # one pass each: D, then dX over it
            da, ga = dv[:, :, :, a], gov[:, :, :, a]
            torch.sub(ga[:, :-1, 0], ga[:, 1:, 0], out=da[:, 1:, 0])  # D_1[t] = dZ_1[t-1] - dZ_1[t]
            torch.neg(ga[:, :1, 0], out=da[:, :1, 0])  # (nothing before the first frame)
            torch.sub(ga[:, 1:, 1], ga[:, :-1, 1], out=da[:, :-1, 1])  # D_2[t] = dZ_2[t+1] - ...
            torch.neg(ga[:, -1:, 1], out=da[:, -1:, 1])  # (nothing after the last)
        grad_gate = (xv * dv).sum(dim=(3, 4))  # (N, T, 2, H, W)
        for a in range(xv.shape[3]):
            da = dv[:, :, :, a]
            torch.addcmul(gov[:, :, :, a], da, gv, out=da)  # dX = dZ + G * D, in D's place
        return grad_x, grad_gate.to(gate.dtype).view_as(gate), None, None


# ---------------------------------------------------------------- the interleave, folded


def interleave_source(channels: int) -> Tensor:
    """``src`` with ``interleaved[:, j] = plain[:, src[j]]`` (channel ``2b + a`` of a half holds
    channel ``a*C/4 + b`` of the same half)."""
    quarter = channels // 4
    half = torch.arange(2 * quarter).view(2, quarter).t().reshape(-1)  # 2b + a -> a*C/4 + b
    return torch.cat((half, half + 2 * quarter))


def fold_interleave(
    layer: nn.Conv2d, src: Tensor, cache: InferenceCache[FoldedWeights]
) -> FoldedWeights:
    """``layer``'s weight and bias with output channels in ``src`` order.

    Without autograd (inference) the result is kept until the weights change (their version
    counter, storage, dtype or device), so a ResNet-50 does not copy its 20 MB of conv3
    weights on every forward; with autograd it is indexed afresh so gradients flow.
    """
    params = (layer.weight,) if layer.bias is None else (layer.weight, layer.bias)

    def fold() -> FoldedWeights:
        weight = same_format_as(layer.weight.index_select(0, src), layer.weight)
        bias = None if layer.bias is None else layer.bias.index_select(0, src)
        return weight, bias

    return cache.get((*params, src), None, fold)
