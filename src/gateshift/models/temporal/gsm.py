"""Gate-Shift Module (GSM), Sudhakaran, Escalera and Lanz, CVPR 2020 (arXiv 1912.00381).

The definition, for the frames ``X`` of one insertion point (``C`` channels, ``T`` frames per
clip, viewed as a clip ``(N, C, T, H, W)``)::

    G = tanh(conv3d(relu(bn3d(X))))     conv3d: C -> 2 planes, 3x3x3, padding 1, groups 2
    Y_k = G_k * X_k,   R_k = X_k - Y_k                 k = 1, 2 (channel halves, plane k)
    S_1[t] = Y_1[t+1], S_1[T-1] = 0                    half 1 takes the next frame
    S_2[t] = Y_2[t-1], S_2[0]   = 0                    half 2 takes the previous frame
    Z_k = S_k + R_k

then, as in the authors' released code (not in the paper), the C/2 channels of each half are
interleaved: viewed as (2, C/4), transposed, flattened, so new channel ``2b + a`` holds old
channel ``a*C/4 + b``. The gate starts at zero, so a new GSM is that fixed permutation.
``interleave=False`` drops it (for training from ImageNet weights); keep it on to load the
authors' checkpoints. The first half of this file is that definition as plain tensor ops
(:func:`spatiotemporal_gate`, :func:`gated_shift`, and :func:`frame_gate`, the gate's per-frame
form that tracing and export use); GSF (:mod:`.gsf`) reuses its pieces.
``causal=True`` builds the causal GSM of :mod:`.causal` (both halves shift from the past, the
gate's kernel reads t-2..t), always on the plain ops.

The same maths runs on one of four paths, chosen in one place, :func:`choose_path`:

==============  ======================================================================
``reference``   under torch.export / torch.compile / jit tracing: the plain ops below,
                which trace and export best (the gate as per-frame 2-D taps,
                :func:`frame_gate`; ONNX gets the definition in plain ops)
``autograd``    while autograd records (training): the fast eager ops of
                :mod:`._fast_gate` and :mod:`._fast_shift`, the shift as one autograd
                function with a closed-form backward
``eager``       no autograd graph but no native kernels (GPU, float64, kernels off):
                the same fast eager ops without the autograd function
``native``      CPU inference in float32 / bfloat16 with an eval BatchNorm: the gate's
                BN + ReLU, its sums + tanh and the shift as C++ loops (:mod:`._native`)
==============  ======================================================================

After a plain convolution (every published placement) :meth:`GateShift.forward_after` also
folds the interleave into that convolution (see :mod:`._fast_shift`); a path that cannot take a
tensor it is given (an odd layout, say) computes that step with the eager ops.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gateshift.models.temporal import _native
from gateshift.models.temporal._cache import InferenceCache
from gateshift.models.temporal._fast_gate import (
    NativePlan,
    eval_batch_norm,
    fast_gate,
    fold_gather_index,
)
from gateshift.models.temporal._fast_shift import (
    FoldedWeights,
    fast_gated_shift,
    fold_interleave,
    interleave_source,
)
from gateshift.models.temporal._gate import (
    GateConv,
    conv3d_from_taps,
    make_gate_layers,
    tap_sum_gate,
)
from gateshift.models.temporal._time import (
    clips_in_batch,
    same_format_as,
    split_time,
    take_next,
    take_previous,
    tracing,
)
from gateshift.models.temporal.causal import causal_gate, causal_shift_halves

# ---------------------------------------------------------------- the definition, plain ops


def spatiotemporal_gate(x: Tensor, bn: nn.Module, conv: GateConv, num_segments: int) -> Tensor:
    """``G = tanh(conv3d(relu(bn3d(X))))`` as planes ``(N, T, 2, H, W)`` in [-1, 1].

    ``bn3d`` over ``(N, T, H, W)`` is ``bn`` (a BatchNorm2d) over the frames: same statistics.
    """
    u = F.relu(bn(x))  # (N*T, C, H, W)
    clip = split_time(u, num_segments).transpose(1, 2)  # (N, C, T, H, W)
    g = F.conv3d(clip, conv3d_from_taps(conv.weight), conv.bias, padding=1, groups=2)
    return torch.tanh(g).transpose(1, 2)  # (N, 2, T, H, W) -> (N, T, 2, H, W)


def frame_gate(x: Tensor, bn: nn.Module, conv: GateConv, num_segments: int) -> Tensor:
    """:func:`spatiotemporal_gate` computed frame by frame, as the traced/exported path runs it.

    The 3x3x3 kernel is three 3x3 taps; one grouped 3x3 convolution of the frames gives every
    tap's response, and tap ``k`` of frame ``t + k - 1`` is summed into frame ``t`` (zero outside
    the clip). Same sums in another order (float rounding only), but no 5-D tensor and no
    transpose to ``(N, C, T, H, W)``: ONNX Runtime runs a grouped 3-D convolution with 2 outputs
    on a slow generic kernel (a third of a MobileNetV2 GSM's int8 latency), a 2-D one fast.
    The sums over time are a 1x1 convolution of each clip's ``6T`` tap maps (viewed as channels)
    with a fixed 0/1 weight (:func:`._gate.tap_sum_gate`): in a graph, one op instead of the slices,
    zero frames and adds that picking the taps out one by one exports to.
    """
    return tap_sum_gate(x, bn, conv, num_segments, first_tap=-1)  # taps t-1, t, t+1


def _gated_halves(x: Tensor, gate: Tensor, num_segments: int) -> tuple[Tensor, Tensor]:
    """``Y = G * X`` and ``R = X - Y`` by halves ``(N, T, 2, C/2, H, W)`` for frames
    ``x`` ``(N*T, C, H, W)`` and gate planes ``(N, T, 2, H, W)``. ``R`` is computed as
    ``(1 - G) * X`` (the same in exact arithmetic): a product with the small gate planes, which
    int8 exports quantise, where a difference of two full tensors stays float."""
    c = x.shape[1]
    xg = split_time(x, num_segments).unflatten(2, (2, c // 2))  # (N, T, 2, C/2, H, W)
    g = gate.to(x.dtype).unsqueeze(3)
    return xg * g, xg * (1 - g)


def gate_and_shift(
    x: Tensor, gate: Tensor, num_segments: int, *, causal: bool = False
) -> tuple[list[Tensor], list[Tensor]]:
    """The shifted parts ``S_k`` and residuals ``R_k`` of both halves, each ``(N, T, C/2, H, W)``,
    for frames ``x`` ``(N*T, C, H, W)`` and gate planes ``(N, T, 2, H, W)``; ``causal``: both
    halves shift from the past (:mod:`.causal`)."""
    y, residual = _gated_halves(x, gate, num_segments)
    if causal:
        shifted = causal_shift_halves(y)
    else:
        shifted = [take_next(y[:, :, 0]), take_previous(y[:, :, 1])]
    return shifted, [residual[:, :, 0], residual[:, :, 1]]


def merge_halves(z: Tensor, interleave: bool) -> Tensor:
    """``(N, T, 2, C/2, H, W)`` -> frames ``(N*T, C, H, W)``, interleaving each half if asked."""
    n, t, _, half, h, w = z.shape
    if interleave:
        z = z.unflatten(3, (2, half // 2)).transpose(3, 4)  # (N, T, 2, C/4, 2, H, W)
    return z.reshape(n * t, 2 * half, h, w)


def gated_shift(
    x: Tensor, gate: Tensor, num_segments: int, interleave: bool, *, causal: bool = False
) -> Tensor:
    """``Z`` from frames ``X`` ``(N*T, C, H, W)`` and gate ``G`` ``(N, T, 2, H, W)``, in ``x``'s
    memory format."""
    y, residual = _gated_halves(x, gate, num_segments)
    if causal:
        shifted = torch.stack(causal_shift_halves(y), dim=2)
    else:  # the halves kept as length-1 slices: no gather per half in a graph
        shifted = torch.cat((take_next(y[:, :, :1]), take_previous(y[:, :, 1:])), dim=2)
    return same_format_as(merge_halves(shifted + residual, interleave), x)


# ---------------------------------------------------------------- which path runs

Path = Literal["reference", "autograd", "eager", "native"]


def choose_path(x: Tensor, bn: nn.Module, params: tuple[Tensor, ...]) -> Path:
    """The one place that decides how GSM and GSF compute frames ``x`` (see the table above).

    ``bn`` is the gate's BatchNorm, ``params`` the module's parameters: autograd records when
    ``x`` or any of them requires a gradient.
    """
    if tracing():
        return "reference"
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        return "autograd"
    if eval_batch_norm(bn) and _native.takes(x):
        return "native"
    return "eager"


def check_channels(who: str, channels: int, interleave: bool) -> None:
    """GSM/GSF split channels into two halves, and the interleave splits each half in two."""
    multiple = 4 if interleave else 2
    if channels <= 0 or channels % multiple != 0:
        raise ValueError(
            f"{who} needs a channel count that is a positive multiple of {multiple} "
            f"({'two halves, each interleaved in pairs' if interleave else 'two halves'}), "
            f"got {channels}"
        )


# ---------------------------------------------------------------- the module


class GateShift(nn.Module):
    """GSM for one insertion point: ``(N*T, C, H, W)`` -> ``(N*T, C, H, W)``.

    State-dict names follow the authors' code: ``conv3D.weight (2, C/2, 3, 3, 3)``,
    ``conv3D.bias (2)``, ``bn.*`` (C channels). 29*C + 2 parameters.
    """

    source: Tensor | None
    fold_order: Tensor | None

    def __init__(
        self, channels: int, num_segments: int = 8, *, interleave: bool = True, causal: bool = False
    ) -> None:
        super().__init__()
        check_channels("GateShift", channels, interleave)
        if num_segments < 1:
            raise ValueError(f"GateShift needs num_segments >= 1, got {num_segments}")
        self.channels = channels
        self.num_segments = num_segments
        self.interleave = interleave
        self.causal = causal  # frame t sees frames <= t only (:mod:`.causal`), plain ops
        self.bn, self.conv3D = make_gate_layers(channels, zero_init=True)
        # the interleave's channel order, read by a convolution that folds it (forward_after)
        source = interleave_source(channels) if interleave else None
        half = channels // 2
        order = None if source is None else fold_gather_index(half, source[:half])
        self.register_buffer("source", source, persistent=False)
        self.register_buffer("fold_order", order, persistent=False)  # gate weights in that order
        # inference only: the folded convolution's weights and the native kernels' weights
        self._folded: InferenceCache[FoldedWeights] = InferenceCache()
        self._plan: InferenceCache[NativePlan] = InferenceCache()

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        if self.causal:  # the plain ops on every path: the fast ones are offline only
            gate = causal_gate(x, self.bn, self.conv3D, self.num_segments)
            return gated_shift(x, gate, self.num_segments, self.interleave, causal=True)
        path = choose_path(x, self.bn, self._params())
        if path == "reference":
            gate = frame_gate(x, self.bn, self.conv3D, self.num_segments)
            return gated_shift(x, gate, self.num_segments, self.interleave)
        return self._fast(x, path, folded=False, own_input=False)

    def forward_after(self, layer: nn.Module, x: Tensor) -> Tensor:
        """``self(layer(x))``; after a plain convolution the interleave is folded into it and
        the result is written into the convolution's own output. Same maths, same outputs."""
        if not self._can_follow(layer):
            out: Tensor = self(layer(x))
            return out
        assert isinstance(layer, nn.Conv2d)
        if self.source is None:
            frames = layer(x)
        else:  # channels come out in interleave order, see _fast_shift.fold_interleave
            weight, bias = fold_interleave(layer, self.source, self._folded)
            frames = layer._conv_forward(x, weight, bias)
        self._check(frames)
        path = choose_path(frames, self.bn, self._params())
        return self._fast(frames, path, folded=self.source is not None, own_input=True)

    def _fast(self, frames: Tensor, path: Path, *, folded: bool, own_input: bool) -> Tensor:
        """GSM on the fast paths. ``folded``: ``frames`` hold channel ``source[j]`` at ``j``;
        ``own_input``: ``frames`` is this call's own convolution output, free to overwrite."""
        index, order = (self.source, self.fold_order) if folded else (None, None)
        gate = fast_gate(
            frames, self.bn, self.conv3D, self.num_segments, path, self._plan, index, order
        )
        interleave = self.interleave and not folded
        return fast_gated_shift(
            frames, gate, self.num_segments, path, interleave=interleave, in_place=own_input
        )

    def _params(self) -> tuple[Tensor, ...]:
        bn, conv = self.bn, self.conv3D
        return tuple(p for p in (bn.weight, bn.bias, conv.weight, conv.bias) if p is not None)

    def _check(self, x: Tensor) -> None:
        clips_in_batch(x, self.num_segments, "GateShift")
        if x.shape[1] != self.channels:
            raise ValueError(f"GateShift built for {self.channels} channels got {x.shape[1]}")

    def _can_follow(self, layer: nn.Module) -> bool:
        """Whether :meth:`forward_after` may fold into ``layer`` and reuse its output."""
        return (
            not self.causal
            and type(layer) is nn.Conv2d
            and layer.groups == 1
            and layer.out_channels == self.channels
            and type(self.bn) is nn.BatchNorm2d
            and not (layer._forward_hooks or layer._forward_pre_hooks)  # hooks must see layer(x)
            and not (self._forward_hooks or self._forward_pre_hooks)  # and self's input
            and not tracing()
        )

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, num_segments={self.num_segments}, "
            f"interleave={self.interleave}" + (", causal=True" if self.causal else "")
        )
