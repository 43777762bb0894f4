"""What every 2D backbone offers the recognizer.

A backbone maps frames ``(B, 3, H, W)`` to pooled features ``(B, num_features)`` (no ImageNet
classifier), carries its :class:`~gateshift.input_spec.InputSpec`, and says where each kind of
temporal module goes (:meth:`Backbone.temporal_sites`). Its state-dict keys are those of the
ImageNet weight files it loads (torchvision for ResNet/MobileNetV2, the Caffe conversions for the
Inception nets), so those files load without renaming.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from torch import nn

from gateshift.input_spec import InputSpec
from gateshift.models.temporal.insert import Site

InsertKind = Literal["tsm", "gsm", "gsf"]


class Backbone(nn.Module):
    """Base class: subclasses set the class attributes and implement ``forward``."""

    input_spec: ClassVar[InputSpec]
    #: key prefixes of the ImageNet classifier in weight files; dropped when loading them
    imagenet_classifier: ClassVar[tuple[str, ...]] = ("fc.",)
    #: GSF channel ratio (percent) the authors use for this family
    default_gsf_ratio: ClassVar[float] = 100.0
    num_features: int
    #: sites that hold temporal modules, set when they are inserted (weights map keys with them)
    sites: tuple[Site, ...] = ()

    def temporal_sites(self, kind: InsertKind) -> list[Site]:
        """Insertion points for ``kind``; see each backbone's module docstring for the choice."""
        raise NotImplementedError

    def official_layout(self) -> dict[str, str]:
        """Key prefixes of layers the authors' video checkpoints name otherwise, ``{theirs: ours}``
        (each ending in ``.``); empty when their backbone has our keys (temporal sites aside)."""
        return {}
