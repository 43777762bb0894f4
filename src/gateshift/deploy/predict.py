"""Prediction on new videos from a run's inference bundle alone.

The same sampling and preprocessing as evaluation: the bundle's sampling spec with its test
views (clips x crops), the eval transform of its input spec, logits averaged over views, then
softmax. A video that cannot be read gets an error entry naming the reason; nothing is guessed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gateshift.data.datasets import BadItem, VideoClipDataset
from gateshift.data.readers import make_reader
from gateshift.data.records import VideoDataset, VideoRecord
from gateshift.data.sampling import SamplingSpec, build_sampler
from gateshift.data.transforms import build_eval_transform
from gateshift.engine.build import resolve_precision
from gateshift.engine.bundle import Bundle, load_bundle
from gateshift.engine.scores import _forward_views


@dataclass
class Prediction:
    video: str
    #: per label set, the top-k (class name, class index, probability), most likely first
    top: list[list[tuple[str, int, float]]] = field(default_factory=list)
    error: str | None = None


def _dataset(bundle: Bundle, path: Path, num_clips: int, num_crops: int) -> VideoClipDataset:
    record = VideoRecord(path=path, labels=(), video_id=path.name)
    reader = make_reader(VideoDataset([record], bundle.classes, path.parent, "predict"))
    spec = dataclasses.replace(SamplingSpec(**bundle.sampling), num_clips=num_clips)
    transform = build_eval_transform(
        bundle.input_spec, num_crops=num_crops, class_names=bundle.classes[0]
    )
    return VideoClipDataset([record], reader, build_sampler(spec, "test"), transform)


def predict(
    run: str | Path,
    videos: Sequence[str | Path],
    *,
    top_k: int = 5,
    device: str = "cpu",
    num_clips: int | None = None,
    num_crops: int | None = None,
    precision: str = "auto",
) -> list[Prediction]:
    """Top-``top_k`` classes with probabilities for each video (file or frame folder).

    ``precision``: ``auto`` (fp32 on CPU, bf16/fp16 autocast on GPUs), ``fp32``, ``bf16`` (fast
    on CPUs with bf16 instructions) or ``fp16`` (GPU only).
    """
    if top_k < 1:
        raise ValueError("top_k must be >= 1")
    # loaded outside inference mode: parameters made there are inference tensors, which keep no
    # version counter, so GSM could not cache its folded weights (see GateShift.forward_after)
    bundle = load_bundle(run, device=device)
    dtype = resolve_precision(precision, torch.device(device), what="precision")
    clips = num_clips or bundle.views.get("num_clips", 1)
    crops = num_crops or bundle.views.get("num_crops", 1)
    out = []
    for video in videos:
        path = Path(video).resolve()
        if not path.exists():
            out.append(Prediction(str(video), error="missing"))
            continue
        item = _dataset(bundle, path, clips, crops)[0]
        if isinstance(item, BadItem):
            out.append(Prediction(str(video), error=item.reason))
            continue
        with torch.inference_mode():
            logits = _forward_views(bundle.model, item.clips[None], torch.device(device), dtype)[0]
        heads = torch.split(logits, list(bundle.model.head.splits))
        top = []
        for names, head in zip(bundle.classes, heads, strict=True):
            probs = head.softmax(0)
            best = probs.topk(min(top_k, probs.shape[0]))
            top.append(
                [
                    (names[int(i)], int(i), float(p))
                    for p, i in zip(best.values, best.indices, strict=True)
                ]
            )
        out.append(Prediction(str(video), top))
    return out
