"""Throughput of the training input pipeline: read + sample + augment + normalise, in clips/s.

What ``gateshift bench data`` and ``benchmarks/data_pipeline.py`` measure. Items are taken in
a fixed shuffled order of the split (cycling when the split is small) through the very
:class:`~gateshift.data.datasets.VideoClipDataset` training uses, with the TSN training
transform (multi-scale crop, resize, flip, normalise). With ``workers=0`` everything runs in
this process and the time is split between the reader (open, demux, decode, colour
conversion; or JPEG decoding) and the transform, which says what limits the pipeline. With
workers the clips come through a ``DataLoader`` (batch 1) and only the total is known.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from gateshift.data.datasets import BadItem, Sample, VideoClipDataset
from gateshift.data.readers import make_reader
from gateshift.data.records import ClipReader, ClipTransform, VideoDataset, VideoInfo, VideoRecord
from gateshift.data.sampling import SamplingSpec, build_sampler
from gateshift.data.transforms import build_train_transform
from gateshift.input_spec import InputSpec


@dataclass(frozen=True)
class PipelineBench:
    """One measurement; times in seconds, per-stage times per clip in milliseconds."""

    clips_per_s: float
    clips: int
    seconds: float
    bad: int  # unreadable items met while timing (not counted as clips)
    workers: int
    segments: int
    size: int
    read_ms: float | None  # reader share per clip (workers=0 only)
    transform_ms: float | None  # transform share per clip (workers=0 only)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _TimedReader:
    """Wraps a reader and adds up the time spent in ``read`` (in this process)."""

    def __init__(self, reader: ClipReader) -> None:
        self.reader, self.seconds = reader, 0.0

    def probe(self, record: VideoRecord) -> VideoInfo:
        return self.reader.probe(record)

    def read(self, record: VideoRecord, indices: Sequence[int]) -> torch.Tensor:
        start = time.perf_counter()
        try:
            return self.reader.read(record, indices)
        finally:
            self.seconds += time.perf_counter() - start


class _TimedTransform:
    def __init__(self, transform: ClipTransform) -> None:
        self.transform, self.seconds = transform, 0.0

    def __call__(
        self, frames: torch.Tensor, labels: tuple[int, ...], generator: torch.Generator
    ) -> tuple[torch.Tensor, tuple[int, ...]]:
        start = time.perf_counter()
        try:
            return self.transform(frames, labels, generator)
        finally:
            self.seconds += time.perf_counter() - start


def _keys(size: int, total: int, seed: int) -> list[tuple[int, int]]:
    """``total`` (epoch, index) keys: a fresh permutation of the split per pass."""
    keys: list[tuple[int, int]] = []
    epoch = 0
    while len(keys) < total:
        order = torch.randperm(size, generator=torch.Generator().manual_seed(seed + epoch))
        keys.extend((epoch, int(i)) for i in order)
        epoch += 1
    return keys[:total]


def _identity(item: Any) -> Any:
    return item


def _items(dataset: VideoClipDataset, keys: list[tuple[int, int]], workers: int) -> Iterator[Any]:
    if workers == 0:
        yield from (dataset[k] for k in keys)
        return
    loader: DataLoader[Any] = DataLoader(
        dataset,
        batch_size=None,
        sampler=keys,
        num_workers=workers,
        collate_fn=_identity,
    )
    yield from loader


def bench_pipeline(
    dataset: VideoDataset,
    spec: InputSpec,
    *,
    num_segments: int = 8,
    workers: int = 0,
    clips: int = 200,
    warmup: int = 10,
    reader: ClipReader | None = None,
    seed: int = 0,
    progress: bool = True,
) -> PipelineBench:
    """Time ``clips`` training clips of ``dataset`` (after ``warmup`` untimed ones).

    The flip is on with an empty label map: it costs the same whatever the labels are.
    """
    if num_segments < 1 or workers < 0 or clips < 1 or warmup < 0:
        raise ValueError("segments and clips must be positive, workers and warmup not negative")
    timed_reader = _TimedReader(reader or make_reader(dataset))
    timed_transform = _TimedTransform(build_train_transform(spec, label_map={}))
    sampler = build_sampler(SamplingSpec(mode="segments", num_segments=num_segments), "train")
    clip_set = VideoClipDataset(dataset.records, timed_reader, sampler, timed_transform, seed=seed)
    keys = _keys(len(clip_set), warmup + clips, seed)
    items = _items(clip_set, keys, workers)
    for _ in range(warmup):
        next(items)
    timed_reader.seconds = timed_transform.seconds = 0.0
    bar = tqdm(total=clips, desc="clips", unit="clip", leave=False, disable=not progress or None)
    bad, start = 0, time.perf_counter()
    for item in items:
        bad += isinstance(item, BadItem)
        if isinstance(item, Sample) and item.clips.shape[1] != num_segments:
            raise RuntimeError(f"expected {num_segments} frames, got {tuple(item.clips.shape)}")
        bar.update()
    seconds = time.perf_counter() - start
    bar.close()
    if bad == clips:
        raise ValueError(f"{dataset.root}: no readable item in the {dataset.split} split")
    inline = workers == 0
    return PipelineBench(
        clips_per_s=(clips - bad) / seconds,  # bad items cost little: they do not count
        clips=clips,
        seconds=seconds,
        bad=bad,
        workers=workers,
        segments=num_segments,
        size=spec.crop_size,
        read_ms=1000 * timed_reader.seconds / clips if inline else None,
        transform_ms=1000 * timed_transform.seconds / clips if inline else None,
    )
