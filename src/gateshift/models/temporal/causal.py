"""Causal GSM, GSF and TSM: no output at frame t depends on a frame after t.

The published modules look one frame ahead: GSM's and GSF's first channel half and TSM's first
channel fold take the NEXT frame, and the gate's 3x3x3 convolution (and GSF's fusion convolution)
is centred on t, so it reads t+1 (GSM arXiv 1912.00381, GSF arXiv 2203.08897, TSM arXiv
1811.08383). ``causal=True`` changes exactly those reads and nothing else, so the parameters,
their shapes, names and initialisation stay the published ones. Per clip of ``T`` frames, with
frames before the clip's first frame taken as zeros (zero padding at the start, as the published
modules zero-pad at the ends)::

    gate       G[t] = tanh(b + sum_k W_k * U[t-2+k]),  k = 0, 1, 2     U = relu(bn(X))
               the published kernel's taps (t-1, t, t+1) read (t-2, t-1, t) instead:
               causal padding, two zero frames before the first, none after
    half 1     S_1[t] = Y_1[t-2]   (S_1[0] = S_1[1] = 0)   took the NEXT frame (t+1) offline
    half 2     S_2[t] = Y_2[t-1]   (S_2[0] = 0)            as published: the PREVIOUS frame
    GSM        Z_k = S_k + R_k,   Y_k = G_k * X_k,  R_k = X_k - Y_k, then the same interleave
    GSF fuse   w_k[t] = sigmoid(channel_conv_k over pooled [S_k, R_k] at t-2, t-1, t), the
               3x3 (channel x time) kernel's time taps read t-2..t (causal padding) instead of
               t-1..t+1; Z_k = w_k * S_k + (1 - w_k) * R_k
    TSM        fold 1 (C/shift_div channels)  takes frame t-2   (offline: t+1)
               fold 2 (next C/shift_div)      takes frame t-1   (as published)
               the rest stays

Why these frames: the half (or fold) that read the future is the only one that must move, and it
moves to t-2 rather than t-1 so that the two halves still bring two different frames, and the
span a module reaches stays three frames (t-2..t), the same span as the gate's kernel, just
ending at t instead of centred on it. The TSM authors' online demo shifts from the past only
too, one fold from t-1; we keep both folds, on two past frames, as GSM keeps both halves.

Batch-norm layers in training mode normalise over all frames of the batch, so causality is a
property of the model in eval mode (inference, streaming); training is the usual offline pass.
TSN has no temporal module, so a causal TSN is the TSN: ``causal=True`` is accepted and changes
nothing. The causal modules always run these plain ops (the fast and native paths of
:mod:`.gsm` are offline only); :mod:`.stream` computes the same outputs one frame at a time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gateshift.models.temporal._gate import GateConv, tap_sum_gate
from gateshift.models.temporal._time import split_time, take_earlier

#: frames back that channel half (or TSM fold) 1 and 2 take their shifted features from
SHIFT_BACK: tuple[int, int] = (2, 1)


def causal_gate(x: Tensor, bn: nn.Module, conv: GateConv, num_segments: int) -> Tensor:
    """``G[t] = tanh(b + sum_k W_k * U[t-2+k])`` as planes ``(N, T, 2, H, W)`` in [-1, 1].

    The 3x3x3 kernel as three 3x3 taps: one grouped 2-D convolution of the frames gives every
    tap's response, and tap ``k`` of frame ``t-2+k`` is summed into frame ``t`` (zeros before the
    clip; the sums as one 1x1 convolution, :func:`._gate.tap_sum_gate`): the conv3d with
    causal padding, in plain 2-D ops (a grouped conv3d with 2 outputs runs a slow generic kernel
    on CPU and in ONNX Runtime), and the sums :mod:`.stream` keeps.
    """
    return tap_sum_gate(x, bn, conv, num_segments, first_tap=-2)  # taps t-2, t-1, t


def causal_shift_halves(y: Tensor) -> list[Tensor]:
    """``S_1[t] = Y_1[t-2]``, ``S_2[t] = Y_2[t-1]`` from ``y`` ``(N, T, 2, C/2, H, W)``."""
    return [take_earlier(y[:, :, k], SHIFT_BACK[k]) for k in (0, 1)]


def causal_fusion_weight(conv: nn.Conv2d, shifted: Tensor, residual: Tensor) -> Tensor:
    """GSF's fusion weight of one half ``(N, T, C'/2, H, W)`` with time taps t-2, t-1, t:
    ``(N, T, C'/2, 1, 1)``."""
    pooled = torch.stack((shifted.mean((-2, -1)), residual.mean((-2, -1))), dim=1)
    image = F.pad(pooled.transpose(2, 3), (2, 0))  # (N, 2, C'/2, 2 + T): zero frames before
    weight = torch.sigmoid(F.conv2d(image, conv.weight, conv.bias, padding=(1, 0)))
    return weight.squeeze(1).transpose(1, 2)[..., None, None]  # (N, 1, C'/2, T) -> (N, T, C'/2)


def causal_temporal_shift(x: Tensor, num_segments: int, shift_div: int = 8) -> Tensor:
    """TSM from the past only on ``(N*T, C, H, W)``: fold 1 from t-2, fold 2 from t-1."""
    fold = x.shape[1] // shift_div
    x5 = split_time(x, num_segments)  # (N, T, C, H, W)
    parts = (
        take_earlier(x5[:, :, :fold], SHIFT_BACK[0]),
        take_earlier(x5[:, :, fold : 2 * fold], SHIFT_BACK[1]),
        x5[:, :, 2 * fold :],
    )
    return torch.cat(parts, dim=2).flatten(0, 1)
