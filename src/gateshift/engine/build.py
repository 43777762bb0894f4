"""Model set-up for a run: the model of ``cfg.model`` and its starting weights (ImageNet, another
run's bundle, a checkpoint or the authors' file). Precision and placement are the inference
layer's (:mod:`gateshift.inference.precision`, :mod:`gateshift.inference.device`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from gateshift.config import Config
from gateshift.engine.checkpoint import load_checkpoint
from gateshift.inference.bundle import bundle_dir
from gateshift.models import create_model
from gateshift.models.recognizer import Recognizer
from gateshift.models.weights import load_strict, map_official_checkpoint, read_weights

log = logging.getLogger(__name__)


def model_kwargs(cfg: Config) -> dict[str, Any]:
    """Builder options of ``cfg.model`` (saved in bundles so a model rebuilds identically)."""
    return {
        "dropout": cfg.model.dropout,
        "interleave": cfg.model.interleave,
        "gsf_ratio": cfg.model.gsf_ratio,
        "shift_div": cfg.model.shift_div,
        "width": cfg.model.width,
        "causal": cfg.model.causal,
    }


def build_model(cfg: Config, num_classes: int | tuple[int, ...]) -> Recognizer:
    """``cfg.model.name`` with ImageNet weights (``pretrained``) and/or ``init_from`` weights."""
    model: Recognizer = create_model(
        cfg.model.name,
        num_classes=num_classes,
        num_segments=cfg.model.num_segments,
        pretrained=cfg.model.pretrained,
        **model_kwargs(cfg),
    )
    if cfg.model.init_from:
        initialise_from(model, cfg.model.init_from)
    return model


def _init_state(model: Recognizer, source: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Weights in ``source``: a run folder (its bundle), a gateshift checkpoint, or an authors'
    ``.pth.tar``; returned under our key names (with the file's names for messages)."""
    if source.is_dir():
        return read_weights(bundle_dir(source) / "model.safetensors"), {}
    payload = read_weights(source)
    if payload.get("format") is not None and "model" in payload:
        return dict(load_checkpoint(source)["model"]), {}
    return map_official_checkpoint(model, payload, str(source))


def initialise_from(model: Recognizer, source: str | Path) -> None:
    """Start from another run's or the authors' weights. A classifier of another size (fine-tuning
    on a new dataset) is left at its initialisation, with a warning; anything else must fit."""
    path = Path(source)
    state, names = _init_state(model, path)
    own = model.state_dict()
    head = [k for k in own if k.startswith("head.")]
    if any(k in state and state[k].shape != own[k].shape for k in head):
        log.warning(
            "%s: classifier has another shape (%s vs %s); it starts from scratch",
            path,
            tuple(state["head.fc.weight"].shape),
            tuple(own["head.fc.weight"].shape),
        )
        state = {k: v for k, v in state.items() if not k.startswith("head.")}
        load_strict(model, state, source=str(path), names=names, optional=lambda k: k in head)
    else:
        load_strict(model, state, source=str(path), names=names)
    log.info("initialised %s from %s", model.name, path)
