"""VideoClipDataset, collate and EpochSampler: reproducible items, bad items skipped and counted."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch

from gateshift.data.annotations import load_annotations
from gateshift.data.datasets import BadItem, EpochSampler, VideoClipDataset, collate
from gateshift.data.readers import make_reader
from gateshift.data.sampling import SamplingSpec, build_sampler
from gateshift.data.transforms import build_eval_transform, build_train_transform
from gateshift.input_spec import IMAGENET_RGB_224, InputSpec

SPEC = InputSpec("RGB", 1.0, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 28, 32)


def _dataset(root: Path, *, train: bool, seed: int = 0) -> VideoClipDataset:
    data = load_annotations("folder", root, "train")
    spec = SamplingSpec(num_segments=4, num_clips=1 if train else 2)
    if train:
        transform = build_train_transform(SPEC, class_names=data.classes[0])
    else:
        transform = build_eval_transform(SPEC, num_crops=3, class_names=data.classes[0])
    sampler = build_sampler(spec, "train" if train else "test")
    return VideoClipDataset(data.records, make_reader(data), sampler, transform, seed=seed)


def test_items_depend_only_on_seed_epoch_and_index(tiny_synthetic: Path) -> None:
    a, b = _dataset(tiny_synthetic, train=True), _dataset(tiny_synthetic, train=True)
    first = a[(0, 5)]
    assert torch.equal(first.clips, b[(0, 5)].clips)  # a fresh copy (another worker) agrees
    assert not torch.equal(first.clips, a[(1, 5)].clips)  # another epoch draws anew
    other_seed = _dataset(tiny_synthetic, train=True, seed=1)
    assert not torch.equal(first.clips, other_seed[(0, 5)].clips)
    assert first.clips.shape == (1, 4, 3, 28, 28) and first.clips.dtype == torch.float32


def test_eval_items_hold_clips_times_crops_views(tiny_synthetic: Path) -> None:
    item = _dataset(tiny_synthetic, train=False)[3]
    assert item.clips.shape == (2 * 3, 4, 3, 28, 28)
    assert item.labels.tolist() == [item.labels.item()]


def test_corrupt_video_is_skipped_named_and_counted(
    tiny_synthetic: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "data"
    shutil.copytree(tiny_synthetic, root)
    victim = sorted((root / "train" / "still").glob("*.mp4"))[0]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated beyond repair
    dataset = _dataset(root, train=True)
    index = next(i for i, r in enumerate(dataset.records) if r.path == victim)
    item = dataset[index]
    assert isinstance(item, BadItem) and item.path == str(victim)
    batch = collate([dataset[index - 1], item, dataset[index + 1]])
    assert len(batch) == 2 and batch.bad == [(str(victim), item.reason)]
    assert batch.indices.tolist() == [index - 1, index + 1]  # nothing substituted

    from gateshift.engine.train import Trainer

    trainer = Trainer.__new__(Trainer)  # only the bookkeeping of bad items is exercised
    trainer.bad_seen, trainer.bad_count = set(), 0
    with caplog.at_level(logging.WARNING, logger="gateshift"):
        trainer.note_bad(batch.bad)
        trainer.note_bad(batch.bad)
    assert trainer.bad_count == 2
    assert [r.getMessage() for r in caplog.records].count(
        f"skipping unreadable video {victim}: {item.reason}"
    ) == 1


def test_epoch_sampler_shards_pads_and_resumes() -> None:
    shares = []
    for rank in range(3):
        sampler = EpochSampler(10, shuffle=True, seed=4, rank=rank, world=3)
        sampler.set_epoch(2)
        shares.append([i for _, i in sampler])
    assert all(len(s) == 4 for s in shares)  # 10 padded to 12
    assert sorted(set(i for s in shares for i in s)) == list(range(10))
    again = EpochSampler(10, shuffle=True, seed=4, rank=1, world=3)
    again.set_epoch(2, skip=3)
    assert [i for _, i in again] == shares[1][3:] and len(again) == 1
    nopad = [list(EpochSampler(10, shuffle=False, rank=r, world=3, pad=False)) for r in range(3)]
    assert sum(len(s) for s in nopad) == 10
    epoch1 = EpochSampler(10, shuffle=True, seed=4)
    epoch1.set_epoch(1)
    epoch2 = EpochSampler(10, shuffle=True, seed=4)
    epoch2.set_epoch(2)
    assert [i for _, i in epoch1] != [i for _, i in epoch2]


def test_flip_needs_names_or_a_map() -> None:
    with pytest.raises(ValueError, match="class names"):
        build_train_transform(IMAGENET_RGB_224)
