"""``diagnose``: does a run's model use the order of its frames?

The run's validation split (``eval.split`` if set), with the run's evaluation data pipeline and
test views (:mod:`gateshift.engine.data`, as ``evaluate``), is scored four times from one
decoding pass, with the time axis of every clip permuted before the network:

==================  ==============================================================
``in_order``        frames as sampled (``evaluate``'s top-1)
``reversed``        frames ``T-1, ..., 0``
``shuffled``        a random permutation per video (not the identity), from ``seed``
``single_frame``    the middle frame ``T // 2`` repeated ``T`` times
==================  ==============================================================

A model that ignores time (TSN: per-frame logits averaged) scores the same in order, reversed
and shuffled, up to float rounding of the average; one that models motion (GSM, GSF, TSM)
loses accuracy on classes told apart by direction (moving left vs right, appearing vs
disappearing). ``single_frame`` is what appearance alone gives. Top-1 is the action's for
two-head (EPIC) runs, as in ``evaluate``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from gateshift.data.datasets import Batch
from gateshift.deploy.explain_plots import plot_bars
from gateshift.engine.data import build_loader, build_split, input_spec
from gateshift.engine.metrics import compute_metrics
from gateshift.inference.bundle import load_bundle, load_bundle_config
from gateshift.inference.device import resolve_device
from gateshift.inference.network import TorchNetwork
from gateshift.inference.scoring import score_views
from gateshift.inference.settings import inference_settings

log = logging.getLogger(__name__)

ORDERS = ("in_order", "reversed", "shuffled", "single_frame")


@dataclass
class Diagnosis:
    accuracy: dict[str, float]  # order -> top-1 fraction
    scores: dict[str, Tensor]  # order -> (N, classes) logits averaged over views
    labels: Tensor  # (N, L)
    model: str
    split: str
    num_segments: int
    seed: int
    skipped_videos: int

    def to_json(self) -> dict[str, Any]:
        return self.accuracy | {
            "model": self.model,
            "split": self.split,
            "videos": int(self.labels.shape[0]),
            "num_segments": self.num_segments,
            "seed": self.seed,
            "skipped_videos": self.skipped_videos,
        }


def frame_orders(t: int, n: int, generator: torch.Generator) -> dict[str, Tensor]:
    """Per order, ``(n, t)`` frame indices: row ``i`` is video ``i``'s new frame order."""
    forward = torch.arange(t)
    shuffled = []
    for _ in range(n):
        perm = torch.randperm(t, generator=generator)
        while t > 1 and torch.equal(perm, forward):
            perm = torch.randperm(t, generator=generator)
        shuffled.append(perm)
    return {
        "in_order": forward.expand(n, t),
        "reversed": forward.flip(0).expand(n, t),
        "shuffled": torch.stack(shuffled) if n else forward.expand(0, t),
        "single_frame": torch.full((n, t), t // 2),
    }


def permute_time(clips: Tensor, order: Tensor) -> Tensor:
    """``(N, K, T, C, H, W)`` views, every view of video ``i`` in frame order ``order[i]``."""
    rows = torch.arange(clips.shape[0])[:, None]  # (N, 1) against order (N, T)
    return clips.transpose(1, 2)[rows, order].transpose(1, 2)  # (N, T, K, ...) picked, back


def diagnose_run(
    run: str | Path,
    overrides: Sequence[str] = (),
    *,
    device: str = "auto",
    seed: int = 0,
    progress: bool = True,
) -> Diagnosis:
    """Top-1 of the run on its validation split with frames in the four orders above."""
    cfg = load_bundle_config(run, overrides)
    settings = inference_settings(cfg)
    split = cfg.eval.split or cfg.data.val_split
    dev = resolve_device(device, what="device")
    dtype = settings.dtype(dev)
    bundle = load_bundle(run, device=dev, channels_last=settings.channels_last)
    views = settings.views
    data = build_split(
        cfg,
        split,
        input_spec(cfg, bundle.input_spec),
        train=False,
        num_clips=views.num_clips,
        num_crops=views.num_crops,
    )
    if data.annotations.classes != bundle.classes:
        raise ValueError(f"the {split} split's classes differ from the ones {run} was trained on")
    loader, _ = build_loader(
        data, batch_size=cfg.eval.batch_size, workers=cfg.data.num_workers, train=False, seed=0
    )
    network = TorchNetwork(bundle.model, dev, dtype)
    generator = torch.Generator().manual_seed(seed)
    scores: dict[str, list[Tensor]] = {order: [] for order in ORDERS}
    labels, bad = [], 0
    batch: Batch
    for batch in tqdm(loader, desc="diagnose", leave=False, disable=not progress or None):
        for path, reason in batch.bad:
            log.warning("skipped unreadable video %s: %s", path, reason)
        bad += len(batch.bad)
        if not len(batch):
            continue
        orders = frame_orders(batch.clips.shape[2], len(batch), generator)
        for name, order in orders.items():
            clips = batch.clips if name == "in_order" else permute_time(batch.clips, order)
            scores[name].append(score_views(network, clips))
        labels.append(batch.labels)
    if not labels:
        raise ValueError("no readable video to diagnose (every item was bad)")
    all_labels = torch.cat(labels)
    fused = {name: torch.cat(s) for name, s in scores.items()}
    splits = bundle.model.head.splits
    accuracy = {n: float(compute_metrics(s, all_labels, splits)["top1"]) for n, s in fused.items()}
    return Diagnosis(
        accuracy, fused, all_labels, bundle.model.name, split, bundle.model.num_segments, seed, bad
    )


def write_diagnosis(diagnosis: Diagnosis, folder: Path) -> dict[str, Path]:
    """``diagnose.json`` and the bar chart ``order_accuracy.png`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"json": folder / "diagnose.json", "chart": folder / "order_accuracy.png"}
    files["json"].write_text(json.dumps(diagnosis.to_json(), indent=2))
    title = f"{diagnosis.model}: top-1 by frame order ({diagnosis.split})"
    labels = {name.replace("_", " "): acc for name, acc in diagnosis.accuracy.items()}
    plot_bars(files["chart"], labels, title=title, ylabel="top-1 %")
    return files
