"""``VideoClipDataset``: records + reader + sampler + transform -> network-ready clips.

An item is ``(K, T, 3, h, w)`` float views (K = clips x crops; 1 for training), its labels and
its index. Randomness is a function of (seed, epoch, index) only: each item gets its own
``torch.Generator``, so augmentation is the same with 0 or 8 loader workers and after a resume.

Bad input is never replaced by other data: a record the reader cannot read comes back as a
:class:`BadItem` naming the file and the reason; :func:`collate` drops it from the batch and
passes it on in ``Batch.bad`` so the training loop can warn once per file and count it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from gateshift.data.records import (
    BadVideoError,
    ClipReader,
    ClipTransform,
    FrameSampler,
    VideoRecord,
)

_MASK = (1 << 63) - 1


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one item of one epoch (SplitMix64 finaliser)."""
    z = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & (
        (1 << 64) - 1
    )
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (z ^ (z >> 31)) & _MASK


@dataclass(frozen=True)
class Sample:
    clips: Tensor  # (K, T, 3, h, w) float
    labels: Tensor  # (L,) int64
    index: int


@dataclass(frozen=True)
class BadItem:
    index: int
    path: str
    reason: str


@dataclass
class Batch:
    """A collated batch; ``bad`` lists the (path, reason) of records dropped from it."""

    clips: Tensor  # (N, K, T, 3, h, w)
    labels: Tensor  # (N, L)
    indices: Tensor  # (N,)
    bad: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def pin_memory(self) -> Batch:
        return Batch(self.clips.pin_memory(), self.labels.pin_memory(), self.indices, self.bad)


ItemKey = int | tuple[int, int]  # an index, or (epoch, index) from EpochSampler


class VideoClipDataset(Dataset[Sample | BadItem]):
    """Map-style dataset over :class:`VideoRecord` items.

    Keys are indices or ``(epoch, index)`` pairs (what :class:`EpochSampler` yields): carrying
    the epoch with the key keeps persistent loader workers, which hold their own copy of the
    dataset, on the right epoch.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord],
        reader: ClipReader,
        sampler: FrameSampler,
        transform: ClipTransform,
        *,
        seed: int = 0,
    ) -> None:
        self.records = list(records)
        self.reader = reader
        self.sampler = sampler
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self._frame_counts: dict[int, int] = {}  # per process; saves a probe per epoch

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def num_frames(self, index: int) -> int:
        record = self.records[index]
        if record.num_frames is not None:
            return record.num_frames
        if index not in self._frame_counts:
            self._frame_counts[index] = self.reader.probe(record).num_frames
        return self._frame_counts[index]

    def __getitem__(self, key: ItemKey) -> Sample | BadItem:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        record = self.records[index]
        generator = torch.Generator().manual_seed(item_seed(self.seed, epoch, index))
        try:
            count = self.num_frames(index)
            if count < 1:
                raise BadVideoError(record.path, "zero frames")
            positions = self.sampler(count, generator)  # (clips, T)
            frames = self.reader.read(record, positions.flatten().tolist())  # (clips*T, 3, H, W)
        except BadVideoError as err:
            return BadItem(index, err.path, err.reason)
        views, labels = [], record.labels
        for clip in frames.split(positions.shape[1]):
            out, labels = self.transform(clip, record.labels, generator)  # (V, T, 3, h, w)
            views.append(out)
        return Sample(torch.cat(views), torch.tensor(labels, dtype=torch.long), index)


def collate(items: Sequence[Sample | BadItem]) -> Batch:
    """Stack good samples; bad ones go to ``Batch.bad`` (a batch may be smaller, even empty)."""
    good = [i for i in items if isinstance(i, Sample)]
    bad = [(i.path, i.reason) for i in items if isinstance(i, BadItem)]
    if not good:
        empty = torch.empty(0)
        return Batch(empty, torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long), bad)
    return Batch(
        clips=torch.stack([s.clips for s in good]),
        labels=torch.stack([s.labels for s in good]),
        indices=torch.tensor([s.index for s in good], dtype=torch.long),
        bad=bad,
    )


class EpochSampler(Sampler[tuple[int, int]]):
    """This process's share of an epoch, as ``(epoch, index)`` keys; resumable mid-epoch.

    The order is a permutation seeded by (seed, epoch) when shuffling (the same on every
    process), split round-robin over ``world`` processes. With ``pad`` the order is first
    extended by wrapping around so every process gets the same number of items (training);
    without it (evaluation) nothing is duplicated and shares may differ by one.
    ``set_epoch(epoch, skip)`` starts the share after its first ``skip`` items.
    """

    def __init__(
        self,
        size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
        pad: bool = True,
    ) -> None:
        if size < 1:
            raise ValueError("EpochSampler needs at least one item")
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.rank, self.world, self.pad = rank, world, pad
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _share(self) -> list[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(item_seed(self.seed, self.epoch, -1))
            order = torch.randperm(self.size, generator=gen).tolist()
        else:
            order = list(range(self.size))
        if self.pad and self.size % self.world:
            order += order[: self.world - self.size % self.world]
        return order[self.rank :: self.world]

    def __len__(self) -> int:
        full = (
            -(-self.size // self.world)
            if self.pad
            else len(range(self.rank, self.size, self.world))
        )
        return max(full - self.skip, 0)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for index in self._share()[self.skip :]:
            yield (self.epoch, index)
