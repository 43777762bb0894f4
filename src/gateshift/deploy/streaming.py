"""``Streamer``: a causal model one frame at a time, one backbone pass per frame.

A causal recognizer (``create_model(..., causal=True)``, trained with ``model.causal=true``) gives
frame t features that depend on frames <= t only (:mod:`gateshift.models.temporal.causal`). So
a live source needs no sliding clip re-run per output (what MMAction2's webcam demo does, T
backbone passes per output): :class:`Streamer` swaps each temporal module for its streaming
adapter (:mod:`gateshift.models.temporal.stream`, which keeps exactly the state that module needs
from earlier frames) for the duration of one backbone pass over the new frame, then applies the
head to that frame's features.

**Consensus.** :meth:`Streamer.step` returns that frame's logits: what the offline causal model
gives the same frame inside one long clip holding all frames so far (before averaging; the test
checks 1e-5). Training averaged the logits of ``num_segments`` frames (average consensus), so
:meth:`Streamer.smoothed` gives the mean of the last ``k`` per-frame logits (default
``num_segments``), the streaming counterpart of a clip's score. It is not the score of an
offline clip of those frames: in the stream, features also see the frames before the window,
where a clip starts from zeros. A model trained on clips drifts when fed an unbounded history;
calling :meth:`Streamer.reset` every ``num_segments`` frames makes each block's last
``smoothed()`` exactly the offline causal clip score (``gateshift stream`` does so by default,
:mod:`gateshift.deploy.stream_run`).

The streamer is not thread-safe (it swaps modules of the model in place during a step, and puts
the model in eval mode). TSN has no temporal module: its frames are independent, so it streams
as it is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor

from gateshift.models.recognizer import Recognizer
from gateshift.models.temporal.insert import TemporalWrap
from gateshift.models.temporal.stream import StreamAdapter, stream_module


class NotCausalError(ValueError):
    """The model reads later frames (an offline GSM/GSF/TSM), so it cannot stream."""


def check_causal(model: Recognizer) -> None:
    """Raise :class:`NotCausalError` unless every temporal module of ``model`` is causal."""
    offline = [
        name
        for name, wrap in model.named_modules()
        if isinstance(wrap, TemporalWrap) and not getattr(wrap.temporal, "causal", False)
    ]
    if offline:
        raise NotCausalError(
            f"{model.name or 'the model'} is an offline model: its temporal modules read the next "
            f"frame ({len(offline)} of them, e.g. {offline[0]}), so it cannot stream; train it "
            "with model.causal=true (or build it with create_model(..., causal=True))"
        )


class FrameWindow:
    """The per-frame logits of the last ``window`` steps and their mean: what a streamer keeps
    besides its model's state (:class:`Streamer`, and ONNX Runtime's
    :class:`~gateshift.deploy.stream_export.OnnxStreamer`)."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self._recent: deque[Tensor] = deque(maxlen=window)
        self.frames = 0

    def reset(self) -> None:
        """Forget every earlier frame: the next step is a stream's first frame."""
        self._recent.clear()
        self.frames = 0

    def _record(self, logits: Tensor) -> None:
        self._recent.append(logits)
        self.frames += 1

    def smoothed(self, k: int | None = None) -> Tensor:
        """Mean of the last ``k`` (default: ``window``, the model's ``num_segments``) per-frame
        logits, shaped as the batched output of ``step`` ``(N, K)``."""
        if not self._recent:
            raise RuntimeError("no frame streamed yet")
        k = self.window if k is None else k
        if not 1 <= k <= self.window:
            raise ValueError(f"smoothing over {k} frames; the streamer keeps 1..{self.window}")
        return torch.stack(list(self._recent)[-k:]).mean(0)


def check_frame(frame: Tensor) -> Tensor:
    """``frame`` as a batch ``(N, C, H, W)``; a clear error for anything but float frames."""
    if frame.dim() not in (3, 4):
        raise ValueError(
            f"Streamer.step takes a frame (C, H, W) or a batch (N, C, H, W), got "
            f"{tuple(frame.shape)}"
        )
    if not frame.is_floating_point():
        raise TypeError(
            f"frames must be normalised float frames, got {frame.dtype}; apply the model's "
            "input spec first"
        )
    return frame if frame.dim() == 4 else frame.unsqueeze(0)


class Streamer(FrameWindow):
    """Per-frame logits of a causal recognizer fed one frame (or one frame per stream) at a time.

    ``step(frame)``: ``frame`` is one preprocessed frame ``(C, H, W)`` (the model's input spec,
    float) or a batch ``(N, C, H, W)``, frame t of N independent streams; returns ``(K,)`` or
    ``(N, K)`` logits. ``reset()`` starts the streams afresh.
    """

    def __init__(self, model: Recognizer, *, window: int | None = None) -> None:
        check_causal(model)
        super().__init__(window or model.num_segments)
        model.eval()
        self.model = model
        self._adapters: list[tuple[TemporalWrap, StreamAdapter]] = [
            (wrap, stream_module(wrap.temporal))
            for wrap in model.modules()
            if isinstance(wrap, TemporalWrap)
        ]
        first = next((p for p in model.parameters() if p.dim() == 4), None)
        self._channels_last = first is not None and not first.is_contiguous()

    def reset(self) -> None:
        """Forget every earlier frame: the next step is a stream's first frame."""
        for _, adapter in self._adapters:
            adapter.reset()
        super().reset()

    def state(self) -> list[Tensor]:
        """Every temporal module's state after the last step, as one flat list of per-stream
        tensors (model order; see :meth:`~gateshift.models.temporal.stream.StreamAdapter.state`)."""
        return [t for _, adapter in self._adapters for t in adapter.state()]

    @contextmanager
    def _streaming(self) -> Iterator[None]:
        for wrap, adapter in self._adapters:
            wrap.temporal = adapter
        try:
            yield
        finally:
            for wrap, adapter in self._adapters:
                wrap.temporal = adapter.module

    def step(self, frame: Tensor) -> Tensor:
        """Logits of the newest frame: ``(C, H, W)`` -> ``(K,)``, ``(N, C, H, W)`` -> ``(N, K)``."""
        batch = check_frame(frame)
        if self._channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.no_grad(), self._streaming():
            features = self.model.backbone(batch)  # (N, F)
        with torch.no_grad():
            logits = self.model.head(features)  # (N, K)
        self._record(logits)
        return logits if frame.dim() == 4 else logits[0]
