"""The video recognizer: TSN-style frames -> 2D backbone -> head -> average over time.

Follows TSN (arXiv 1608.00859) as used by GSM (arXiv 1912.00381) and GSF (arXiv 2203.08897):
every frame of a clip goes through the same 2D backbone (with temporal modules inside for
TSM/GSM/GSF), through dropout and the classifier, and the per-frame logits are averaged
(average consensus, before softmax). The input is already normalised float frames in the
backbone's :class:`~gateshift.input_spec.InputSpec`; the model never converts colours.
"""

from __future__ import annotations

from torch import Tensor, nn

from gateshift.input_spec import InputSpec
from gateshift.models.backbones.base import Backbone
from gateshift.models.heads import ClassifierHead


class Recognizer(nn.Module):
    """``(N, T, C, H, W)`` float clips -> ``(N, num_classes)`` logits."""

    def __init__(
        self,
        backbone: Backbone,
        head: ClassifierHead,
        *,
        num_segments: int,
        temporal: str,
        name: str = "",
        causal: bool = False,
    ) -> None:
        super().__init__()
        if num_segments < 1:
            raise ValueError(f"num_segments must be >= 1, got {num_segments}")
        self.backbone = backbone
        self.head = head
        self.num_segments = num_segments
        self.temporal = temporal
        self.name = name
        #: whether the temporal modules are causal (frame t sees frames <= t; streams)
        self.causal = causal
        #: label names per label set, filled in by training / load_model (not saved in weights)
        self.classes: list[list[str]] = []

    @property
    def input_spec(self) -> InputSpec:
        return self.backbone.input_spec

    @property
    def num_classes(self) -> int:
        return sum(self.head.splits)

    def forward(self, clips: Tensor) -> Tensor:
        if clips.dim() != 5:
            raise ValueError(
                f"{self.name or 'Recognizer'} expects clips shaped (N, T, C, H, W), got "
                f"{tuple(clips.shape)}"
            )
        n, t = clips.shape[:2]
        if self.temporal != "tsn" and t != self.num_segments:
            raise ValueError(
                f"{self.name or 'Recognizer'} was built for num_segments={self.num_segments} "
                f"frames per clip, got {t}"
            )
        if not clips.is_floating_point():
            raise TypeError(
                f"clips must be normalised float frames, got {clips.dtype}; apply the model's "
                "input spec first (gateshift.data transforms do)"
            )
        features = self.backbone(clips.flatten(0, 1))  # (N*T, F)
        logits = self.head(features)  # (N*T, K)
        return logits.view(n, t, -1).mean(dim=1)  # average consensus -> (N, K)
