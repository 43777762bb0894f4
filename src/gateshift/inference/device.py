"""Where a model runs: the device a preference names, and the one place that puts a model on it
in channels_last or contiguous (NCHW) memory format.

channels_last gives the same outputs as NCHW and, on CPU, about twice the speed of the 2D
convolutions (see benchmarks/model_overhead.py); training, evaluation, prediction, ``load_model``
and profiling all choose it through :func:`place_model`.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def resolve_device(
    preference: str, local_rank: int = 0, *, what: str = "train.device"
) -> torch.device:
    """``auto`` picks CUDA (this process's local GPU), then MPS, then CPU; ``cuda`` without an
    index means the local GPU. ``what`` names the setting in error messages."""
    if preference == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(preference)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{what}={preference!r} but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank % torch.cuda.device_count())
    return device


def place_model(model: M, *, device: str | torch.device, channels_last: bool) -> M:
    """Move ``model`` to ``device`` in channels_last (4-D weights) or contiguous memory format,
    in one ``.to()``: one copy of each weight, not two."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(device, memory_format=fmt)  # type: ignore[call-overload]
