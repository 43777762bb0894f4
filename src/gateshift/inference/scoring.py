"""Scores of videos from their views: the papers' test protocol, and top-k classes.

A video is seen through K views (``num_clips`` clips x ``num_crops`` crops); its score is the
mean of the K views' logits, before any softmax (the authors' test code does the same). Views
go through the network in chunks of whole videos, at most :data:`MAX_FRAMES_PER_FORWARD` frames
a call, so a 2-clip x 10-crop test of a large batch fits in memory. Everything here works on
logits from any :class:`~gateshift.inference.network.Network`, whatever runs it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gateshift.inference.network import Network

MAX_FRAMES_PER_FORWARD = 256  # views of a batch are chunked so 10-crop x 2-clip tests fit


def score_views(
    network: Network, clips: Tensor, *, max_frames: int = MAX_FRAMES_PER_FORWARD
) -> Tensor:
    """``(N, K, T, C, H, W)`` views -> ``(N, classes)`` float32 mean logits on the CPU."""
    k, t = clips.shape[1:3]
    per_chunk = max(1, max_frames // (k * t))  # whole videos per network call
    out = []
    with torch.inference_mode():
        for chunk in clips.split(per_chunk):
            logits = network(chunk.flatten(0, 1))  # (n*K, T, C, H, W) -> (n*K, classes)
            out.append(logits.float().view(chunk.shape[0], k, -1).mean(1).cpu())
    return torch.cat(out)


TopClasses = list[list[tuple[str, int, float]]]  # per label set: (name, index, probability)


def top_classes(logits: Tensor, classes: Sequence[Sequence[str]], k: int) -> TopClasses:
    """The ``k`` most likely classes of one video's ``(classes,)`` logits, per label set (one
    for most datasets, verb and noun for EPIC), each with its softmax probability."""
    if k < 1:
        raise ValueError("top_k must be >= 1")
    heads = torch.split(logits, [len(names) for names in classes])
    top = []
    for names, head in zip(classes, heads, strict=True):
        probs = head.softmax(0)
        best = probs.topk(min(k, probs.shape[0]))
        pairs = zip(best.values, best.indices, strict=True)
        top.append([(names[int(i)], int(i), float(p)) for p, i in pairs])
    return top
