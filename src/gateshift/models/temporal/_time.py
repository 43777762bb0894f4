"""Folding and unfolding time: the only place that knows how a batch of frames maps to clips.

A 2D backbone sees a batch of frames ``(N*T, C, H, W)`` where the frames of one clip are
consecutive (clip-major, as the recognizer flattens ``(N, T, C, H, W)``). Every temporal module
goes through these helpers so that the convention lives in one file.

Splitting the leading dimension is a view for any memory format (it is the outermost dimension),
so nothing here copies: a channels_last batch stays channels_last.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def clips_in_batch(x: Tensor, num_segments: int, who: str) -> int:
    """Number of clips ``N`` in a ``(N*T, C, H, W)`` batch; a clear error when it does not fold."""
    if x.dim() != 4:
        raise ValueError(f"{who} expects a 4-D (N*T, C, H, W) tensor, got shape {tuple(x.shape)}")
    frames = x.shape[0]
    if frames % num_segments != 0:
        raise ValueError(
            f"{who}: a batch of {frames} frames is not a multiple of num_segments={num_segments}; "
            "the input must hold whole clips of num_segments frames each"
        )
    return frames // num_segments


def split_time(x: Tensor, num_segments: int) -> Tensor:
    """``(N*T, *rest)`` -> ``(N, T, *rest)`` as a view."""
    return x.view(-1, num_segments, *x.shape[1:])


def _time_pad(x: Tensor, before: int, after: int) -> list[int]:
    """``F.pad``'s argument that pads dimension 1 (time) of ``x`` and nothing else."""
    return [0, 0] * (x.dim() - 2) + [before, after]


# The zero frames are a constant pad (one ONNX ``Pad``), not a concatenation with zeros: an
# exported ``zeros_like`` becomes Shape + Expand + Concat per use, three ops where one does.


def take_next(x: Tensor) -> Tensor:
    """Frame t receives frame t+1, the last frame zeros; ``x`` is ``(N, T, ...)``."""
    return F.pad(x[:, 1:], _time_pad(x, 0, 1))


def take_previous(x: Tensor) -> Tensor:
    """Frame t receives frame t-1, the first frame zeros; ``x`` is ``(N, T, ...)``."""
    return F.pad(x[:, :-1], _time_pad(x, 1, 0))


def take_earlier(x: Tensor, steps: int) -> Tensor:
    """Frame t receives frame t-steps, the first ``steps`` frames zeros; ``x`` is ``(N, T, ...)``.

    The causal modules' shift (:mod:`.causal`); ``steps=1`` is :func:`take_previous`.
    """
    keep = max(x.shape[1] - steps, 0)
    return F.pad(x[:, :keep], _time_pad(x, x.shape[1] - keep, 0))


def tracing() -> bool:
    """True under torch.export / torch.compile / jit tracing, where plain ops trace best."""
    return bool(torch.compiler.is_compiling() or torch.jit.is_tracing())


def memory_format_of(like: Tensor) -> torch.memory_format:
    """``channels_last`` for a 4-D channels_last tensor, else ``contiguous_format``."""
    # a tensor that is both (1x1 maps, one channel) counts as contiguous
    channels_last = like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last)
    if channels_last and not like.is_contiguous():
        return torch.channels_last
    return torch.contiguous_format


def same_format_as(y: Tensor, like: Tensor) -> Tensor:
    """``y`` in ``like``'s memory format (channels_last or contiguous), copied only if needed."""
    fmt = memory_format_of(like)
    return y.contiguous(memory_format=fmt if y.dim() == 4 else torch.contiguous_format)
