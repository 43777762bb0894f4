"""Temporal Shift Module (TSM), Lin, Gan and Han, ICCV 2019 (arXiv 1811.08383): the baseline.

Parameter-free: of C channels, the first ``C // shift_div`` take the next frame, the following
``C // shift_div`` take the previous frame (zero padded at the clip ends), the rest stay. Used as
the "residual shift": placed before the first convolution of a residual branch, so the identity
path keeps the unshifted features. ``causal=True`` shifts from the past only: fold 1 from t-2,
fold 2 from t-1 (:mod:`.causal`).

In training the shift runs as one autograd function (:class:`TemporalShiftFunction`): the
gradient of a shift is the opposite shift, one pass over memory. Left to autograd, the five
slice writes that build the output each save a ``CopySlices`` node whose backward clones the
whole gradient, so a ResNet-50 TSM's shifts cost about 7x a plain copy of their input in a
training step. Under tracing (torch.export, ONNX, torch.compile) the plain slice writes run.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

from gateshift.models.temporal._time import clips_in_batch, same_format_as, split_time, tracing
from gateshift.models.temporal.causal import causal_temporal_shift


def temporal_shift(x: Tensor, num_segments: int, shift_div: int = 8) -> Tensor:
    """Shift ``(N*T, C, H, W)`` frames as TSM does; returns a new tensor in x's memory format."""
    fold = x.shape[1] // shift_div
    if not tracing() and torch.is_grad_enabled() and x.requires_grad:
        out: Tensor = TemporalShiftFunction.apply(x, num_segments, fold)
        return out
    return shift_folds(x, num_segments, fold, first_takes_next=True)


def shift_folds(x: Tensor, num_segments: int, fold: int, *, first_takes_next: bool) -> Tensor:
    """Channels ``[0, fold)`` take the next frame and ``[fold, 2*fold)`` the previous one (or the
    other way round when ``first_takes_next`` is False), zero padded; the rest are copied."""
    out = torch.empty_like(x)  # keeps x's memory format
    x5, o5 = split_time(x, num_segments), split_time(out, num_segments)  # (N, T, C, H, W)
    first, second = slice(0, fold), slice(fold, 2 * fold)
    ahead, behind = (first, second) if first_takes_next else (second, first)
    o5[:, :-1, ahead] = x5[:, 1:, ahead]  # frame t takes frame t+1
    o5[:, -1:, ahead] = 0
    o5[:, 1:, behind] = x5[:, :-1, behind]  # frame t takes frame t-1
    o5[:, :1, behind] = 0
    o5[:, :, 2 * fold :] = x5[:, :, 2 * fold :]
    return out


class TemporalShiftFunction(torch.autograd.Function):
    """TSM's shift with its adjoint as the backward: the gradient of "fold 1 takes the next
    frame, fold 2 the previous one" is "fold 1 takes the previous frame, fold 2 the next"."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, num_segments: int, fold: int) -> Tensor:
        ctx.num_segments = num_segments  # type: ignore[attr-defined]
        ctx.fold = fold  # type: ignore[attr-defined]
        return shift_folds(x, num_segments, fold, first_takes_next=True)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_out: Tensor) -> tuple[Tensor, None, None]:
        num_segments: int = ctx.num_segments  # type: ignore[attr-defined]
        fold: int = ctx.fold  # type: ignore[attr-defined]
        grad = shift_folds(grad_out, num_segments, fold, first_takes_next=False)
        return grad, None, None


class TemporalShift(nn.Module):
    """TSM for one insertion point: ``(N*T, C, H, W)`` -> ``(N*T, C, H, W)``, no parameters."""

    def __init__(
        self, channels: int, num_segments: int = 8, *, shift_div: int = 8, causal: bool = False
    ) -> None:
        super().__init__()
        if shift_div < 2 or channels // shift_div < 1:
            raise ValueError(
                f"TemporalShift needs shift_div >= 2 and at least shift_div channels, got "
                f"shift_div={shift_div} for {channels} channels"
            )
        if num_segments < 1:
            raise ValueError(f"TemporalShift needs num_segments >= 1, got {num_segments}")
        self.channels = channels
        self.num_segments = num_segments
        self.shift_div = shift_div
        self.causal = causal  # frame t sees frames <= t only (:mod:`.causal`)

    def forward(self, x: Tensor) -> Tensor:
        clips_in_batch(x, self.num_segments, "TemporalShift")
        if x.shape[1] != self.channels:
            raise ValueError(f"TemporalShift built for {self.channels} channels got {x.shape[1]}")
        if self.causal:
            return same_format_as(causal_temporal_shift(x, self.num_segments, self.shift_div), x)
        return temporal_shift(x, self.num_segments, self.shift_div)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, num_segments={self.num_segments}, "
            f"shift_div={self.shift_div}" + (", causal=True" if self.causal else "")
        )
