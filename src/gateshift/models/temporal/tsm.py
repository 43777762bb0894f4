"""Temporal Shift Module (TSM), Lin, Gan and Han, ICCV 2019 (arXiv 1811.08383): the baseline.

Parameter-free: of C channels, the first ``C // shift_div`` take the next frame, the following
``C // shift_div`` take the previous frame (zero padded at the clip ends), the rest stay. Used as
the "residual shift": placed before the first convolution of a residual branch, so the identity
path keeps the unshifted features. ``causal=True`` shifts from the past only: fold 1 from t-2,
fold 2 from t-1 (:mod:`.causal`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gateshift.models.temporal._time import clips_in_batch, same_format_as, split_time
from gateshift.models.temporal.causal import causal_temporal_shift


def temporal_shift(x: Tensor, num_segments: int, shift_div: int = 8) -> Tensor:
    """Shift ``(N*T, C, H, W)`` frames as TSM does; returns a new tensor in x's memory format."""
    fold = x.shape[1] // shift_div
    out = torch.empty_like(x)
    x5, o5 = split_time(x, num_segments), split_time(out, num_segments)  # (N, T, C, H, W)
    o5[:, :-1, :fold] = x5[:, 1:, :fold]  # next frame
    o5[:, -1:, :fold] = 0
    o5[:, 1:, fold : 2 * fold] = x5[:, :-1, fold : 2 * fold]  # previous frame
    o5[:, :1, fold : 2 * fold] = 0
    o5[:, :, 2 * fold :] = x5[:, :, 2 * fold :]
    return out


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
