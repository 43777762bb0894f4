"""Gate-Shift Module (GSM), Sudhakaran, Escalera and Lanz, CVPR 2020 (arXiv 1912.00381).

For frames ``X`` of one insertion point (C channels, T frames per clip), with the gate ``G`` of
:mod:`._gate` (two planes, one per channel half)::

    Y_k = G_k * X_k,   R_k = X_k - Y_k                 k = 1, 2 (channel halves)
    S_1[t] = Y_1[t+1], S_1[T-1] = 0                    half 1 takes the next frame
    S_2[t] = Y_2[t-1], S_2[0]   = 0                    half 2 takes the previous frame
    Z_k = S_k + R_k

then, as in the authors' released code (not in the paper), the C/2 channels of each half are
interleaved: viewed as (2, C/4), transposed, flattened, so new channel ``2b + a`` holds old
channel ``a*C/4 + b``. With the zero-initialised gate the module is that fixed permutation.
``interleave=False`` drops it (for training from ImageNet weights); keep it on to load the
authors' checkpoints.

Speed: the gated shift is one fused autograd function. Its forward writes the interleaved output
in two passes over memory (``out = X - G*X`` then the shifted ``G*X`` added in place) and its
backward in a handful, from closed-form gradients::

    D_1[t] = dZ_1[t-1] - dZ_1[t],   D_2[t] = dZ_2[t+1] - dZ_2[t]
    dX = dZ + G * D,                 dG = sum over the half's channels of X * D

Under tracing / export the same maths runs as plain differentiable tensor ops
(:func:`gated_shift_reference`), which is also what the tests compare against.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

from gateshift.models.temporal._gate import make_gate_layers, spatiotemporal_gate
from gateshift.models.temporal._time import (
    clips_in_batch,
    same_format_as,
    split_time,
    take_next,
    take_previous,
)


def check_channels(who: str, channels: int, interleave: bool) -> None:
    """GSM/GSF split channels into two halves, and the interleave splits each half in two."""
    multiple = 4 if interleave else 2
    if channels <= 0 or channels % multiple != 0:
        raise ValueError(
            f"{who} needs a channel count that is a positive multiple of {multiple} "
            f"({'two halves, each interleaved in pairs' if interleave else 'two halves'}), "
            f"got {channels}"
        )


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


class _GatedShift(torch.autograd.Function):
    """Fused ``Z = shift(G*X) + X - G*X`` (+ interleave) with hand-written gradients.

    Work is split over the interleave's pair index ``a`` so the innermost loop runs over the
    C/4 channels ``b``; left to itself, the iterator would pick ``a`` (length 2) innermost for a
    channels_last output, which made the interleaved write 5x slower.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx, x: Tensor, gate: Tensor, num_segments: int, interleave: bool
    ) -> Tensor:
        g = gate.to(x.dtype)
        out = torch.empty_like(x)  # keeps x's memory format
        xv, ov, gv = _views(x, out, g, num_segments, interleave)
        for a in range(xv.shape[3]):
            xa, oa = xv[:, :, :, a], ov[:, :, :, a]  # (N, T, half, b, H, W)
            torch.addcmul(xa, xa, gv, value=-1, out=oa)  # R = X - G*X everywhere
            oa[:, :-1, 0].addcmul_(xa[:, 1:, 0], gv[:, 1:, 0])  # half 1 += gated next frame
            oa[:, 1:, 1].addcmul_(xa[:, :-1, 1], gv[:, :-1, 1])  # half 2 += gated previous frame
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
        g = gate.to(x.dtype)
        grad_out = same_format_as(grad_out.to(x.dtype), x)
        grad_x = torch.empty_like(x)
        xv, gov, gv = _views(x, grad_out, g, num_segments, interleave)
        dv = grad_x.view(xv.shape)  # D, then dX; indexed like xv
        for a in range(xv.shape[3]):
            da, ga = dv[:, :, :, a], gov[:, :, :, a]
            torch.neg(ga, out=da)
            da[:, 1:, 0].add_(ga[:, :-1, 0])  # half 1: D[t] = dZ[t-1] - dZ[t]
            da[:, :-1, 1].add_(ga[:, 1:, 1])  # half 2: D[t] = dZ[t+1] - dZ[t]
        grad_gate = (xv * dv).sum(dim=(3, 4))  # (N, T, 2, H, W)
        for a in range(xv.shape[3]):
            dv[:, :, :, a].mul_(gv).add_(gov[:, :, :, a])  # dX = dZ + G * D
        return grad_x, grad_gate.to(gate.dtype).view_as(gate), None, None


def gated_shift_reference(x: Tensor, gate: Tensor, num_segments: int, interleave: bool) -> Tensor:
    """The same maths as plain differentiable ops; used under tracing and export."""
    n, c, h, w = x.shape
    xg = split_time(x, num_segments).unflatten(2, (2, c // 2))  # (N, T, 2, C/2, H, W)
    y = xg * gate.to(x.dtype).unsqueeze(3)
    shifted = torch.stack((take_next(y[:, :, 0]), take_previous(y[:, :, 1])), dim=2)
    z = shifted + (xg - y)  # (N, T, 2, C/2, H, W)
    if interleave:
        z = z.unflatten(3, (2, c // 4)).transpose(3, 4)  # (N, T, 2, C/4, 2, H, W)
    return same_format_as(z.reshape(n, c, h, w), x)


def _tracing() -> bool:
    """True under torch.export / torch.compile / jit tracing, where plain ops trace best."""
    return bool(torch.compiler.is_compiling() or torch.jit.is_tracing())


def gated_shift(x: Tensor, gate: Tensor, num_segments: int, interleave: bool) -> Tensor:
    """``(N*T, C, H, W)`` frames and ``(N, T, 2, H, W)`` gate -> ``(N*T, C, H, W)``."""
    if _tracing():
        return gated_shift_reference(x, gate, num_segments, interleave)
    out: Tensor = _GatedShift.apply(x, gate, num_segments, interleave)
    return out


class GateShift(nn.Module):
    """GSM for one insertion point: ``(N*T, C, H, W)`` -> ``(N*T, C, H, W)``.

    State-dict names follow the authors' code: ``conv3D.weight (2, C/2, 3, 3, 3)``,
    ``conv3D.bias (2)``, ``bn.*`` (C channels). 29*C + 2 parameters.
    """

    def __init__(self, channels: int, num_segments: int = 8, *, interleave: bool = True) -> None:
        super().__init__()
        check_channels("GateShift", channels, interleave)
        if num_segments < 1:
            raise ValueError(f"GateShift needs num_segments >= 1, got {num_segments}")
        self.channels = channels
        self.num_segments = num_segments
        self.interleave = interleave
        self.bn, self.conv3D = make_gate_layers(channels, zero_init=True)

    def forward(self, x: Tensor) -> Tensor:
        clips_in_batch(x, self.num_segments, "GateShift")
        if x.shape[1] != self.channels:
            raise ValueError(f"GateShift built for {self.channels} channels got {x.shape[1]}")
        gate = spatiotemporal_gate(x, self.bn, self.conv3D, self.num_segments)
        return gated_shift(x, gate, self.num_segments, self.interleave)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, num_segments={self.num_segments}, "
            f"interleave={self.interleave}"
        )
