"""``gateshift stream``: a causal run classifying a live source, one backbone pass per frame fed.

The run must be causal (trained with ``model.causal=true``; TSN runs are causal as they are): an
offline GSM/GSF/TSM reads the next frame and is refused with that advice. Frames come from
:class:`~gateshift.deploy.live_source.LiveSource` and go through the run's eval transform (short
side resize and centre crop of its input spec, as ``gateshift predict``), then
:meth:`gateshift.Streamer.step`, under the run's precision (``eval.precision``, default
``train.precision``).

**Which frames are fed.** The model learnt from frames a fixed time apart, and its temporal
modules mix features of consecutive fed frames, so the source is subsampled to that spacing
(:func:`training_stride`): with segment sampling (TSN), a training clip was the whole training
video cut into ``num_segments`` segments, one frame each, so fed frames lie ``D / num_segments``
seconds apart, ``D`` the median training video's duration (recorded in the bundle as ``clips``
by training; frame folders carry no rate, so their median frame count over ``num_segments``
is taken in frames of the source); with dense sampling, ``frame_interval`` frames at the
training videos' median rate. A frame is fed once its timestamp reaches the next due time;
frames in between are decoded and dropped. ``stride_s`` overrides the derivation.

**Outputs.** Every ``every``-th fed frame gives one :class:`StreamOutput`: the source time of
the frame, the top-k classes of the mean of the last ``smooth`` per-frame logits (default
``num_segments``: the consensus the model was trained with; 1: the frame's own logits). After a
network reconnection the streamer is reset (the gap breaks the frame spacing).

**Resets.** The model learnt from clips of ``num_segments`` frames that start from zeros; fed an
unbounded history, its deep features drift from what it was trained on (the demo's long videos:
frame accuracy 0.55 without resets). So by default the streamer starts afresh every
``num_segments`` fed frames (``reset``; 0: never): the output at the end of each block is then
exactly the offline causal model's score of that clip (0.96 on the same videos), still at one
backbone pass per frame; outputs inside a block rest on the frames since the reset. The returned
:class:`StreamStats` say how many frames were read, fed and output, and the sustained rate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gateshift.data.sampling import SamplingSpec
from gateshift.data.transforms import build_eval_transform
from gateshift.deploy.live_source import LiveSource
from gateshift.deploy.stream_export import STREAM_FILE, OnnxStreamer
from gateshift.deploy.streaming import NotCausalError, Streamer, check_causal
from gateshift.deploy.timeline import training_clip
from gateshift.inference.bundle import Bundle, load_bundle, load_bundle_config
from gateshift.inference.device import resolve_device
from gateshift.inference.precision import autocast
from gateshift.inference.scoring import TopClasses, top_classes
from gateshift.inference.settings import inference_settings

log = logging.getLogger(__name__)


@dataclass
class StreamOutput:
    time: float  # seconds since the source's first frame
    frame: int  # fed frames so far, this one included
    top: TopClasses  # per label set: (class, index, probability), most likely first

    def to_dict(self) -> dict[str, Any]:
        top = [[[name, round(p, 5)] for name, _, p in head] for head in self.top]
        return {"time": round(self.time, 4), "frame": self.frame, "top": top[0] if len(top) == 1
                else top}  # fmt: skip


@dataclass
class StreamStats:
    frames_read: int = 0
    frames_fed: int = 0
    outputs: int = 0
    seconds: float = 0.0  # wall clock, first frame to last
    model_seconds: float = 0.0  # inside Streamer.step
    stride_s: float = 0.0
    stride_origin: str = ""
    reconnects: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def fed_per_second(self) -> float:
        return self.frames_fed / self.seconds if self.seconds else 0.0

    @property
    def model_frames_per_second(self) -> float:
        return self.frames_fed / self.model_seconds if self.model_seconds else 0.0


def training_stride(bundle: Bundle, cfg: Any, source_fps: float | None) -> tuple[float, str]:
    """Seconds between fed frames, and where the number comes from (see the module docstring)."""
    spec = SamplingSpec(**bundle.sampling)
    clip = training_clip(bundle, cfg)
    if spec.mode == "dense":
        rate = clip.fps if clip is not None and clip.fps else source_fps
        if not rate:
            raise ValueError("the frame rate of neither training videos nor source is known: "
                             "pass --stride SECONDS")  # fmt: skip
        return spec.frame_interval / rate, (
            f"dense sampling: frame_interval {spec.frame_interval} at {rate:g} fps"
        )
    if clip is None:
        raise ValueError(
            f"{bundle.folder} does not record how long its training videos are and its "
            f"training data ({cfg.data.root}) cannot be read: pass --stride SECONDS"
        )
    t = spec.num_segments
    if clip.duration_s:
        return clip.duration_s / t, (
            f"median training video {clip.duration_s:.3f} s / {t} segments"
        )
    if not source_fps:
        raise ValueError("training frame folders carry no frame rate and neither does the "
                         "source: pass --stride SECONDS")  # fmt: skip
    return clip.num_frames / t / source_fps, (
        f"median training frame folder {clip.num_frames} frames / {t} segments at the "
        f"source's {source_fps:g} fps"
    )


class FramePicker:
    """Whether a frame at ``time_s`` is fed: the first one, then one per ``stride_s``."""

    def __init__(self, stride_s: float) -> None:
        if not stride_s > 0:
            raise ValueError(f"--stride must be positive, got {stride_s:g} s")
        self.stride_s = stride_s
        self.due: float | None = None

    def __call__(self, time_s: float) -> bool:
        tolerance = 1e-3 * self.stride_s  # timestamps rounded to the stream's time base
        if self.due is not None and time_s + tolerance < self.due:
            return False
        self.due = (time_s if self.due is None else self.due) + self.stride_s
        if self.due <= time_s:  # fell behind (a gap in the source): start again from here
            self.due = time_s + self.stride_s
        return True


def stream(
    run: str | Path,
    source: str,
    emit: Callable[[StreamOutput], None],
    *,
    every: int = 1,
    smooth: int | None = None,
    top_k: int = 5,
    stride_s: float | None = None,
    reset: int | None = None,
    retries: int = 5,
    device: str = "cpu",
    overrides: Sequence[str] = (),
    max_outputs: int | None = None,
    backend: str = "torch",
    onnx: str | Path | None = None,
) -> StreamStats:
    """Classify ``source`` with the causal run ``run``; ``emit`` gets each output as it comes.

    ``backend="onnxruntime"`` steps the run's streaming export instead (``onnx``, default
    ``RUN/export/stream.onnx``, written by ``gateshift export RUN --stream``)."""
    check_stream_flags(
        every=every,
        smooth=smooth,
        reset=reset,
        top_k=top_k,
        retries=retries,
        max_outputs=max_outputs,
        stride_s=stride_s,
    )
    cfg = load_bundle_config(run, overrides)
    settings = inference_settings(cfg)
    dev = resolve_device(device, what="device")
    dtype = settings.dtype(dev)
    bundle = load_bundle(run, device=dev, channels_last=settings.channels_last, fold=True)
    try:
        check_causal(bundle.model)
    except NotCausalError as err:
        raise NotCausalError(f"{run}: {err}") from None
    smooth, reset = _options(bundle.model.num_segments, smooth, reset)
    streamer = _streamer(run, bundle, smooth, backend, onnx, dev)
    transform = build_eval_transform(bundle.input_spec, num_crops=1)
    live = LiveSource(source, retries=retries, on_reconnect=streamer.reset)
    if stride_s is None:
        stride_s, origin = training_stride(bundle, cfg, live.fps)
    else:
        origin = "--stride"
    log.info("%s: feeding a frame every %.4f s (%s)", source, stride_s, origin)
    stats = StreamStats(stride_s=stride_s, stride_origin=origin)
    pick = FramePicker(stride_s)
    start: float | None = None
    for time_s, rgb in live:
        start = time.perf_counter() if start is None else start
        stats.frames_read += 1
        if not pick(time_s):
            continue
        if reset and stats.frames_fed % reset == 0:
            streamer.reset()  # a new clip, as the model was trained on
        logits = _step(streamer, transform, rgb, dev, dtype, stats)
        stats.frames_fed += 1
        if stats.frames_fed % every == 0:
            scores = streamer.smoothed(min(smooth, streamer.frames))[0] if smooth > 1 else logits
            emit(StreamOutput(time_s, stats.frames_fed, top_classes(scores, bundle.classes,
                                                                    top_k)))  # fmt: skip
            stats.outputs += 1
            if max_outputs is not None and stats.outputs >= max_outputs:
                break
        stats.seconds = time.perf_counter() - start
    stats.reconnects = live.reconnects
    return stats


def _streamer(
    run: str | Path,
    bundle: Bundle,
    window: int,
    backend: str,
    onnx: str | Path | None,
    device: torch.device,
) -> Streamer | OnnxStreamer:
    """The run's PyTorch streamer, or ONNX Runtime's on its streaming export (checked to be
    this run's: same model, labels and frame size)."""
    if backend == "torch":
        if onnx is not None:
            raise ValueError("--onnx goes with --backend onnxruntime")
        return Streamer(bundle.model, window=window)
    if backend != "onnxruntime":
        raise ValueError(f"unknown stream backend {backend!r}; choose torch or onnxruntime")
    if device.type != "cpu":
        raise ValueError("--backend onnxruntime streams on the CPU; drop --device")
    path = Path(onnx) if onnx is not None else Path(run) / STREAM_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"no streaming export {path}: write it with `gateshift export {run} --stream`"
        )
    streamer = OnnxStreamer(path, window=window)
    meta = streamer.meta
    if (
        meta.get("model") != bundle.model.name
        or meta.get("classes") != bundle.classes
        or meta.get("input_spec", {}).get("crop_size") != bundle.input_spec.crop_size
    ):
        raise ValueError(
            f"{path} is not a streaming export of {run}: its model, labels or frame size "
            f"({meta.get('model')}, {meta.get('input_spec', {}).get('crop_size')} px) differ "
            f"from the run's ({bundle.model.name}, {bundle.input_spec.crop_size} px)"
        )
    return streamer


def check_stream_flags(
    *,
    every: int = 1,
    smooth: int | None = None,
    reset: int | None = None,
    top_k: int = 5,
    retries: int = 5,
    max_outputs: int | None = None,
    stride_s: float | None = None,
) -> None:
    """A bad option of :func:`stream` is an error naming its flag, before anything loads."""
    for flag, value, least in (
        ("--every", every, 1),
        ("--smooth", smooth, 1),
        ("--reset", reset, 0),
        ("--top-k", top_k, 1),
        ("--retries", retries, 0),
        ("--max-outputs", max_outputs, 1),
    ):
        if value is not None and value < least:
            raise ValueError(f"{flag} must be >= {least}, got {value}")
    if stride_s is not None and not stride_s > 0:
        raise ValueError(f"--stride must be positive, got {stride_s:g} s")


def _options(num_segments: int, smooth: int | None, reset: int | None) -> tuple[int, int]:
    """``smooth`` and ``reset`` resolved (None: ``num_segments``)."""
    return (num_segments if smooth is None else smooth, num_segments if reset is None else reset)


def _step(
    streamer: Streamer | OnnxStreamer,
    transform: Any,
    rgb: Tensor,
    device: torch.device,
    dtype: torch.dtype | None,
    stats: StreamStats,
) -> Tensor:
    """One frame ``(3, H, W)`` uint8 through the eval transform and the streamer: ``(K,)``."""
    frame = transform(rgb[None], (), torch.Generator())[0][0, 0]  # (V=1, T=1, 3, S, S) -> (3, S, S)
    began = time.perf_counter()
    with torch.inference_mode(), autocast(device, dtype):
        logits = streamer.step(frame.to(device))
    stats.model_seconds += time.perf_counter() - began
    return logits.float().cpu()
