"""Streaming on ONNX Runtime: a causal model's one-frame step as an ONNX graph that carries its
temporal state as inputs and outputs, and :class:`OnnxStreamer`, the :class:`~gateshift.Streamer`
of such a file.

Why: one frame at batch 1 is where PyTorch's per-op overhead weighs most. ONNX Runtime runs a
224 px MobileNetV2 frame in about 1/8 of the time of a clip of 8 (2-core Intel Xeon, see the
README's streaming benchmark), where eager PyTorch takes 1.4-1.6x more per frame alone than in a
batch of 8. TSM's online demo takes the same route (its shift buffers are inputs and outputs of a
compiled graph); here the graph is PyTorch's maintained exporter's (``torch.onnx.export(...,
dynamo=True)``), as for :mod:`gateshift.deploy.export`.

**The graph.** Inputs ``frame`` ``(N, 3, S, S)`` (N independent streams, the model's input spec)
and ``state_0 .. state_{k-1}``; outputs ``logits`` ``(N, K)``, that frame's logits, and
``next_state_0 ..``, to feed as the next call's state. All-zero states start a stream. The state
is what each temporal module's streaming adapter keeps (:mod:`gateshift.models.temporal.stream`,
in model order, each module's tensors in :meth:`~.StreamAdapter.state` order); the file's
metadata lists their shapes without the batch axis (``stream.states``) besides what every export
carries (labels, input spec, sampling, test views, model name). The batch axis is dynamic, the
frame size fixed. A TSN has no state: its graph is the per-frame network.

**Parity.** :func:`export_stream_checked` keeps a file only if ONNX Runtime, fed its own next
states, reproduces the PyTorch :class:`~gateshift.Streamer`'s per-frame logits on the clips given
(streamed frame by frame, the clips as a batch of streams): max relative logit error within
``tolerance`` (1e-4) and the same top-1 class on every frame.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gateshift._files import staged
from gateshift.deploy.export import (
    _quiet_tools,
    default_metadata,
    random_clips,
    run_clips,
    run_metadata,
    write_onnx,
)
from gateshift.deploy.streaming import FrameWindow, Streamer, check_causal, check_frame
from gateshift.inference.bundle import load_bundle
from gateshift.inference.onnx_runtime import import_onnxruntime, ort_session, read_metadata
from gateshift.models.recognizer import Recognizer
from gateshift.models.temporal.insert import TemporalWrap
from gateshift.models.temporal.stream import StreamAdapter, stream_module

log = logging.getLogger(__name__)

#: the file a run's streaming export goes to, inside the run folder
STREAM_FILE = Path("export") / "stream.onnx"


class StreamStep(nn.Module):
    """A causal recognizer's step as a pure function: ``(frame, state) -> (logits, next_state)``.

    Holds a copy of ``model`` whose temporal modules are their streaming adapters; ``state`` is
    the flat list of every adapter's state tensors (zeros of :func:`state_shapes` start a stream).
    """

    def __init__(self, model: Recognizer) -> None:
        super().__init__()
        check_causal(model)
        self.model = copy.deepcopy(model).eval()
        self.adapters: list[StreamAdapter] = []
        for wrap in self.model.modules():
            if isinstance(wrap, TemporalWrap):
                adapter = stream_module(wrap.temporal)
                wrap.temporal = adapter
                self.adapters.append(adapter)
        self._sizes = [adapter.state_size for adapter in self.adapters]

    def forward(self, frame: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        if len(state) != sum(self._sizes):
            raise ValueError(f"the step takes {sum(self._sizes)} state tensors, got {len(state)}")
        at = 0
        for adapter, size in zip(self.adapters, self._sizes, strict=True):
            adapter.load_state(state[at : at + size])
            at += size
        logits = self.model.head(self.model.backbone(frame))
        return logits, [t for adapter in self.adapters for t in adapter.state()]


def state_shapes(model: Recognizer, size: int) -> list[tuple[int, ...]]:
    """The shapes (without the batch axis) of a causal model's streaming state at ``size`` px."""
    streamer = Streamer(model)
    with torch.no_grad():
        streamer.step(torch.zeros(1, 3, size, size))
    return [tuple(t.shape[1:]) for t in streamer.state()]


@dataclass(frozen=True)
class StreamExportReport:
    """What a streaming export wrote and how closely ONNX Runtime follows PyTorch."""

    path: str
    states: int
    max_rel_error: float
    top1_agreement: float
    frames: int  # frames checked: clips x frames per clip
    source: str  # where the checked clips came from: "validation" or "random"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def export_stream_checked(
    model: Recognizer,
    path: str | Path,
    *,
    clips: Tensor | None = None,
    clips_source: str = "random",
    metadata: dict[str, Any] | None = None,
    opset: int | None = None,
    tolerance: float = 1e-4,
) -> StreamExportReport:
    """Write the causal ``model``'s one-frame step to ``path`` (see the module docstring) only if
    ONNX Runtime streams ``clips`` ``(N, T, 3, S, S)`` (default: 2 random clips) frame by frame
    as the PyTorch :class:`~gateshift.Streamer` does; else an error, and no file."""
    check_causal(model)
    import_onnxruntime()  # the clear error before a long export
    path = Path(path)
    metadata = dict(metadata or default_metadata(model))
    size = int(metadata["input_spec"]["crop_size"])
    if clips is None:
        clips = random_clips(model, 2, size=size)
    if clips.shape[-1] != size:
        raise ValueError(f"check clips are {clips.shape[-1]} px, the model's input {size} px")
    step = StreamStep(model)
    shapes = state_shapes(model, size)
    metadata["stream"] = {"states": [list(s) for s in shapes]}
    # traced at batch 2 (torch.export fixes a dimension of size 1 to a constant)
    batch = torch.export.Dim("batch", min=1, max=4096)
    example = (torch.randn(2, 3, size, size), [torch.zeros(2, *s) for s in shapes])
    names = [f"state_{i}" for i in range(len(shapes))]
    with staged(path, ".onnx") as tmp:
        with _quiet_tools():
            write_onnx(
                step,
                example,
                tmp,
                opset=opset,
                metadata={**metadata, "precision": "fp32"},
                input_names=["frame", *names],
                output_names=["logits", *(f"next_{n}" for n in names)],
                dynamic_shapes=({0: batch}, [{0: batch}] * len(shapes)),
                name=f"{model.name} (streaming step)",
            )
        error, agreement = _stream_parity(model, tmp, clips, tolerance)
    log.info("wrote %s: %d state tensors, max relative error %.2e", path, len(shapes), error)
    return StreamExportReport(
        str(path), len(shapes), error, agreement, int(clips.shape[0] * clips.shape[1]), clips_source
    )


def _stream_parity(
    model: Recognizer, path: Path, clips: Tensor, tolerance: float
) -> tuple[float, float]:
    """(max relative logit error, top-1 agreement) of the file streaming ``clips`` against the
    PyTorch streamer, over every frame; an error past ``tolerance`` or any top-1 difference."""
    torch_streamer = Streamer(model)
    onnx_streamer = OnnxStreamer(path)
    want, got = [], []
    with torch.no_grad():
        for t in range(clips.shape[1]):
            want.append(torch_streamer.step(clips[:, t].float()))
            got.append(onnx_streamer.step(clips[:, t].float()))
    w, g = torch.cat(want), torch.cat(got)
    scale = w.abs().amax(dim=1).clamp(min=1e-12)
    error = float(((g - w).abs().amax(dim=1) / scale).max())
    agreement = float((g.argmax(1) == w.argmax(1)).float().mean())
    log.info("stream parity: max relative error %.2e, top-1 agreement %.3f", error, agreement)
    if error > tolerance or agreement < 1.0:
        raise ValueError(
            f"the streaming ONNX export does not reproduce {model.name}'s streamer: max "
            f"relative logit error {error:.2e} (limit {tolerance:.0e}), top-1 agreement "
            f"{agreement:.3f} over {len(w)} frames; nothing was written"
        )
    return error, agreement


def export_stream_run(
    run: str | Path,
    out: str | Path | None = None,
    *,
    opset: int | None = None,
    clips: int = 4,
    tolerance: float = 1e-4,
) -> StreamExportReport:
    """A causal run's streaming step with its bundle's labels, input spec, sampling and views
    (default ``RUN/export/stream.onnx``), checked on ``clips`` validation clips streamed frame
    by frame (random clips when the data cannot be reached)."""
    if clips < 1:
        raise ValueError("the parity check needs at least one clip")
    bundle = load_bundle(run, channels_last=False)
    check_causal(bundle.model)
    path = Path(out) if out is not None else Path(run) / STREAM_FILE
    check, source = run_clips(bundle, clips)
    return export_stream_checked(
        bundle.model,
        path,
        clips=check,
        clips_source=source,
        metadata=run_metadata(bundle),
        opset=opset,
        tolerance=tolerance,
    )


class OnnxStreamer(FrameWindow):
    """:class:`~gateshift.Streamer` on ONNX Runtime: ``step(frame)`` runs a streaming export
    (:func:`export_stream_checked`) on one frame ``(C, H, W)`` or a batch of streams
    ``(N, C, H, W)`` and keeps the state it returns; ``reset()`` starts afresh (zeros)."""

    def __init__(
        self, path: str | Path, *, window: int | None = None, threads: int | None = None
    ) -> None:
        self.path = Path(path)
        self.meta = read_metadata(self.path)
        if "stream" not in self.meta:
            raise ValueError(
                f"{self.path} is a clip model, not a streaming export: write one with "
                "`gateshift export RUN --stream`"
            )
        super().__init__(window or int(self.meta["num_segments"]))
        self.shapes = [tuple(int(d) for d in s) for s in self.meta["stream"]["states"]]
        self.session = ort_session(self.path, threads)
        self._inputs = [i.name for i in self.session.get_inputs()]
        self._state: list[np.ndarray] | None = None

    def reset(self) -> None:
        super().reset()
        self._state = None

    def step(self, frame: Tensor) -> Tensor:
        """Logits of the newest frame: ``(C, H, W)`` -> ``(K,)``, ``(N, C, H, W)`` -> ``(N, K)``."""
        batch = check_frame(frame).detach().to("cpu", torch.float32).contiguous().numpy()
        n = batch.shape[0]
        if self._state is None:
            self._state = [np.zeros((n, *s), np.float32) for s in self.shapes]
        elif self._state and self._state[0].shape[0] != n:
            raise ValueError(
                f"the stream batch changed from {self._state[0].shape[0]} to {n} streams; "
                "reset() the stream first"
            )
        feed = dict(zip(self._inputs, [batch, *self._state], strict=True))
        logits, *self._state = self.session.run(None, feed)
        out = torch.from_numpy(np.asarray(logits))
        self._record(out)
        return out if frame.dim() == 4 else out[0]
