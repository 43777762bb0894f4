"""Video-level scores of a whole split: run a model over a loader, gather across processes.

Every video contributes ``K`` views (clips x crops); its score is the mean of their logits, the
authors' test protocol (before softmax), computed by the inference layer
(:func:`gateshift.inference.scoring.score_views`). What this module adds is the engine's part:
batches from a loader, unreadable videos reported, and in a distributed run each process
scoring its share, the shares gathered on every process and ordered by dataset index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from gateshift.data.datasets import Batch
from gateshift.engine.distributed import DistContext, all_gather_cat
from gateshift.inference.network import Network
from gateshift.inference.scoring import score_views

log = logging.getLogger(__name__)


@dataclass
class Scores:
    scores: Tensor  # (N, classes) float32 logits averaged over views
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


@torch.inference_mode()
def collect_scores(
    network: Network,
    batches: Iterable[Batch],
    *,
    ctx: DistContext,
    on_bad: Callable[[list[tuple[str, str]]], None] = lambda bad: None,
    progress: bool = True,
    total: int | None = None,
) -> Scores:
    """Scores of every video this process is given, gathered from all processes.

    ``network`` is any :class:`~gateshift.inference.network.Network` (a PyTorch model in eval
    mode wrapped in :class:`~gateshift.inference.network.TorchNetwork`, or another runtime).
    """
    scores, labels, indices, bad = [], [], [], []
    bar = tqdm(batches, total=total, desc="evaluate", leave=False, disable=not progress or None)
    for batch in bar:
        on_bad(batch.bad)
        bad += batch.bad
        if len(batch):
            scores.append(score_views(network, batch.clips))
            labels.append(batch.labels)
            indices.append(batch.indices)
    if not scores:
        raise ValueError("no readable video to evaluate (every item was bad)")
    local = (torch.cat(scores), torch.cat(labels), torch.cat(indices))
    gathered = [all_gather_cat(t.to(ctx.device), ctx).cpu() for t in local]
    order = gathered[2].argsort()
    return Scores(gathered[0][order], gathered[1][order], gathered[2][order], bad)
