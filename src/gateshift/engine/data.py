"""From a config to datasets and loaders: the one place where data meets the model's input spec.

Training and evaluation build their data the same way: annotations of a split, the reader they
call for, the sampler of the config's sampling spec, and the transform of the backbone's
:class:`~gateshift.input_spec.InputSpec` (crop and resize sizes overridable in ``data.*``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader

from gateshift.config import Config
from gateshift.data.annotations import load_annotations
from gateshift.data.datasets import EpochSampler, VideoClipDataset, collate
from gateshift.data.readers import make_reader
from gateshift.data.records import ClipTransform, VideoDataset
from gateshift.data.sampling import SamplingSpec, build_sampler
from gateshift.data.transforms import build_eval_transform, build_train_transform
from gateshift.input_spec import InputSpec


@dataclass
class SplitData:
    """A split ready to load: its annotations, dataset and sampling spec."""

    annotations: VideoDataset
    dataset: VideoClipDataset
    sampling: SamplingSpec


def sampling_spec(cfg: Config, num_clips: int = 1) -> SamplingSpec:
    return SamplingSpec(
        mode=cfg.data.sampling,
        num_segments=cfg.model.num_segments,
        frame_interval=cfg.data.frame_interval,
        num_clips=num_clips,
    )


def input_spec(cfg: Config, base: InputSpec) -> InputSpec:
    """The backbone's spec with the config's crop/resize overrides."""
    crop = cfg.data.crop_size or base.crop_size
    resize = cfg.data.resize_size or max(base.resize_size, crop)
    return dataclasses.replace(base, crop_size=crop, resize_size=resize)


def load_split(cfg: Config, split: str) -> VideoDataset:
    return load_annotations(cfg.data.format, cfg.data.root, split, **cfg.data.annotations)


def build_split(
    cfg: Config,
    split: str,
    spec: InputSpec,
    *,
    train: bool,
    num_clips: int = 1,
    num_crops: int = 1,
    annotations: VideoDataset | None = None,
) -> SplitData:
    """Dataset of ``split`` with training augmentation or evaluation views."""
    data = annotations or load_split(cfg, split)
    classes = data.classes[0] if data.classes else None
    label_map = dict(cfg.data.label_map) if cfg.data.label_map is not None else None
    sampling = sampling_spec(cfg, num_clips)
    transform: ClipTransform
    if train:
        transform = build_train_transform(
            spec,
            scales=cfg.data.scales,
            flip=cfg.data.flip,
            class_names=classes,
            label_map=label_map,
            randaugment=cfg.data.randaugment,
        )
        sampler = build_sampler(sampling, "train")
    else:
        transform = build_eval_transform(
            spec, num_crops=num_crops, class_names=classes, label_map=label_map
        )
        sampler = build_sampler(sampling, "test")
    dataset = VideoClipDataset(data.records, make_reader(data), sampler, transform, seed=cfg.seed)
    return SplitData(data, dataset, sampling)


def build_loader(
    split: SplitData,
    *,
    batch_size: int,
    workers: int,
    train: bool,
    seed: int,
    rank: int = 0,
    world: int = 1,
    pin_memory: bool = False,
) -> tuple[DataLoader[object], EpochSampler]:
    """A loader over this process's share; training shuffles, pads shares and drops the tail."""
    sampler = EpochSampler(
        len(split.dataset), shuffle=train, seed=seed, rank=rank, world=world, pad=train
    )
    loader: DataLoader[object] = DataLoader(
        split.dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        drop_last=train,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),  # keeps the global RNG untouched
    )
    return loader, sampler
