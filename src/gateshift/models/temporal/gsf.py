"""Gate-Shift-Fuse (GSF), Sudhakaran, Escalera and Lanz, TPAMI 2023 (arXiv 2203.08897).

GSF processes only the first ``C' = int(C * ratio / 100)`` channels (rounded up to even); the
rest pass through untouched and are concatenated back. On those C' channels it gates and shifts
like GSM (:mod:`.gsm`, but the gate convolution keeps PyTorch's default initialisation), then
replaces GSM's plain sum with a learned fusion, per channel half ``k``::

    s_k, r_k = spatial means of S_k and R_k                  (N, C'/2, T) each
    w_k = sigmoid(channel_conv_k([s_k, r_k]))                2-channel image over (channel, time)
    Z_k = w_k * S_k + (1 - w_k) * R_k

and interleaves each half as GSM does. ``channel_conv_k`` is a 3x3 Conv2d (2 -> 1, padding 1).
The gate, the split into halves and the shift are GSM's own pieces (:mod:`.gsm`), on the path
:func:`.gsm.choose_path` picks; the fusion is plain tensor ops on every path.
Parameters: 29*C' + 40. A ratio whose C' is not a positive multiple of 4 cannot be interleaved;
the authors' code crashes on it in forward, we refuse it at construction. ``causal=True``: the
gate, the shift and the fusion's time taps read only frames <= t (:mod:`.causal`), plain ops.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gateshift.models.temporal._cache import InferenceCache
from gateshift.models.temporal._fast_gate import NativePlan, fast_gate
from gateshift.models.temporal._gate import make_gate_layers
from gateshift.models.temporal._time import clips_in_batch, same_format_as
from gateshift.models.temporal.causal import causal_fusion_weight, causal_gate
from gateshift.models.temporal.gsm import (
    check_channels,
    choose_path,
    frame_gate,
    gate_and_shift,
    merge_halves,
)


def gsf_channels(channels: int, ratio: float) -> int:
    """Channels GSF processes for a ``ratio`` in percent, as the released code rounds them."""
    processed = int(channels * ratio / 100)
    if processed % 2:
        processed += 1
    return processed


class GateShiftFuse(nn.Module):
    """GSF for one insertion point: ``(N*T, C, H, W)`` -> ``(N*T, C, H, W)``.

    State-dict names follow the authors' code: ``conv3D.*``, ``bn.*`` (C' channels),
    ``channel_conv1.*``, ``channel_conv2.*``.
    """

    def __init__(
        self,
        channels: int,
        num_segments: int = 8,
        *,
        ratio: float = 100.0,
        interleave: bool = True,
        causal: bool = False,
    ) -> None:
        super().__init__()
        if not 0 < ratio <= 100:
            raise ValueError(f"GateShiftFuse ratio is a percentage in (0, 100], got {ratio}")
        processed = gsf_channels(channels, ratio)
        if processed > channels:
            raise ValueError(
                f"GateShiftFuse: ratio {ratio}% of {channels} channels rounds to {processed}, "
                "more than there are; use an even channel count or a smaller ratio"
            )
        try:
            check_channels("GateShiftFuse", processed, interleave)
        except ValueError as err:
            raise ValueError(
                f"GateShiftFuse: ratio {ratio}% of {channels} channels gives {processed} processed "
                f"channels, which cannot be split into interleaved halves ({err}); pick a ratio "
                "that gives a multiple of 4"
            ) from None
        if num_segments < 1:
            raise ValueError(f"GateShiftFuse needs num_segments >= 1, got {num_segments}")
        self.channels = channels
        self.processed = processed
        self.ratio = ratio
        self.num_segments = num_segments
        self.interleave = interleave
        self.causal = causal  # frame t sees frames <= t only (:mod:`.causal`), plain ops
        self.bn, self.conv3D = make_gate_layers(processed, zero_init=False)
        self.channel_conv1 = nn.Conv2d(2, 1, kernel_size=3, padding=1)
        self.channel_conv2 = nn.Conv2d(2, 1, kernel_size=3, padding=1)
        self._plan: InferenceCache[NativePlan] = InferenceCache()  # native path's gate weights

    def _fusion_weight(self, conv: nn.Conv2d, shifted: Tensor, residual: Tensor) -> Tensor:
        """Weight of the shifted part per (clip, frame, channel); one half (N, T, C'/2, H, W)."""
        if self.causal:
            return causal_fusion_weight(conv, shifted, residual)
        pooled = torch.stack((shifted.mean((-2, -1)), residual.mean((-2, -1))), dim=1)
        # (N, 2, T, C'/2) -> image of height C'/2 (channels) and width T (time)
        weight = torch.sigmoid(conv(pooled.transpose(2, 3)))  # (N, 1, C'/2, T)
        return weight.squeeze(1).transpose(1, 2)[..., None, None]  # (N, T, C'/2, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        clips_in_batch(x, self.num_segments, "GateShiftFuse")
        if x.shape[1] != self.channels:
            raise ValueError(f"GateShiftFuse built for {self.channels} channels got {x.shape[1]}")
        c, t = self.processed, self.num_segments
        frames = x[:, :c]
        bn, conv = self.bn, self.conv3D
        path = choose_path(frames, bn, (bn.weight, bn.bias, conv.weight, conv.bias))
        if self.causal:  # the plain ops on every path: the fast ones are offline only
            gate = causal_gate(frames, bn, conv, t)
        elif path == "reference":
            gate = frame_gate(frames, bn, conv, t)
        else:
            gate = fast_gate(frames, bn, conv, t, path, self._plan)
        # per half (N, T, C'/2, H, W)
        shifted, residual = gate_and_shift(frames, gate, t, causal=self.causal)
        fused = []
        for s, r, conv_k in zip(
            shifted, residual, (self.channel_conv1, self.channel_conv2), strict=True
        ):
            w = self._fusion_weight(conv_k, s, r).to(x.dtype)
            fused.append(r + w * (s - r))
        z = merge_halves(torch.stack(fused, dim=2), self.interleave)  # (N*T, C', H, W)
        if c < self.channels:
            z = torch.cat((z, x[:, c:]), dim=1)
        return same_format_as(z, x)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, processed={self.processed} ({self.ratio}%), "
            f"num_segments={self.num_segments}, interleave={self.interleave}"
            + (", causal=True" if self.causal else "")
        )
