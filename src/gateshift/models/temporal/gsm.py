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

The interleave is a fixed permutation of channels inside each half, and everything else GSM
does is per channel or per half. So ``interleave(GSM(X)) = GSM'(X[src])`` where ``src`` is the
interleave's source index and ``GSM'`` is GSM without the interleave, with the gate's BN
parameters and conv input channels taken in ``src`` order. When GSM sits right after a plain
convolution (every published placement), ``X[src]`` costs nothing: it is the convolution with its
output channels (weight rows, bias) taken in ``src`` order. :meth:`GateShift.forward_after` runs
conv + GSM that way, which spares the strided interleaved write (in channels_last the strided
write made the gated shift 3x slower in fp32 and 3.4x in bf16). Weights stay stored in the
published layout; only the forward indexes them.

Inference on CPU (no autograd graph, no interleave left, float32/bfloat16) runs the gated shift
as one fused C++ pass (:mod:`._native`, built on first use) instead of the two eager passes,
after a convolution in place in that convolution's output; the gate's BN + ReLU and its sums
are fused the same way (:mod:`._gate`). Where that is unavailable the eager ops run, with the
same maths.

Under tracing / export the same maths runs as plain differentiable tensor ops
(:func:`gated_shift_reference`), which is also what the tests compare against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

from gateshift.models.temporal import _native
from gateshift.models.temporal._cache import InferenceCache
from gateshift.models.temporal._gate import (
    batch_norm_affine,
    batch_norm_state,
    eval_batch_norm,
    fold_gather_index,
    gate_from_taps,
    gate_input,
    make_gate_layers,
    spatiotemporal_gate,
    tracing,
)
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


def interleave_source(channels: int) -> Tensor:
    """``src`` with ``interleaved[:, j] = plain[:, src[j]]`` (channel ``2b + a`` of a half holds
    channel ``a*C/4 + b`` of the same half)."""
    quarter = channels // 4
    half = torch.arange(2 * quarter).view(2, quarter).t().reshape(-1)  # 2b + a -> a*C/4 + b
    return torch.cat((half, half + 2 * quarter))


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


def _gated_shift_forward(x: Tensor, gate: Tensor, num_segments: int, interleave: bool) -> Tensor:
    """The fused forward: two passes over memory, interleaved output written in place.

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


class _GatedShift(torch.autograd.Function):
    """Fused ``Z = shift(G*X) + X - G*X`` (+ interleave) with hand-written gradients."""

    @staticmethod
    def forward(
        ctx: FunctionCtx, x: Tensor, gate: Tensor, num_segments: int, interleave: bool
    ) -> Tensor:
        out = _gated_shift_forward(x, gate, num_segments, interleave)
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


def gated_shift(
    x: Tensor, gate: Tensor, num_segments: int, interleave: bool, *, reuse_input: bool = False
) -> Tensor:
    """``(N*T, C, H, W)`` frames and ``(N, T, 2, H, W)`` gate -> ``(N*T, C, H, W)``.

    ``reuse_input`` lets the fused inference kernel write the result into ``x`` (for frames
    that nothing else holds); the result may or may not be ``x``.
    """
    if tracing():
        return gated_shift_reference(x, gate, num_segments, interleave)
    if not (torch.is_grad_enabled() and (x.requires_grad or gate.requires_grad)):
        # no autograd graph: the fused C++ pass where it applies, else the eager ops
        fused = (
            None if interleave else _native.gated_shift(x, gate, num_segments, inplace=reuse_input)
        )
        if fused is not None:
            return fused
        return _gated_shift_forward(x, gate, num_segments, interleave)
    out: Tensor = _GatedShift.apply(x, gate, num_segments, interleave)
    return out


class GateShift(nn.Module):
    """GSM for one insertion point: ``(N*T, C, H, W)`` -> ``(N*T, C, H, W)``.

    State-dict names follow the authors' code: ``conv3D.weight (2, C/2, 3, 3, 3)``,
    ``conv3D.bias (2)``, ``bn.*`` (C channels). 29*C + 2 parameters.
    """

    source: Tensor | None
    fold_order: Tensor | None

    def __init__(self, channels: int, num_segments: int = 8, *, interleave: bool = True) -> None:
        super().__init__()
        check_channels("GateShift", channels, interleave)
        if num_segments < 1:
            raise ValueError(f"GateShift needs num_segments >= 1, got {num_segments}")
        self.channels = channels
        self.num_segments = num_segments
        self.interleave = interleave
        self.bn, self.conv3D = make_gate_layers(channels, zero_init=True)

        # channel order of the interleave and the fold weights that read it (see forward_after)
        source = interleave_source(channels) if interleave else None
        order = (
            None if source is None else fold_gather_index(channels // 2, source[: channels // 2])
        )
        self.register_buffer("source", source, persistent=False)
        self.register_buffer("fold_order", order, persistent=False)
        # inference only: the folded conv weights and the gate BN as scale and shift
        self._folded_cache: InferenceCache[tuple[Tensor, Tensor | None]] = InferenceCache()
        self._affine_cache: InferenceCache[tuple[Tensor, Tensor]] = InferenceCache()
        self._fused_cache: InferenceCache[tuple[Tensor, Tensor, Tensor, Tensor]] = InferenceCache()

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        gate = spatiotemporal_gate(x, self.bn, self.conv3D, self.num_segments, self._affine_cache)
        return gated_shift(x, gate, self.num_segments, self.interleave)

    def _check(self, x: Tensor) -> None:
        clips_in_batch(x, self.num_segments, "GateShift")
        if x.shape[1] != self.channels:
            raise ValueError(f"GateShift built for {self.channels} channels got {x.shape[1]}")

    def forward_after(self, layer: nn.Module, x: Tensor) -> Tensor:
        """``self(layer(x))``, computed with the interleave folded into ``layer`` when it is a
        plain convolution (see the module docstring); same maths, same outputs."""
        if not self._can_fold(layer):
            out: Tensor = self(layer(x))
            return out
        assert isinstance(layer, nn.Conv2d) and isinstance(self.bn, nn.BatchNorm2d)
        src, fold_order = self.source, self.fold_order
        assert src is not None and fold_order is not None  # set whenever interleave is on
        weight, bias = self._folded_conv(layer, src)
        frames = layer._conv_forward(x, weight, bias)  # channels in interleaved order
        self._check(frames)
        fused = self._fused_gate_and_shift(frames)
        if fused is not None:
            return fused
        u = gate_input(frames, self.bn, self._affine_cache, index=src)
        # fold_order reads the gate conv's input channels in interleave order
        conv = self.conv3D
        gate = gate_from_taps(u, conv.weight, conv.bias, self.num_segments, fold_order, conv.cache)
        # frames is this call's own conv output: the kernel may overwrite it
        return gated_shift(frames, gate, self.num_segments, interleave=False, reuse_input=True)

    def _fused_gate_and_shift(self, frames: Tensor) -> Tensor | None:
        """The rest of :meth:`forward_after` in CPU inference: BN + ReLU, the gate's 1x1 conv,
        its sums + tanh and the gated shift (in place, into ``frames``, this call's own conv
        output) as one conv and three C++ passes, with every derived weight kept in one cache.
        The same steps as the general path, without its per-step checks; None where the
        kernels cannot run."""
        bn, conv = self.bn, self.conv3D
        if torch.is_grad_enabled() or not eval_batch_norm(bn, frames):
            return None
        channels_last = _native.layout(frames)
        module = None if channels_last is None else _native.native_module()
        if module is None:
            return None
        src, fold_order = self.source, self.fold_order
        assert isinstance(bn, nn.BatchNorm2d) and src is not None and fold_order is not None
        tensors = [*batch_norm_state(bn), conv.weight, conv.bias, src, fold_order]

        def plan() -> tuple[Tensor, Tensor, Tensor, Tensor]:
            scale, shift = batch_norm_affine(bn, src)
            taps = conv.weight.flatten().index_select(0, fold_order)
            weight = taps.view(54, self.channels // 2, 1, 1).to(frames.dtype)
            return scale, shift, weight, conv.bias.detach().float().contiguous()

        scale, shift, weight, bias = self._fused_cache.get(tensors, (bn.eps, frames.dtype), plan)
        u = module.affine_relu(frames, scale, shift, channels_last)
        maps = F.conv2d(u, weight, None, groups=2)  # (N*T, 54, H, W)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        if maps.dtype != frames.dtype or not maps.is_contiguous(memory_format=fmt):
            return None  # not seen; the general path copes with any layout
        planes = module.gate_fold(maps, bias, self.num_segments, channels_last)
        module.gated_shift_(frames, planes, self.num_segments, channels_last)
        return frames

    def _folded_conv(self, layer: nn.Conv2d, src: Tensor) -> tuple[Tensor, Tensor | None]:
        """``layer``'s weight and bias with output channels in ``src`` order.

        Without autograd (inference) the result is kept until the weights change (their version
        counter, storage, dtype or device), so a ResNet-50 does not copy its 20 MB of conv3
        weights on every forward; with autograd it is indexed afresh so gradients flow.
        """
        params = (layer.weight,) if layer.bias is None else (layer.weight, layer.bias)

        def fold() -> tuple[Tensor, Tensor | None]:
            weight = same_format_as(layer.weight.index_select(0, src), layer.weight)
            bias = None if layer.bias is None else layer.bias.index_select(0, src)
            return weight, bias

        return self._folded_cache.get((*params, src), None, fold)

    def _can_fold(self, layer: nn.Module) -> bool:
        return (
            self.interleave
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
            f"interleave={self.interleave}"
        )
