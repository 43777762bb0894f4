"""Prediction on new videos from a run's inference bundle alone.

The same sampling, preprocessing and scoring as evaluation, from :mod:`gateshift.inference`: the
bundle's sampling spec with its test views (``eval.num_clips`` clips x ``eval.num_crops`` crops
of the bundle's config, overridable), the eval transform of its input spec, logits averaged over
views, then softmax and top-k. The precision is ``eval.precision``, by default the run's
``train.precision`` (``auto``: fp32 on CPU), and the memory format the run's
``train.channels_last``, as in ``evaluate``. A video that cannot be read gets
an error entry naming the reason; nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from gateshift.config import load_config
from gateshift.data.datasets import BadItem
from gateshift.inference.bundle import load_bundle, load_bundle_config
from gateshift.inference.compiled import check_compilable, compile_model
from gateshift.inference.device import resolve_device
from gateshift.inference.network import Network, TorchNetwork
from gateshift.inference.onnx_runtime import RUNTIMES, load_onnx, read_metadata
from gateshift.inference.preprocess import Preprocessing, VideoViews
from gateshift.inference.scoring import score_views, top_classes
from gateshift.inference.settings import Views, eval_overrides, inference_settings


@dataclass
class Prediction:
    video: str
    #: per label set, the top-k (class name, class index, probability), most likely first
    top: list[list[tuple[str, int, float]]] = field(default_factory=list)
    error: str | None = None


Backend = Literal["torch", "onnxruntime", "openvino"]
BACKENDS = ("torch", *RUNTIMES)


def predict(
    run: str | Path,
    videos: Sequence[str | Path],
    overrides: Sequence[str] = (),
    *,
    backend: Backend = "torch",
    onnx: str | Path | None = None,
    top_k: int = 5,
    device: str = "cpu",
    num_clips: int | None = None,
    num_crops: int | None = None,
    precision: str | None = None,
    compile: bool = False,
) -> list[Prediction]:
    """Top-``top_k`` classes with probabilities for each video (file or frame folder).

    ``run`` is a run folder, or an ``.onnx`` file exported by ``gateshift export`` (which then
    runs on ONNX Runtime, or on OpenVINO with ``backend="openvino"``, from the file alone).
    ``backend="onnxruntime"`` or ``"openvino"`` with a run folder runs ``onnx`` (default
    ``RUN/export/model.onnx``). ``overrides`` are dotted keys of the run's
    config (``eval.num_clips=2``); ``num_clips``, ``num_crops`` and ``precision`` stand for
    ``eval.num_clips``, ``eval.num_crops`` and ``eval.precision`` (applied after them).
    Precision: ``auto`` (fp32 on CPU, bf16/fp16 autocast on GPUs), ``fp32``, ``bf16`` (fast on
    CPUs with bf16 instructions) or ``fp16`` (GPU only); by default the run's
    ``train.precision``. ONNX Runtime runs the precision the file was exported in; OpenVINO runs
    an fp32 file in fp32, or in bf16 when the precision asked for is bf16. ``compile``: run the
    torch backend's model through ``torch.compile`` (:mod:`gateshift.inference.compiled`).
    """
    if top_k < 1:
        raise ValueError("top_k must be >= 1")
    keys = [
        *overrides,
        *eval_overrides(num_clips=num_clips, num_crops=num_crops, precision=precision),
    ]
    network, source, views = load_network(
        run, keys, backend=backend, onnx=onnx, device=device, compile=compile
    )
    prepare = VideoViews(source, views)
    return [predict_video(network, prepare, video, top_k=top_k) for video in videos]


def predict_video(
    network: Network,
    prepare: VideoViews,
    video: str | Path,
    *,
    top_k: int = 5,
    name: str | None = None,
) -> Prediction:
    """One video's prediction as :func:`predict` makes it, from a network and preprocessing
    loaded once (``gateshift serve`` reuses them); ``name`` is what the entry calls the video
    (default: its path)."""
    label = str(video) if name is None else name
    clips = prepare(video)
    if isinstance(clips, BadItem):
        return Prediction(label, error=clips.reason)
    logits = score_views(network, clips[None])[0]  # (1, K, T, C, H, W) -> (classes,)
    return Prediction(label, top_classes(logits, prepare.classes, top_k))


def load_network(
    run: str | Path,
    keys: Sequence[str] = (),
    *,
    backend: Backend = "torch",
    onnx: str | Path | None = None,
    device: str = "cpu",
    compile: bool = False,
) -> tuple[Network, Preprocessing, Views]:
    """What :func:`predict` runs (see there for ``run``, ``backend``, ``onnx`` and ``compile``):
    the network, the preprocessing it reads from the bundle or file, and the views after the
    ``keys`` overrides (``eval.num_clips=2``)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    onnx_file = Path(run).suffix == ".onnx"
    if compile:
        check_compilable("onnxruntime" if onnx_file and backend == "torch" else backend)
    if backend in RUNTIMES or onnx_file:
        runtime = "onnxruntime" if backend == "torch" else backend
        return _onnx_backend(run, onnx, keys, runtime)
    return _torch_backend(run, keys, device, compile=compile)


def _torch_backend(
    run: str | Path, keys: Sequence[str], device: str, *, compile: bool = False
) -> tuple[Network, Preprocessing, Views]:
    settings = inference_settings(load_bundle_config(run, keys))
    dev = resolve_device(device, what="device")
    dtype = settings.dtype(dev)  # before loading: a precision this device lacks fails fast
    # loaded outside inference mode (see load_bundle); score_views enters it
    bundle = load_bundle(run, device=dev, channels_last=settings.channels_last, fold=True)
    model = compile_model(bundle.model, what="prediction") if compile else bundle.model
    return TorchNetwork(model, dev, dtype), bundle, settings.views


def _onnx_backend(
    run: str | Path, onnx: str | Path | None, keys: Sequence[str], runtime: str
) -> tuple[Network, Preprocessing, Views]:
    """The exported file's network on ``runtime`` and its metadata; the view keys apply to its
    views."""
    path = Path(run)
    if path.suffix != ".onnx":
        path = Path(onnx) if onnx is not None else path / "export" / "model.onnx"
    # the stored views are the defaults; the precision must be known before loading
    stored = read_metadata(path).get("views", {})
    base = [f"eval.num_clips={stored.get('num_clips', 1)}"]
    base.append(f"eval.num_crops={stored.get('num_crops', 1)}")
    settings = inference_settings(load_config(None, [*base, *keys], checked=False))
    exported = load_onnx(path, runtime=runtime, dtype=settings.dtype(torch.device("cpu")))
    return exported.network, exported, settings.views
