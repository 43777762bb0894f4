"""Video-level scores: run a model over a loader, average the views, gather across processes.

Every video contributes ``K`` views (clips x crops); its score is the mean of their logits, the
authors' test protocol (before softmax). In a distributed run each process scores its share and
the shares are gathered on every process, ordered by dataset index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from gateshift.data.datasets import Batch
from gateshift.engine.build import autocast
from gateshift.engine.distributed import DistContext, all_gather_cat

log = logging.getLogger(__name__)

MAX_FRAMES_PER_FORWARD = 256  # views of a batch are chunked so 10-crop x 2-clip tests fit


@dataclass
class Scores:
    scores: Tensor  # (N, K) float32 logits averaged over views
    labels: Tensor  # (N, L) int64
    indices: Tensor  # (N,) dataset indices
    bad: list[tuple[str, str]]

    def save(
        self, path: str, *, video_ids: list[str], classes: list[list[str]], model: str
    ) -> None:
        """``.npz`` with scores, labels, video ids, class names: what ``ensemble`` fuses."""
        np.savez_compressed(
            path,
            scores=self.scores.numpy(),
            labels=self.labels.numpy(),
            video_ids=np.array(video_ids),
            splits=np.array([len(c) for c in classes]),
            classes=np.array([name for names in classes for name in names]),
            model=np.array(model),
        )


def _forward_views(
    model: nn.Module, clips: Tensor, device: torch.device, dtype: torch.dtype | None
) -> Tensor:
    """``(N, K, T, C, H, W)`` -> ``(N, classes)`` mean logits, in chunks of whole videos' views."""
    k, t = clips.shape[1:3]
    per_chunk = max(1, MAX_FRAMES_PER_FORWARD // (k * t))
    out = []
    for chunk in clips.split(per_chunk):
        views = chunk.flatten(0, 1).to(device, non_blocking=True)  # (n*K, T, C, H, W)
        with autocast(device, dtype):
            logits = model(views)
        out.append(logits.float().view(chunk.shape[0], k, -1).mean(1).cpu())
    return torch.cat(out)


@torch.inference_mode()
def collect_scores(
    model: nn.Module,
    batches: Iterable[Batch],
    *,
    device: torch.device,
    dtype: torch.dtype | None,
    ctx: DistContext,
    on_bad: Callable[[list[tuple[str, str]]], None] = lambda bad: None,
    progress: bool = True,
    total: int | None = None,
) -> Scores:
    """Scores of every video this process is given, gathered from all processes."""
    was_training = model.training
    model.eval()
    scores, labels, indices, bad = [], [], [], []
    bar = tqdm(batches, total=total, desc="evaluate", leave=False, disable=not progress or None)
    for batch in bar:
        on_bad(batch.bad)
        bad += batch.bad
        if len(batch):
            scores.append(_forward_views(model, batch.clips, device, dtype))
            labels.append(batch.labels)
            indices.append(batch.indices)
    model.train(was_training)
    if not scores:
        raise ValueError("no readable video to evaluate (every item was bad)")
    local = (torch.cat(scores), torch.cat(labels), torch.cat(indices))
    gathered = [all_gather_cat(t.to(device), ctx).cpu() for t in local]
    order = gathered[2].argsort()
    return Scores(gathered[0][order], gathered[1][order], gathered[2][order], bad)
