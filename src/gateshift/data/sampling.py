"""Frame sampling: TSN segments and dense clips, one spec for training, evaluation and prediction.

Segment sampling follows TSN (Wang et al., arXiv 1608.00859) as used by GSM (arXiv 1912.00381):
the video is cut into ``T = num_segments`` equal segments and one frame is taken from each.
Dense sampling (as in I3D / SlowFast / TSM's dense setting) takes ``clip_len`` frames
``frame_interval`` apart from one window.

Exact formulas (``N`` frames, integer arithmetic only, ``//`` is floor division). Frame ``i``
covers the time interval ``[i, i + 1)``; segment ``k`` covers ``[k * N / T, (k + 1) * N / T)``
(its length ``N / T`` is a float); the frame at a position ``p`` is ``floor(p)``.

* segments, train: a uniformly random position in each segment,
  ``index_k = (k * N + r_k) // T`` with ``r_k`` uniform in ``{0, ..., N - 1}``. This is exactly
  ``floor((k + U) * N / T)`` for ``U`` uniform in ``[0, 1)``, so a frame is drawn with
  probability proportional to its overlap with the segment, and always lies in
  ``[(k * N) // T, ((k + 1) * N - 1) // T]``.
* segments, val: segment centres, ``index_k = ((2k + 1) * N) // (2T)`` (the released TSN/GSM
  test indices).
* segments, test: ``num_clips`` clips; clip ``c`` sits at fraction ``f_c = p / q`` of every
  segment, ``index_k = ((k * q + p) * N) // (q * T)``. Clip 0 is the centres (``f = 1/2``),
  clip 1 the segment starts (``f = 0``, ``(k * N) // T``): the GSM 2-clip test. Further clips
  continue the van der Corput order ``1/4, 3/4, 1/8, 5/8, 3/8, 7/8, ...``: each new clip halves
  the largest gap, adding clips never moves earlier ones, and ``2**m`` clips tile the segments
  evenly.
* dense: span ``S = (clip_len - 1) * frame_interval + 1``; a clip starting at ``s`` takes
  ``s + j * frame_interval``. Train: ``s`` uniform in ``{0, ..., N - S}``. Val and test:
  ``num_clips`` starts ``s_c = ((2c + 1) * (N - S + 1)) // (2 * num_clips)``, the centres of
  ``num_clips`` equal parts of the possible starts (one clip: the middle of the video).
* short videos (``N < T`` for segments, ``N < S`` for dense): every split and every clip takes
  the centres ``((2k + 1) * N) // (2L)`` for ``L`` = frames per clip: deterministic, in order,
  every frame used when ``N <= L``, frames repeated rather than an error. ``N = 0`` is an error.

Train samplers always return one clip; ``num_clips`` applies to test (segments) and to val and
test (dense). Samplers are small frozen dataclasses, so they pickle into loader workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from gateshift.data.records import FrameSampler

Split = Literal["train", "val", "test"]
SamplingMode = Literal["segments", "dense"]


@dataclass(frozen=True)
class SamplingSpec:
    """How frames are picked from a video; the same spec serves train, val, test and predict.

    ``num_segments``: frames per clip in ``segments`` mode (T). ``clip_len``: frames per clip in
    ``dense`` mode (None: ``num_segments``, so switching mode keeps T). ``frame_interval``:
    dense stride in frames. ``num_clips``: clips per video at test time (and dense val).
    """

    mode: SamplingMode = "segments"
    num_segments: int = 8
    clip_len: int | None = None
    frame_interval: int = 8
    num_clips: int = 1

    def __post_init__(self) -> None:
        if self.mode not in ("segments", "dense"):
            raise ValueError(f"SamplingSpec.mode must be 'segments' or 'dense', got {self.mode!r}")
        for name in ("num_segments", "frame_interval", "num_clips"):
            if getattr(self, name) < 1:
                raise ValueError(f"SamplingSpec.{name} must be >= 1, got {getattr(self, name)}")
        if self.clip_len is not None and self.clip_len < 1:
            raise ValueError(f"SamplingSpec.clip_len must be >= 1, got {self.clip_len}")

    @property
    def frames_per_clip(self) -> int:
        """T of the sampled clips in either mode."""
        if self.mode == "dense" and self.clip_len is not None:
            return self.clip_len
        return self.num_segments


def _check_length(num_frames: int) -> None:
    if num_frames < 1:
        raise ValueError(f"cannot sample frames from a video with {num_frames} frames")


def spread_indices(num_frames: int, length: int) -> Tensor:
    """``length`` centres of equal parts of ``num_frames`` frames: ``((2k+1)N) // (2L)``."""
    k = torch.arange(length, dtype=torch.int64)
    return ((2 * k + 1) * num_frames) // (2 * length)


def clip_fraction(clip: int) -> tuple[int, int]:
    """Position ``(p, q)`` = fraction ``p / q`` of a segment of test clip ``clip`` (see module)."""
    if clip < 2:
        return (1, 2) if clip == 0 else (0, 1)
    bits = clip.bit_length()
    reversed_bits = int(format(clip, f"0{bits}b")[::-1], 2)
    return reversed_bits, 1 << bits


@dataclass(frozen=True)
class SegmentSampler:
    """TSN segment sampler: one frame per segment (see the module docstring for the formulas)."""

    num_segments: int
    split: Split = "train"
    num_clips: int = 1

    def __call__(self, num_frames: int, generator: torch.Generator) -> Tensor:
        _check_length(num_frames)
        n, t = num_frames, self.num_segments
        clips = 1 if self.split != "test" else self.num_clips
        if n < t:
            return spread_indices(n, t).expand(clips, t).clone()
        k = torch.arange(t, dtype=torch.int64)
        if self.split == "train":
            r = torch.randint(0, n, (t,), generator=generator, dtype=torch.int64)
            return ((k * n + r) // t).unsqueeze(0)  # (1, T)
        rows = []
        for c in range(clips):
            p, q = clip_fraction(c)
            rows.append(((k * q + p) * n) // (q * t))
        return torch.stack(rows)  # (num_clips, T)


@dataclass(frozen=True)
class DenseSampler:
    """Dense sampler: ``clip_len`` frames ``frame_interval`` apart from one window per clip."""

    clip_len: int
    frame_interval: int
    split: Split = "train"
    num_clips: int = 1

    @property
    def span(self) -> int:
        return (self.clip_len - 1) * self.frame_interval + 1

    def __call__(self, num_frames: int, generator: torch.Generator) -> Tensor:
        _check_length(num_frames)
        clips = 1 if self.split == "train" else self.num_clips
        if num_frames < self.span:
            return spread_indices(num_frames, self.clip_len).expand(clips, self.clip_len).clone()
        positions = num_frames - self.span + 1  # possible start frames
        if self.split == "train":
            starts = torch.randint(0, positions, (1,), generator=generator, dtype=torch.int64)
        else:
            starts = spread_indices(positions, clips)
        offsets = torch.arange(self.clip_len, dtype=torch.int64) * self.frame_interval
        return starts[:, None] + offsets[None, :]  # (num_clips, clip_len)


def build_sampler(spec: SamplingSpec, split: Split) -> FrameSampler:
    """The sampler for ``split`` ("train", "val" or "test"; prediction uses "test")."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    if spec.mode == "segments":
        return SegmentSampler(spec.num_segments, split, spec.num_clips)
    return DenseSampler(spec.frames_per_clip, spec.frame_interval, split, spec.num_clips)
