"""Slow reference implementations written from the published definitions (loops, 5-D Conv3d).

They follow the papers' definitions literally. GSM (Sudhakaran, Escalera, Lanz, CVPR 2020,
arXiv 1912.00381, Sec. 3): the clip is viewed as (N, C, T, H, W); the gate is tanh of a real
grouped 3x3x3 Conv3d (one gate per channel half) after BatchNorm3d + ReLU; each half's gated
features move one frame (the first half takes the next frame, the second the previous; zeros
past the clip's ends) and the residual ``x - gate * x`` is added back. GSF (arXiv 2203.08897)
gates and shifts a leading fraction of the channels, then fuses the shifted and residual parts
of each half with sigmoid weights from a 2D conv over their spatially averaged (channel, time)
maps. TSM (Lin, Gan, Han, ICCV 2019, arXiv 1811.08383) moves 1/shift_div of the channels each
way. The interleave (the channel order of the released GSM code) is applied channel by channel,
and every channel and frame is handled in a Python loop. Nothing here is fast on purpose.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _bn3d(x5: Tensor, bn: nn.BatchNorm2d, training: bool) -> Tensor:
    """BatchNorm3d over (N, C, T, H, W) with the module's parameters and (copied) statistics."""
    assert bn.running_mean is not None and bn.running_var is not None
    return F.batch_norm(
        x5,
        bn.running_mean.clone(),
        bn.running_var.clone(),
        bn.weight,
        bn.bias,
        training=training,
        momentum=bn.momentum or 0.1,
        eps=bn.eps,
    )


def reference_gate(x: Tensor, module: nn.Module, t: int, training: bool) -> Tensor:
    """(N*T, C, H, W) -> gate (N, 2, T, H, W) = tanh(conv3d(relu(bn3d(x)))).

    The Conv3d weights are taken from the module's state dict, i.e. in the published layout.
    """
    state = module.state_dict()
    weight, bias = state["conv3D.weight"], state["conv3D.bias"]
    assert weight.dim() == 5
    nt, c, h, w = x.shape
    x5 = x.reshape(nt // t, t, c, h, w).permute(0, 2, 1, 3, 4)  # (N, C, T, H, W)
    hidden = F.relu(_bn3d(x5, module.bn, training))
    return torch.tanh(F.conv3d(hidden, weight, bias, padding=1, groups=2))


def interleave_index(c: int) -> list[int]:
    """new channel 2b + a of each half holds old channel a*C/4 + b: returns old index per new."""
    half, quarter = c // 2, c // 4
    order = []
    for g in range(2):
        for new in range(half):
            b, a = divmod(new, 2)
            order.append(g * half + a * quarter + b)
    return order


def _gated_shift_loops(x5: Tensor, gate: Tensor) -> tuple[Tensor, Tensor]:
    """Per channel and frame: shifted part S and residual R, both (N, C, T, H, W)."""
    c, t = x5.shape[1:3]
    shifted = torch.zeros_like(x5)
    residual = torch.zeros_like(x5)
    for ch in range(c):
        g = 0 if ch < c // 2 else 1
        for f in range(t):
            y = gate[:, g, f] * x5[:, ch, f]
            residual[:, ch, f] = x5[:, ch, f] - y
            src = f + 1 if g == 0 else f - 1  # half 1 takes the next frame, half 2 the previous
            if 0 <= src < t:
                shifted[:, ch, f] = gate[:, g, src] * x5[:, ch, src]
    return shifted, residual


def _to_frames(z5: Tensor, interleave: bool) -> Tensor:
    n, c, t, h, w = z5.shape
    if interleave:
        z5 = z5[:, interleave_index(c)]
    return z5.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)


def reference_gsm(module: nn.Module, x: Tensor, training: bool = False) -> Tensor:
    t = module.num_segments
    nt, c, h, w = x.shape
    x5 = x.reshape(nt // t, t, c, h, w).permute(0, 2, 1, 3, 4)
    gate = reference_gate(x, module, t, training)
    shifted, residual = _gated_shift_loops(x5, gate)
    return _to_frames(shifted + residual, module.interleave)


def reference_gsf(module: nn.Module, x: Tensor, training: bool = False) -> Tensor:
    t, cp = module.num_segments, module.processed
    nt, _, h, w = x.shape
    part = x[:, :cp]
    x5 = part.reshape(nt // t, t, cp, h, w).permute(0, 2, 1, 3, 4)  # (N, C', T, H, W)
    gate = reference_gate(part, module, t, training)
    shifted, residual = _gated_shift_loops(x5, gate)
    fused = torch.zeros_like(x5)
    for k, conv in enumerate((module.channel_conv1, module.channel_conv2)):
        chans = slice(k * cp // 2, (k + 1) * cp // 2)
        s_mean = shifted[:, chans].mean(dim=(3, 4))  # (N, C'/2, T)
        r_mean = residual[:, chans].mean(dim=(3, 4))
        image = torch.stack((s_mean, r_mean), dim=1)  # (N, 2, C'/2, T)
        weight = torch.sigmoid(F.conv2d(image, conv.weight, conv.bias, padding=1))[:, 0]
        weight = weight[..., None, None]  # (N, C'/2, T, 1, 1)
        fused[:, chans] = weight * shifted[:, chans] + (1 - weight) * residual[:, chans]
    out = _to_frames(fused, module.interleave)
    return torch.cat((out, x[:, cp:]), dim=1)


def reference_tsm(x: Tensor, t: int, shift_div: int) -> Tensor:
    nt, c, h, w = x.shape
    fold = c // shift_div
    x5 = x.reshape(nt // t, t, c, h, w)
    out = torch.zeros_like(x5)
    for ch in range(c):
        for f in range(t):
            if ch < fold:
                src = f + 1
            elif ch < 2 * fold:
                src = f - 1
            else:
                src = f
            if 0 <= src < t:
                out[:, f, ch] = x5[:, src, ch]
    return out.reshape(nt, c, h, w)
