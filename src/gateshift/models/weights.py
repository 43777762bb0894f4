"""Loading weights: ImageNet files and the authors' GSM/GSF checkpoints, always strictly.

Keys are mapped first, then loaded with every key accounted for: a missing, unexpected or
wrongly shaped key raises :class:`WeightsMismatchError` listing them (with the file's own key
names), never a silent ``strict=False``. Files are read with ``torch.load(weights_only=True)``
(or safetensors), so loading a checkpoint never runs pickled code.

Key mapping. Our backbones use the key names of the ImageNet files they load, except that a layer
wrapped with a temporal module moves to ``<path>.layer.*`` and the module sits at
``<path>.temporal.*`` (:mod:`gateshift.models.temporal.insert`). The authors' video checkpoints
prefix the backbone with ``base_model.`` (and ``module.`` from DataParallel), name the classifier
``new_fc`` and keep temporal modules at ``gsm_<conv>`` (Inception) or ``layerX.Y.gsf`` (ResNet);
TSM's release wraps the shifted conv as ``<conv>.net``. Each :class:`Site` carries those names.
Where the authors' backbone names other layers differently too (TSM's flat MobileNetV2), the
backbone's :meth:`~gateshift.models.backbones.base.Backbone.official_layout` says how.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from gateshift.models.backbones.base import Backbone
from gateshift.models.recognizer import Recognizer

log = logging.getLogger(__name__)

_SHOWN = 12  # keys listed per category in an error message


class WeightsMismatchError(ValueError):
    """A weight file does not fit the model; lists missing, unexpected and mis-shaped keys."""

    def __init__(
        self,
        source: str,
        target: str,
        missing: list[str],
        unexpected: list[str],
        wrong_shape: list[str],
    ) -> None:
        self.missing, self.unexpected, self.wrong_shape = missing, unexpected, wrong_shape
        lines = [f"{source} does not fit {target}:"]
        for label, keys in (
            ("missing from the file", missing),
            ("unexpected in the file", unexpected),
            ("wrong shape", wrong_shape),
        ):
            if keys:
                shown = ", ".join(keys[:_SHOWN]) + (" ..." if len(keys) > _SHOWN else "")
                lines.append(f"  {label} ({len(keys)}): {shown}")
        super().__init__("\n".join(lines))


def read_weights(path: str | Path) -> dict[str, Any]:
    """The object saved in ``path`` (``.safetensors`` or a torch file) as a dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weight file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path)))
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        raise ValueError(f"cannot read {path} as a weights-only torch file: {err}") from err
    if not isinstance(payload, Mapping):
        raise ValueError(f"{path} holds a {type(payload).__name__}, not a state dict")
    return dict(payload)


def _numpy_scalar_globals() -> list[Any]:
    """numpy scalars (a ``best_prec1`` saved as np.float64) are safe to rebuild; allow them."""
    try:
        import numpy as np
    except ImportError:
        return []
    core = getattr(np, "_core", None) or np.core  # numpy 2 renamed the module
    found = vars(np.dtypes).values()
    dtypes = [t for t in found if isinstance(t, type) and issubclass(t, np.dtype)]
    return [core.multiarray.scalar, np.dtype, *dtypes]


def _tensors(state: Mapping[str, Any], source: str) -> dict[str, Tensor]:
    bad = [k for k, v in state.items() if not isinstance(v, Tensor)]
    if bad:
        raise ValueError(f"{source}: entries that are not tensors: {', '.join(bad[:_SHOWN])}")
    return dict(state)


def _rename(keys: Iterable[str], rules: Mapping[str, str]) -> dict[str, str]:
    """Map each key through the rule with the longest matching source prefix (if any)."""
    ordered = sorted(rules, key=len, reverse=True)
    mapped = {}
    for key in keys:
        src = next((p for p in ordered if key.startswith(p)), None)
        mapped[key] = key if src is None else rules[src] + key[len(src) :]
    return mapped


def _site_rules(backbone: Backbone, *, official: bool) -> dict[str, str]:
    """File key prefix -> ours: for the authors' files the backbone's layout first, then each
    site's layer and module (a wrapped layer's rule replaces the layout's for that layer)."""
    rules = backbone.official_layout() if official else {}
    for site in backbone.sites:
        layer = (site.official_layer or site.path) if official else site.path
        rules[f"{layer}."] = f"{site.path}.layer."
        if official and site.official_module:
            rules[f"{site.official_module}."] = f"{site.path}.temporal."
    return rules


def load_strict(
    module: nn.Module,
    state: Mapping[str, Tensor],
    *,
    source: str,
    names: Mapping[str, str] | None = None,
    optional: Callable[[str], bool] = lambda key: False,
) -> None:
    """Load ``state`` into ``module``; every model key must be present unless ``optional``.

    ``names`` maps our keys back to the file's own names for error messages. Optional keys that
    the file lacks keep the module's current values.
    """
    own = module.state_dict()
    names = names or {}
    missing = [k for k in own if k not in state and not optional(k)]
    unexpected = [names.get(k, k) for k in state if k not in own]
    wrong = [
        f"{names.get(k, k)} {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        target = getattr(module, "name", "") or type(module).__name__
        raise WeightsMismatchError(source, target, missing, unexpected, wrong)
    full = dict(own)
    full.update(state)
    module.load_state_dict(full, strict=True)


def _optional_imagenet(key: str) -> bool:
    """Keys an ImageNet file need not hold: new temporal modules, the video head, BN counters."""
    return (
        ".temporal." in key
        or key.startswith(("temporal.", "head."))
        or key.endswith("num_batches_tracked")
    )


def _looks_like_video_checkpoint(payload: Mapping[str, Any]) -> bool:
    if "state_dict" in payload or "model_state_dict" in payload:
        return True
    return any(k.startswith(("module.", "base_model.", "new_fc.")) for k in payload)


def load_pretrained(model: Recognizer | Backbone, path: str | Path) -> None:
    """Load ImageNet weights into ``model``'s backbone (its classifier in the file is dropped).

    Accepts torchvision ResNet/MobileNetV2 ``.pth`` files and the Caffe-converted
    BN-Inception/InceptionV3 files used by TSN/GSM (BN tensors stored as ``(1, C)``).
    Temporal modules and the video head keep their initialisation.
    """
    payload = read_weights(path)
    if _looks_like_video_checkpoint(payload):
        raise ValueError(
            f"{path} looks like a video checkpoint (state_dict / base_model. / new_fc. keys), "
            "not ImageNet weights; use gateshift.load_official_checkpoint for the authors' files"
        )
    backbone = model.backbone if isinstance(model, Recognizer) else model
    state = _tensors(payload, str(path))
    state = {k: v for k, v in state.items() if not k.startswith(backbone.imagenet_classifier)}
    mapped = _rename(state, _site_rules(backbone, official=False))
    prefix = "backbone." if isinstance(model, Recognizer) else ""
    own = model.state_dict()
    ours: dict[str, Tensor] = {}
    for key, new in mapped.items():
        value = state[key]
        target = own.get(prefix + new)
        if target is not None and value.dim() == target.dim() + 1 and value.shape[0] == 1:
            value = value.squeeze(0)  # Caffe conversions store BN vectors as (1, C)
        ours[prefix + new] = value
    names = {prefix + new: key for key, new in mapped.items()}
    load_strict(model, ours, source=str(path), names=names, optional=_optional_imagenet)
    log.info("loaded ImageNet weights from %s", path)


def official_state_dict(payload: Mapping[str, Any], source: str) -> dict[str, Tensor]:
    """The model state dict inside an authors' ``.pth.tar``, ``module.`` prefixes removed."""
    state = payload.get("state_dict", payload.get("model_state_dict", payload))
    if not isinstance(state, Mapping):
        raise ValueError(f"{source}: 'state_dict' is a {type(state).__name__}, not a mapping")
    return {k.removeprefix("module."): v for k, v in _tensors(state, source).items()}


def map_official_checkpoint(
    model: Recognizer, payload: Mapping[str, Any], source: str
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The authors' checkpoint ``payload`` under ``model``'s key names, and ours -> theirs."""
    state = official_state_dict(payload, source)
    backbone_rules = _site_rules(model.backbone, official=True)
    rules = {f"base_model.{src}": f"backbone.{dst}" for src, dst in backbone_rules.items()}
    rules["base_model."] = "backbone."
    rules["new_fc."] = "head.fc."
    for classifier in model.backbone.imagenet_classifier:
        rules[f"base_model.{classifier}"] = "head.fc."
    mapped = _rename(state, rules)
    return {new: state[key] for key, new in mapped.items()}, {
        new: key for key, new in mapped.items()
    }


def load_official_checkpoint(model: Recognizer, path: str | Path) -> dict[str, Any]:
    """Load a ``.pth.tar`` saved by the authors' GSM, GSF or TSM code into ``model``, strictly.

    Handles ``state_dict`` / ``model_state_dict``, ``module.`` and ``base_model.`` prefixes and
    ``new_fc`` (or the backbone's own classifier when the authors trained without dropout).
    Returns the file's other entries (epoch, arch, best_prec1, ...).
    """
    payload = read_weights(path)
    ours, names = map_official_checkpoint(model, payload, str(path))
    load_strict(
        model,
        ours,
        source=str(path),
        names=names,
        optional=lambda key: key.endswith("num_batches_tracked"),
    )
    log.info("loaded official checkpoint %s", path)
    return {k: v for k, v in payload.items() if k not in ("state_dict", "model_state_dict")}


def to_official_state_dict(model: Recognizer) -> dict[str, Tensor]:
    """``model``'s weights under the authors' key names (``base_model.*``, ``new_fc.*``)."""
    inverse = {dst: src for src, dst in _site_rules(model.backbone, official=True).items()}
    inner = model.backbone.state_dict()
    mapped = _rename(inner, inverse)
    out = {f"base_model.{mapped[k]}": v for k, v in inner.items()}
    out.update({f"new_fc.{k}": v for k, v in model.head.fc.state_dict().items()})
    return out
