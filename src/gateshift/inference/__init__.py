"""Inference: running a trained model the way the papers test it, on any runtime.

One layer between the models and everything that uses them (``evaluate`` and training's
validation in :mod:`gateshift.engine`, ``predict`` in :mod:`gateshift.deploy`,
``gateshift.load_model``, ``gateshift profile``), so that each choice has one home:

- :mod:`.bundle`: the run's inference bundle (weights, label names, input spec, sampling, views,
  config); written by training with :func:`save_bundle`, read by :func:`load_bundle`.
- :mod:`.settings`: views (``eval.num_clips`` x ``eval.num_crops``) and precision
  (``eval.precision``, default ``train.precision``) read from a config with overrides.
- :mod:`.precision`: a precision setting -> autocast dtype on a device, and the autocast context.
- :mod:`.device`: the device a preference names; a model placed there in channels_last or NCHW.
- :mod:`.fold`: batch norms folded into the convolutions feeding them, checked on a clip
  (``predict``, ``timeline`` and ``stream`` run their torch models so).
- :mod:`.network`: the ``(B, T, C, H, W) -> logits`` callable that inference runs
  (:class:`TorchNetwork` for PyTorch; :mod:`.onnx_runtime`'s ``OnnxNetwork`` for an exported
  file, whose metadata stands in for the bundle).
- :mod:`.scoring`: logits averaged over a video's K views, in chunks; softmax top-k classes.
- :mod:`.preprocess`: a video on disk -> its views, from the bundle's sampling and input spec.
- :mod:`.profile`: parameters, FLOPs and latency of inference.
- :mod:`.compiled`: a model run through ``torch.compile`` (``train.compile``, ``--compile``).

Dependencies point one way: this package uses ``models``, ``data``, ``input_spec`` and
``config``; ``engine``, ``deploy`` and ``cli`` use it, never the reverse.
"""

from gateshift.inference.bundle import (
    BUNDLE_DIR,
    Bundle,
    bundle_dir,
    load_bundle,
    load_bundle_config,
    load_model,
    save_bundle,
)
from gateshift.inference.device import place_model, resolve_device
from gateshift.inference.fold import FoldError, fold_batchnorm
from gateshift.inference.network import Network, TorchNetwork, eval_mode
from gateshift.inference.precision import PRECISIONS, Precision, autocast, resolve_precision
from gateshift.inference.preprocess import VideoViews
from gateshift.inference.scoring import MAX_FRAMES_PER_FORWARD, score_views, top_classes
from gateshift.inference.settings import (
    InferenceSettings,
    Views,
    eval_overrides,
    inference_settings,
)

__all__ = [
    "BUNDLE_DIR",
    "MAX_FRAMES_PER_FORWARD",
    "PRECISIONS",
    "Bundle",
    "FoldError",
    "InferenceSettings",
    "Network",
    "Precision",
    "TorchNetwork",
    "VideoViews",
    "Views",
    "autocast",
    "bundle_dir",
    "eval_mode",
    "eval_overrides",
    "fold_batchnorm",
    "inference_settings",
    "load_bundle",
    "load_bundle_config",
    "load_model",
    "place_model",
    "resolve_device",
    "resolve_precision",
    "save_bundle",
    "score_views",
    "top_classes",
]
