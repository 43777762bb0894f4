"""Helpers the temporal-module tests share: non-trivial parameters and seeded frames."""

from __future__ import annotations

import torch
from torch import nn


def randomise(module: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial parameters and BN statistics so every term of the maths matters."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
    return module


def random_frames(
    n: int, t: int, c: int, hw: int = 5, *, channels_last: bool = False
) -> torch.Tensor:
    x = torch.randn(n * t, c, hw, hw + 1, generator=torch.Generator().manual_seed(1))
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x
