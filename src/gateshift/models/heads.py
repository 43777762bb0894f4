"""Classification heads: dropout then one linear layer, as in TSN/GSM/GSF (``new_fc``).

Several label sets (EPIC-Kitchens verb and noun) share one linear layer whose outputs are split
per head, so a model always returns one ``(N, sum(num_classes))`` tensor; ``splits`` says how to
cut it. One layer keeps the authors' checkpoint layout (``new_fc``) for single-head models.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class ClassifierHead(nn.Module):
    """``(B, F)`` features -> ``(B, K)`` logits, ``K = sum(splits)``; N(0, 0.001) init."""

    def __init__(
        self, in_features: int, num_classes: int | Sequence[int], *, dropout: float = 0.5
    ) -> None:
        super().__init__()
        splits = (num_classes,) if isinstance(num_classes, int) else tuple(num_classes)
        if not splits or any(int(k) < 1 for k in splits):
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.splits: tuple[int, ...] = tuple(int(k) for k in splits)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, sum(self.splits))
        nn.init.normal_(self.fc.weight, 0.0, 0.001)
        nn.init.zeros_(self.fc.bias)

    def forward(self, features: Tensor) -> Tensor:
        return self.fc(self.dropout(features))

    def split(self, logits: Tensor) -> tuple[Tensor, ...]:
        """Cut ``(..., K)`` logits into one tensor per head."""
        return tuple(torch.split(logits, list(self.splits), dim=-1))
