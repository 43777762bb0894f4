"""The inference bundle of a run: everything prediction needs, nothing it does not.

``<run>/bundle/`` holds ``model.safetensors`` (weights, our key names), ``bundle.json`` (model
name and options, label names, input spec, frame sampling and test views) and ``config.yaml``
(the resolved training config). :func:`load_model` rebuilds a ready model from it alone; no
pickled objects are involved anywhere.

``config.yaml`` is where ``evaluate`` and ``predict`` read their views and precision from
(``eval.*``, see :mod:`.settings`), overrides applied, through :func:`load_bundle_config`.
``bundle.json`` repeats the views for readers that do not parse the config (an exported model's
runtime). The training engine writes bundles with :func:`save_bundle`; it does not own them.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from gateshift._files import publish
from gateshift.config import Config, load_config
from gateshift.inference.device import place_model
from gateshift.inference.fold import FoldError, fold_batchnorm
from gateshift.inference.settings import Views
from gateshift.input_spec import InputSpec
from gateshift.models import create_model
from gateshift.models.recognizer import Recognizer
from gateshift.models.weights import load_strict, read_weights

log = logging.getLogger(__name__)

BUNDLE_DIR = "bundle"
BUNDLE_VERSION = 1


@dataclass
class Bundle:
    """A loaded bundle: the model (eval mode) and what comes with it."""

    model: Recognizer
    classes: list[list[str]]
    input_spec: InputSpec
    sampling: dict[str, Any]  # SamplingSpec fields
    views: Views  # as evaluation was configured when the bundle was written
    meta: dict[str, Any]  # all of bundle.json
    folder: Path  # the bundle folder it was read from


def bundle_dir(path: str | Path) -> Path:
    """The bundle folder for a run folder or a bundle folder."""
    path = Path(path)
    if (path / "bundle.json").is_file():
        return path
    if (path / BUNDLE_DIR / "bundle.json").is_file():
        return path / BUNDLE_DIR
    raise FileNotFoundError(
        f"no inference bundle in {path} (expected {path / BUNDLE_DIR / 'bundle.json'}; a run "
        "writes it after its first epoch)"
    )


def load_bundle_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """The resolved config saved in the bundle of ``path`` (a run or bundle folder)."""
    return load_config(bundle_dir(path) / "config.yaml", overrides)


def _write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    publish(tmp, path)


def save_bundle(
    folder: Path,
    model: Recognizer,
    *,
    model_kwargs: dict[str, Any],
    classes: list[list[str]],
    sampling: dict[str, Any],
    views: Views,
    config_yaml: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the bundle atomically file by file (weights first, the index last)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".safetensors", dir=folder)
    os.close(fd)
    save_file(state, tmp)
    publish(tmp, folder / "model.safetensors")
    _write_text(folder / "config.yaml", config_yaml)
    index = {
        "version": BUNDLE_VERSION,
        "model": model.name,
        "num_segments": model.num_segments,
        "num_classes": list(model.head.splits),
        "model_kwargs": model_kwargs,
        "classes": classes,
        "input_spec": model.input_spec.to_dict(),
        "sampling": sampling,
        "views": asdict(views),
        **(extra or {}),
    }
    _write_text(folder / "bundle.json", json.dumps(index, indent=2))
    return folder


def load_bundle(
    path: str | Path,
    *,
    device: str | torch.device = "cpu",
    channels_last: bool = True,
    fold: bool = False,
) -> Bundle:
    """Read a bundle from a run folder (or the bundle folder itself).

    The model comes in eval mode on ``device``, in channels_last memory format by default (same
    outputs, faster on CPU: see :mod:`.device`). ``fold``: batch norms that read a convolution's
    output are folded into it (:mod:`.fold`: same logits, checked; faster on CPU), for models
    that only run inference; if the check fails the model stays as trained, with a warning.
    Load outside ``torch.inference_mode()``: parameters made there are inference tensors,
    which keep no version counter, so GSM could not cache its folded weights (see
    ``GateShift.forward_after``).
    """
    folder = bundle_dir(path)
    try:
        index = json.loads((folder / "bundle.json").read_text())
        splits = index["num_classes"]
        model = create_model(
            index["model"],
            num_classes=splits[0] if len(splits) == 1 else tuple(splits),
            num_segments=index["num_segments"],
            **index.get("model_kwargs", {}),
        )
        spec = InputSpec.from_dict(index["input_spec"])
        views = Views(**index.get("views", {}))
    except (KeyError, json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{folder / 'bundle.json'} is not a valid bundle index: {err}") from err
    load_strict(model, read_weights(folder / "model.safetensors"), source=str(folder))
    place_model(model.eval(), device=device, channels_last=channels_last)
    if fold:
        try:
            fold_batchnorm(model, spec=spec)
        except FoldError as err:
            log.warning("%s: %s", folder, err)
    return Bundle(
        model=model,
        classes=index["classes"],
        input_spec=spec,
        sampling=index["sampling"],
        views=views,
        meta=index,
        folder=folder,
    )


def load_model(
    path: str | Path, *, device: str | torch.device = "cpu", channels_last: bool = True
) -> Recognizer:
    """A ready model (eval mode) from a run folder; ``model.classes`` holds the label names."""
    bundle = load_bundle(path, device=device, channels_last=channels_last)
    bundle.model.classes = bundle.classes
    return bundle.model
