"""Prediction over many videos: folders, list files, to a CSV or JSONL file of rows.

``predict_folder(run, sources, out)`` finds the videos
(:func:`~gateshift.data.discover.find_videos`: folders searched recursively, list files,
videos), decodes and preprocesses them in torch
``DataLoader`` worker processes (decoding is the cost of prediction on a CPU, and it runs in
parallel with the network that way), scores them in batches of whole videos on the network that
:func:`~gateshift.deploy.predict.predict` runs (the same bundle, views, precision and backend,
so a row's top-1 is that of ``gateshift predict RUN VIDEO``), and appends one row per video
(:mod:`.prediction_rows`), flushed as it is written.

Nothing is skipped silently: a video that cannot be read (missing, corrupt, zero frames) is a
row with the reason. Resuming: videos that ``out`` already has rows for (good or not) are not
decoded again, so a run that was interrupted continues where it stopped; delete rows to have
their videos redone. A batch holds whole videos; videos whose views differ in shape (which the
eval transform's fixed crops make rare) are scored in separate network calls.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from gateshift.data.datasets import BadItem
from gateshift.data.discover import find_videos
from gateshift.deploy.predict import Backend, Prediction, load_network
from gateshift.deploy.prediction_rows import RowWriter, read_done, row_format
from gateshift.inference.network import Network
from gateshift.inference.preprocess import VideoViews
from gateshift.inference.scoring import score_views, top_classes
from gateshift.inference.settings import eval_overrides

Decoded = tuple[int, str, Tensor | str]  # (position, video, views or the reason it failed)


@dataclass(frozen=True)
class FolderSummary:
    """What a run did: videos found, skipped (rows already in the file), rows written now (of
    which errors), and the seconds it took from the first decode to the last row."""

    found: int
    skipped: int
    written: int
    errors: int
    seconds: float

    @property
    def videos_per_s(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def default_workers() -> int:
    """Decoding workers: the cores this process may use less one for the network, 1 to 8."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cores or 1) - 1))


class _Decoding(Dataset[Decoded]):
    """The views of each video, made where the loader runs it (a worker process)."""

    def __init__(self, videos: Sequence[Path], prepare: VideoViews) -> None:
        self.videos, self.prepare = list(videos), prepare

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int) -> Decoded:
        video = self.videos[index]
        try:
            clips = self.prepare(video)
        except (OSError, ValueError) as err:  # what a reader raises beyond BadVideoError
            return index, str(video), f"{type(err).__name__}: {err}"
        return index, str(video), clips.reason if isinstance(clips, BadItem) else clips


def _as_list(items: list[Decoded]) -> list[Decoded]:
    return items  # videos may differ in view shape: grouped for the network in _score


def predict_folder(
    run: str | Path,
    sources: Sequence[str | Path],
    out: str | Path,
    overrides: Sequence[str] = (),
    *,
    backend: Backend = "torch",
    onnx: str | Path | None = None,
    top_k: int = 5,
    device: str = "cpu",
    num_clips: int | None = None,
    num_crops: int | None = None,
    precision: str | None = None,
    workers: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
    compile: bool = False,
) -> FolderSummary:
    """One row per video of ``sources`` appended to ``out`` (.csv or .jsonl), skipping the
    videos ``out`` already has; arguments as for :func:`~gateshift.deploy.predict.predict`.
    ``workers``: decoding processes (None: :func:`default_workers`; 0: decode in this one)."""
    if top_k < 1:
        raise ValueError("top_k must be >= 1")
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    workers = default_workers() if workers is None else workers
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    row_format(out)  # a bad extension fails before any work
    videos = find_videos(sources)
    done = read_done(out)
    todo = [v for v in videos if str(v) not in done]
    keys = [
        *overrides,
        *eval_overrides(num_clips=num_clips, num_crops=num_crops, precision=precision),
    ]
    network, source, views = load_network(
        run, keys, backend=backend, onnx=onnx, device=device, compile=compile
    )
    start = time.perf_counter()
    written = errors = 0
    with (
        RowWriter(out) as writer,
        tqdm(
            total=len(todo), desc="predict", unit="video", file=sys.stderr, disable=not progress
        ) as bar,
    ):
        if todo:
            loader = DataLoader(
                _Decoding(todo, VideoViews(source, views)),
                batch_size=batch_size,
                num_workers=min(workers, len(todo)),
                collate_fn=_as_list,
            )
            for items in loader:
                for row in _score(network, items, source.classes, top_k):
                    writer.write(row)
                    written += 1
                    errors += row.error is not None
                    bar.update(1)
    seconds = time.perf_counter() - start
    return FolderSummary(len(videos), len(videos) - len(todo), written, errors, seconds)


def _score(
    network: Network, items: list[Decoded], classes: list[list[str]], top_k: int
) -> list[Prediction]:
    """The batch's rows in video order: good videos scored, a shape group per network call."""
    rows: dict[int, Prediction] = {}
    groups: dict[tuple[int, ...], list[tuple[int, str, Tensor]]] = {}
    for position, video, clips in items:
        if isinstance(clips, str):
            rows[position] = Prediction(video, error=clips)
        else:
            groups.setdefault(tuple(clips.shape), []).append((position, video, clips))
    for group in groups.values():
        batch = torch.stack([clips for _, _, clips in group])  # (N, K, T, C, H, W)
        logits = score_views(network, batch)  # (N, classes)
        for (position, video, _), scores in zip(group, logits, strict=True):
            rows[position] = Prediction(video, top_classes(scores, classes, top_k))
    return [rows[p] for p in sorted(rows)]
