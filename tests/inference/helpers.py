"""A run folder holding only an inference bundle, written the way training writes it (no
training: the weights are the seeded initial ones)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from gateshift.config import load_config, to_yaml
from gateshift.engine.build import build_model, model_kwargs
from gateshift.engine.data import input_spec, load_split, sampling_spec
from gateshift.inference.bundle import BUNDLE_DIR, save_bundle
from gateshift.inference.settings import Views
from gateshift.models.recognizer import Recognizer

from ..engine.helpers import write_config


def make_run(
    tmp: Path, root: Path, overrides: Sequence[str] = (), name: str = "run"
) -> tuple[Path, Recognizer]:
    """``tmp/name`` with ``bundle/`` for the tiny engine config over the dataset at ``root``;
    returns the folder and the model that was saved (eval mode)."""
    config, run = write_config(tmp, root, name)
    cfg = load_config(config, overrides)
    classes = load_split(cfg, cfg.data.train_split).classes
    torch.manual_seed(0)
    model = build_model(cfg, len(classes[0])).eval()
    save_bundle(
        run / BUNDLE_DIR,
        model,
        model_kwargs=model_kwargs(cfg),
        classes=classes,
        sampling=asdict(sampling_spec(cfg)),
        views=Views(num_clips=cfg.eval.num_clips, num_crops=cfg.eval.num_crops),
        config_yaml=to_yaml(cfg),
        extra={"input_spec": input_spec(cfg, model.input_spec).to_dict()},
    )
    return run, model
