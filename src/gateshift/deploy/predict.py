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

from gateshift.data.datasets import BadItem
from gateshift.inference.bundle import load_bundle, load_bundle_config
from gateshift.inference.device import resolve_device
from gateshift.inference.network import TorchNetwork
from gateshift.inference.preprocess import VideoViews
from gateshift.inference.scoring import score_views, top_classes
from gateshift.inference.settings import eval_overrides, inference_settings


@dataclass
class Prediction:
    video: str
    #: per label set, the top-k (class name, class index, probability), most likely first
    top: list[list[tuple[str, int, float]]] = field(default_factory=list)
    error: str | None = None


def predict(
    run: str | Path,
    videos: Sequence[str | Path],
    overrides: Sequence[str] = (),
    *,
    top_k: int = 5,
    device: str = "cpu",
    num_clips: int | None = None,
    num_crops: int | None = None,
    precision: str | None = None,
) -> list[Prediction]:
    """Top-``top_k`` classes with probabilities for each video (file or frame folder).

    ``overrides`` are dotted keys of the run's config (``eval.num_clips=2``); ``num_clips``,
    ``num_crops`` and ``precision`` stand for ``eval.num_clips``, ``eval.num_crops`` and
    ``eval.precision`` (applied after them). Precision: ``auto`` (fp32 on CPU, bf16/fp16
    autocast on GPUs), ``fp32``, ``bf16`` (fast on CPUs with bf16 instructions) or ``fp16`` (GPU
    only); by default the run's ``train.precision``.
    """
    if top_k < 1:
        raise ValueError("top_k must be >= 1")
    keys = eval_overrides(num_clips=num_clips, num_crops=num_crops, precision=precision)
    settings = inference_settings(load_bundle_config(run, [*overrides, *keys]))
    dev = resolve_device(device, what="device")
    dtype = settings.dtype(dev)  # before loading: a precision this device lacks fails fast
    # loaded outside inference mode (see load_bundle); score_views enters it
    bundle = load_bundle(run, device=dev, channels_last=settings.channels_last)
    network = TorchNetwork(bundle.model, dev, dtype)
    views = VideoViews(bundle, settings.views)
    out = []
    for video in videos:
        clips = views(video)
        if isinstance(clips, BadItem):
            out.append(Prediction(str(video), error=clips.reason))
            continue
        logits = score_views(network, clips[None])[0]  # (1, K, T, C, H, W) -> (classes,)
        out.append(Prediction(str(video), top_classes(logits, bundle.classes, top_k)))
    return out
