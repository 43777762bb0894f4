"""gateshift: video action recognition with the Gate-Shift Module (GSM), GSF, TSM and TSN.

Public API::

    model = gateshift.create_model("bninception_gsm", num_classes=174, num_segments=8)
    gateshift.list_models("resnet50_*")
    gateshift.load_pretrained(model, "bn_inception-9f5701afb96c8044.pth")   # ImageNet weights
    gateshift.load_official_checkpoint(model, "something_BNInception_gsm_8.pth.tar")
    model = gateshift.load_model("runs/demo_gsm")   # a trained run, ready for inference
    streamer = gateshift.Streamer(causal_model)     # logits = streamer.step(frame), one per frame
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gateshift._version import __version__
from gateshift.deploy.streaming import Streamer
from gateshift.input_spec import InputSpec
from gateshift.models import create_model, list_models
from gateshift.models.weights import load_official_checkpoint, load_pretrained
from gateshift.registry import register_model

if TYPE_CHECKING:
    from gateshift.models.recognizer import Recognizer


def load_model(path: str | Path, *, device: str = "cpu", channels_last: bool = True) -> Recognizer:
    """The model of a training run folder, weights loaded, in eval mode, label names in
    ``model.classes``; in channels_last memory format unless asked not to (same outputs,
    faster convolutions). The inference layer (:mod:`gateshift.inference`) does the work; it is
    imported lazily, since it pulls in the video readers."""
    from gateshift.inference.bundle import load_model as load_bundle_model

    return load_bundle_model(path, device=device, channels_last=channels_last)


__all__ = [
    "InputSpec",
    "Streamer",
    "__version__",
    "create_model",
    "list_models",
    "load_model",
    "load_official_checkpoint",
    "load_pretrained",
    "register_model",
]
