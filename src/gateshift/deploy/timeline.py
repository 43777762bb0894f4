"""Timelines of long videos: what happens when, from a run's inference bundle.

``timeline(run, video)`` slides windows over the video (:mod:`.windows`), classifies each one
the way ``gateshift predict`` classifies a clip (the run's test sampling, views, input spec and
precision, from :mod:`gateshift.inference`), and merges consecutive windows into labelled
segments (:mod:`.segments`). The video is decoded once, front to back
(:class:`~gateshift.data.stream.VideoStream`); only the frames that unfinished windows sample
are held, resized to the network's short side, so memory follows the window, not the video.

Time scale. By default a window is as long as the run's typical training clip: with TSN segment
sampling the model saw each training video whole, so the window is the median duration of the
training videos (recorded in the bundle as ``clips`` by training; for older bundles the
training split is probed when its data is still there); with dense sampling it is the span of
a training clip, ``(clip_len - 1) * frame_interval + 1`` frames. The stride defaults to a
quarter of the window. ``window_s`` / ``stride_s`` override either.

Output (:mod:`.timeline_io`): JSON, CSV or SRT by the file's extension, rewritten atomically
every few seconds while the video is read (``"complete": false``) and once at the end, so a file
on disk is always whole. A video that turns out damaged half-way keeps the windows before the
damage in the file (with ``"error"``) and raises. ``truth``: a true timeline to score against
(:mod:`.timeline_truth`). ``annotate``: a copy of the video with the label burnt in
(:mod:`.annotate`). For a model with several label sets (EPIC verb + noun) the timeline follows
the first.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gateshift.config import Config
from gateshift.data.annotations import load_annotations
from gateshift.data.clip_stats import TypicalClip, typical_clip
from gateshift.data.readers import make_reader
from gateshift.data.records import BadVideoError
from gateshift.data.sampling import SamplingSpec
from gateshift.data.stream import VideoStream, read_ahead
from gateshift.data.transforms import resize_short_side
from gateshift.deploy.annotate import Annotator
from gateshift.deploy.segments import Cell, SegmentBuilder, WindowResult
from gateshift.deploy.timeline_io import Timeline, output_format, write_timeline
from gateshift.deploy.timeline_truth import read_truth, score_timeline
from gateshift.deploy.windows import Window, WindowAssembler, WindowPlan
from gateshift.inference.bundle import Bundle, load_bundle, load_bundle_config
from gateshift.inference.device import resolve_device
from gateshift.inference.network import Network, TorchNetwork
from gateshift.inference.preprocess import VideoViews
from gateshift.inference.scoring import score_views, top_classes
from gateshift.inference.settings import inference_settings

log = logging.getLogger(__name__)

SAVE_EVERY_S = 10.0  # wall seconds between rewrites of the output file while running
READ_AHEAD = 16  # decoded frames the decoding thread may run ahead of the network


def split_threads(threads: int | None = None) -> tuple[int, int]:
    """(FFmpeg decoder threads, torch threads) for ``threads`` cores (None: those this process
    may use). Decoding runs in a thread of its own, next to the network. Measured on the 2-core
    Xeon (1080p H.264): FFmpeg's default frame threads (2) decoding while torch's 2 threads ran
    made every torch op stall (its threads spin while waiting), 2-3x slower overall; one FFmpeg
    thread next to torch's 2 was as fast as torch alone on one core for small networks and 1.6x
    faster for ResNet-50 GSM at 224. More cores: a quarter (at most 4) decode, the rest run torch.
    """
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
        threads = threads or os.cpu_count() or 1
    decoder = max(1, min(4, threads // 4))
    return decoder, max(threads - decoder, min(threads, 2))


@dataclasses.dataclass(frozen=True)
class Scale:
    """Window and stride in seconds, and where the defaults came from."""

    window_s: float
    stride_s: float
    origin: str


def training_clip(bundle: Bundle, cfg: Config) -> TypicalClip | None:
    """The bundle's record of its training clips, else a probe of the training split (None when
    neither is there)."""
    saved = bundle.meta.get("clips")
    if saved:
        return TypicalClip.from_dict(saved)
    try:
        data = load_annotations(
            cfg.data.format, cfg.data.root, cfg.data.train_split, **cfg.data.annotations
        )
        return typical_clip(data.records, make_reader(data))
    except (OSError, ValueError) as err:
        log.debug("cannot probe the training split: %s", err)
        return None


def default_scale(
    bundle: Bundle, cfg: Config, fps: float, window_s: float | None, stride_s: float | None
) -> Scale:
    """``window_s`` (None: the typical training clip) and ``stride_s`` (None: a quarter)."""
    origin = "--window"
    if window_s is None:
        window_s, origin = _training_window(bundle, cfg, fps)
    return Scale(window_s, window_s / 4 if stride_s is None else stride_s, origin)


def _training_window(bundle: Bundle, cfg: Config, fps: float) -> tuple[float, str]:
    spec = SamplingSpec(**bundle.sampling)
    clip = training_clip(bundle, cfg)
    if spec.mode == "dense":
        span = (spec.frames_per_clip - 1) * spec.frame_interval + 1
        rate = clip.fps if clip is not None and clip.fps else fps
        return span / rate, f"the span of a training clip ({span} frames at {rate:g} fps)"
    if clip is None:
        raise ValueError(
            f"{bundle.folder} does not record how long its training videos are and its "
            f"training data ({cfg.data.root}) cannot be read: pass --window SECONDS"
        )
    if clip.duration_s:
        return clip.duration_s, f"the median training video ({clip.probed} probed)"
    return clip.num_frames / fps, (
        f"the median training frame folder ({clip.num_frames} frames) at this video's {fps:g} fps"
    )


class WindowClassifier:
    """Finished windows -> :class:`WindowResult` (top-k of the first label set), in batches."""

    def __init__(
        self,
        network: Network,
        views: VideoViews,
        classes: list[list[str]],
        *,
        frames_per_clip: int,
        top_k: int,
    ) -> None:
        self.network, self.views, self.classes = network, views, classes
        self.frames_per_clip, self.top_k = frames_per_clip, top_k

    def __call__(self, windows: Sequence[tuple[Window, Tensor]]) -> list[WindowResult]:
        if not windows:
            return []
        batch = torch.stack([self._views(frames) for _, frames in windows])  # (N, K, T, C, H, W)
        logits = score_views(self.network, batch)  # (N, classes)
        out = []
        for (window, _), row in zip(windows, logits, strict=True):
            top = top_classes(row, self.classes, self.top_k)[0]
            out.append(WindowResult(window.start, window.end, [(n, p) for n, _, p in top]))
        return out

    def _views(self, frames: Tensor) -> Tensor:
        """``(clips * T, 3, h, w)`` uint8 -> ``(clips * crops, T, 3, S, S)`` float."""
        clips = frames.split(self.frames_per_clip)
        return torch.cat([self.views.transform(c, (), torch.Generator())[0] for c in clips])


class _Runner:
    """One pass: decode, assemble windows, classify in batches, merge, save, annotate."""

    def __init__(
        self,
        stream: VideoStream,
        plan: WindowPlan,
        classify: WindowClassifier,
        result: Timeline,
        *,
        out: str | Path | None,
        annotator: Annotator | None,
        batch_size: int,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.stream, self.plan, self.classify, self.result = stream, plan, classify, result
        self.out, self.annotator, self.progress = out, annotator, progress
        self.batch_size = max(1, batch_size)
        self.size = classify.views.transform.resize_size
        self.assembler = WindowAssembler(plan)
        self.builder = SegmentBuilder()
        self.pending: list[tuple[Window, Tensor]] = []
        self.saved_at = time.monotonic()

    def run(self) -> Timeline:
        try:
            self._decode()
            self._flush()
        except BaseException as err:
            self._keep_partial(err)
            raise
        finally:
            if self.annotator is not None:
                self.annotator.close()
        return self.result

    def _decoded(self) -> Iterator[tuple[int, Any, Tensor | None]]:
        """``(number, frame, the sampled frame's pixels or None)`` in a thread of its own: the
        pixels (RGB at the network's short side) are made there too, next to the network."""
        if self.annotator is None:  # only the frames windows sample
            for number, frame in self.stream.frames(self.plan.wanted()):
                yield number, frame, self._pixels(frame)
            return
        wanted = self.plan.wanted()
        target = next(wanted, None)
        for number, frame in self.stream.frames():  # every frame, to write the copy
            while target is not None and target < number:
                target = next(wanted, None)
            yield number, frame, self._pixels(frame) if number == target else None

    def _pixels(self, frame: Any) -> Tensor:
        return resize_short_side(self.stream.rgb(frame)[None], self.size)[0]

    def _decode(self) -> None:
        for number, frame, pixels in read_ahead(self._decoded(), READ_AHEAD):
            if pixels is not None:
                self.pending += self.assembler.push(number, pixels)
            if len(self.pending) >= self.batch_size:
                self._classify()
            if self.annotator is not None:
                self.annotator.push(number, frame)
            if self.progress is not None:
                self.progress(number + 1, self.plan.num_frames)
            if self.out is not None and time.monotonic() - self.saved_at > SAVE_EVERY_S:
                self._save()
        if self.assembler.missing():
            raise BadVideoError(
                self.stream.path,
                f"truncated: ended after frame {self.assembler.last} of "
                f"{self.stream.meta.num_frames}",
            )

    def _classify(self) -> None:
        for window in self.classify(self.pending):
            self.result.windows.append(window)
            self.builder.add(window)
        self.pending = []
        self.result.segments = self.builder.partial()
        self._annotate(self.builder.take_cells())

    def _annotate(self, cells: list[Cell]) -> None:
        if self.annotator is not None:
            self.annotator.decide(cells)

    def _flush(self) -> None:
        self._classify()
        self.result.segments = self.builder.finish(self.plan.duration_s)
        self._annotate(self.builder.take_cells())
        self.result.complete = True

    def _save(self) -> None:
        if self.out is not None:
            write_timeline(self.out, self.result)
        self.saved_at = time.monotonic()

    def _keep_partial(self, err: BaseException) -> None:
        """What was done before ``err`` goes to the file, marked incomplete."""
        if isinstance(err, BadVideoError):
            self._classify()  # the windows finished before the damage still count
        self.result.segments = self.builder.partial()
        self.result.error = str(err) if isinstance(err, Exception) else "interrupted"
        self._save()


@dataclasses.dataclass(frozen=True)
class LoadedRun:
    """What a timeline needs from a run, loaded once: ``gateshift serve`` passes one to
    :func:`timeline` for every request instead of reloading the bundle."""

    bundle: Bundle
    cfg: Config
    network: Network
    views: VideoViews


def timeline(
    run: str | Path | LoadedRun,
    video: str | Path,
    *,
    window_s: float | None = None,
    stride_s: float | None = None,
    top_k: int = 5,
    out: str | Path | None = None,
    annotate: str | Path | None = None,
    truth: str | Path | None = None,
    overrides: Sequence[str] = (),
    device: str = "cpu",
    batch_size: int = 4,
    progress: Callable[[int, int], None] | None = None,
    threads: int | None = None,
) -> Timeline:
    """The timeline of ``video`` by the run ``run`` (see the module docstring).

    ``run``: a run folder, or a :class:`LoadedRun` (``overrides`` and ``device`` then unused).
    ``overrides``: dotted keys of the run's config (``eval.num_clips=2``, ``eval.precision``).
    ``progress(done, total)`` is called with the frames decoded so far and the video's count.
    ``threads``: cores to use (None: all this process may), shared between the decoding thread
    and torch by :func:`split_threads`; torch's thread count is restored afterwards.
    """
    if top_k < 1:
        raise ValueError("--top-k must be >= 1")
    if out is not None:
        output_format(out)  # a bad extension fails before any work
    true_segments = read_truth(truth) if truth is not None else None
    decoder_threads, torch_threads = split_threads(threads)
    stream = VideoStream(video, threads=decoder_threads)  # an unreadable file fails here
    loaded = run if isinstance(run, LoadedRun) else load_run(run, overrides, device)
    bundle, cfg, network, views = loaded.bundle, loaded.cfg, loaded.network, loaded.views
    plan = _plan(stream, bundle, cfg, views, window_s, stride_s)
    classify = WindowClassifier(
        network, views, bundle.classes, frames_per_clip=plan.offsets.shape[1], top_k=top_k
    )
    result = Timeline(str(video), plan.duration_s, plan.length / plan.fps, plan.stride_s)
    annotator = None
    if annotate is not None:
        meta = stream.meta
        annotator = Annotator(annotate, width=meta.width, height=meta.height, fps=plan.fps)
    runner = _Runner(
        stream,
        plan,
        classify,
        result,
        out=out,
        annotator=annotator,
        batch_size=batch_size,
        progress=progress,
    )
    with using_threads(torch_threads):
        runner.run()
    if true_segments is not None:
        scores = score_timeline(
            result.segments, true_segments, num_frames=plan.num_frames, fps=plan.fps
        )
        result.truth = scores.to_dict()
    if out is not None:
        write_timeline(out, result)
    return result


@contextmanager
def using_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to ``count`` inside the block, as they were after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _plan(
    stream: VideoStream,
    bundle: Bundle,
    cfg: Config,
    views: VideoViews,
    window_s: float | None,
    stride_s: float | None,
) -> WindowPlan:
    fps = stream.fps
    scale = default_scale(bundle, cfg, fps, window_s, stride_s)
    plan = WindowPlan(
        stream.meta.num_frames,
        fps,
        window_s=scale.window_s,
        stride_s=scale.stride_s,
        sampler=views.sampler,
        name=str(stream.path),
    )
    log.info(
        "%s: %d windows of %.3f s every %.3f s (window: %s)",
        stream.path,
        len(plan),
        plan.length / fps,
        scale.stride_s,
        scale.origin,
    )
    return plan


def load_run(run: str | Path, overrides: Sequence[str] = (), device: str = "cpu") -> LoadedRun:
    """The run's bundle, config (``overrides`` applied), network and views."""
    cfg = load_bundle_config(run, overrides)
    settings = inference_settings(cfg)
    dev = resolve_device(device, what="device")
    dtype = settings.dtype(dev)  # before loading: a precision this device lacks fails fast
    # loaded outside inference mode (see load_bundle); score_views enters it
    bundle = load_bundle(run, device=dev, channels_last=settings.channels_last, fold=True)
    network = TorchNetwork(bundle.model, dev, dtype)
    return LoadedRun(bundle, cfg, network, VideoViews(bundle, settings.views))
