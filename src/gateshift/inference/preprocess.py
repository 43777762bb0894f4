"""From a video on disk to the views a network scores, built from a bundle alone.

The same sampling and preprocessing as evaluation: the bundle's sampling spec with the requested
number of clips (test-time sampling), then the eval transform of its input spec with the
requested crops. Sampler and transform are built once and serve every video; the reader is
chosen per video (a file or a frame folder). A video that cannot be read comes back as a
:class:`~gateshift.data.datasets.BadItem` naming the reason; nothing is guessed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor

from gateshift.data.datasets import BadItem, VideoClipDataset
from gateshift.data.readers import make_reader
from gateshift.data.records import VideoDataset, VideoRecord
from gateshift.data.sampling import SamplingSpec, build_sampler
from gateshift.data.transforms import build_eval_transform
from gateshift.inference.settings import Views
from gateshift.input_spec import InputSpec


class Preprocessing(Protocol):
    """What preprocessing reads from a bundle, or from an exported model's metadata."""

    classes: list[list[str]]
    input_spec: InputSpec
    sampling: dict[str, Any]


class VideoViews:
    """``views(path)``: a video's ``(K, T, C, H, W)`` float views (K = clips x crops), ready
    for the network, or a :class:`BadItem` when it cannot be read."""

    def __init__(self, bundle: Preprocessing, views: Views) -> None:
        self.classes = bundle.classes
        spec = dataclasses.replace(SamplingSpec(**bundle.sampling), num_clips=views.num_clips)
        self.sampler = build_sampler(spec, "test")
        self.transform = build_eval_transform(
            bundle.input_spec, num_crops=views.num_crops, class_names=bundle.classes[0]
        )

    def __call__(self, path: str | Path) -> Tensor | BadItem:
        path = Path(path).resolve()
        if not path.exists():
            return BadItem(0, str(path), "missing")
        record = VideoRecord(path=path, labels=(), video_id=path.name)
        reader = make_reader(VideoDataset([record], self.classes, path.parent, "predict"))
        item = VideoClipDataset([record], reader, self.sampler, self.transform)[0]
        return item if isinstance(item, BadItem) else item.clips
