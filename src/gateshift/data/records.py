"""The contracts of the data side: records, video facts, reader / sampler / transform shapes.

Every annotation format is parsed into :class:`VideoRecord` items collected in a
:class:`VideoDataset` (records + label names). Readers, samplers and transforms are small
callables with the signatures below, so the dataset code is the same for video files and frame
folders, for training, evaluation and prediction.

Frame numbers are 0-based and relative to the record: frame ``i`` of a record is frame
``start_frame + i`` of the underlying video or folder. Randomness is explicit: samplers and
transforms draw from a ``torch.Generator`` they are given, so an item's augmentation depends only
on (seed, epoch, index) and runs reproduce with any number of loader workers or after a resume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor


@dataclass(frozen=True)
class VideoRecord:
    """One annotated video (or segment of a video).

    ``path``: video file or frame folder (absolute). ``labels``: one class index per label set
    (one for most datasets; verb and noun for EPIC-Kitchens; empty when unlabelled).
    ``start_frame`` / ``end_frame``: the annotated segment as 0-based [start, end) frame numbers
    of the source; ``end_frame`` None means to the end. ``num_frames``: frames in the segment
    when the annotation says (TSN lists, Diving48), else None (the reader counts).
    ``frame_rate``: the rate at which ``start_frame`` / ``end_frame`` were counted, when the
    annotation counts frames of an extraction rather than of the video (EPIC-KITCHENS counts its
    60 / 50 fps RGB frames; EPIC-55 videos run at 59.94 fps, a drift of seconds within an hour).
    The video reader converts such numbers through time; frame folders ignore it.
    """

    path: Path
    labels: tuple[int, ...]
    start_frame: int = 0
    end_frame: int | None = None
    num_frames: int | None = None
    video_id: str = ""
    frame_rate: float | None = None


@dataclass
class VideoDataset:
    """Parsed annotations of one split: records plus the label names that travel with them.

    ``classes`` holds one list of names per label set, in class-index order (``[verbs, nouns]``
    for EPIC-Kitchens). ``format`` names the parser that produced it.
    """

    records: list[VideoRecord]
    classes: list[list[str]]
    root: Path
    format: str
    split: str = ""
    frame_template: str | None = None  # frame folders: file name template, e.g. "{:05d}.jpg"
    frame_start: int = 1  # frame folders: number of the first file
    meta: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class VideoInfo:
    """What a reader can tell about a record without decoding it all."""

    num_frames: int
    width: int
    height: int
    fps: float | None = None
    duration_s: float | None = None


class BadVideoError(ValueError):
    """A record that cannot be read: missing, corrupt, truncated, zero frames, too short."""

    def __init__(self, path: Path | str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class ClipReader(Protocol):
    """Reads frames of a record; raises :class:`BadVideoError` for anything unreadable."""

    def probe(self, record: VideoRecord) -> VideoInfo:
        """Frame count of the record's segment, frame size, frame rate."""
        ...

    def read(self, record: VideoRecord, indices: Sequence[int]) -> Tensor:
        """uint8 RGB frames ``(len(indices), 3, H, W)`` for 0-based segment frame ``indices``.

        Indices may repeat and need not be sorted; each must be in ``[0, num_frames)``.
        """
        ...


class FrameSampler(Protocol):
    """Chooses frame indices: ``(num_clips, T)`` int64 for a segment of ``num_frames`` frames."""

    def __call__(self, num_frames: int, generator: torch.Generator) -> Tensor: ...


class ClipTransform(Protocol):
    """uint8 ``(T, 3, H, W)`` RGB frames -> float ``(V, T, 3, h, w)`` network input.

    ``V`` is the number of views (1, or 3 / 10 test crops). Every frame of a clip gets the same
    random draw. Returns the (possibly swapped, e.g. by a horizontal flip) labels.
    """

    def __call__(
        self, frames: Tensor, labels: tuple[int, ...], generator: torch.Generator
    ) -> tuple[Tensor, tuple[int, ...]]: ...
