"""The model registry: ``@register_model``, :func:`create_model`, :func:`list_models`.

Names are ``{backbone}_{tsn|tsm|gsm|gsf}``; :mod:`gateshift.models.zoo` registers all of them
when imported (which these functions do on first use).
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from torch import nn

Builder = TypeVar("Builder", bound=Callable[..., nn.Module])

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(num_classes=..., num_segments=..., **kw)`` as ``name``."""

    def decorate(builder: Builder) -> Builder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = builder
        return builder

    return decorate


def _load_zoo() -> None:
    import gateshift.models.zoo  # noqa: F401  (registers the built-in models)


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (``"resnet50_*"``), sorted."""
    _load_zoo()
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n, pattern))


def model_builder(name: str) -> Callable[..., nn.Module]:
    _load_zoo()
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (`gateshift models` lists them)")
    return _MODELS[name]


def create_model(
    name: str,
    *,
    num_classes: int | tuple[int, ...],
    num_segments: int = 8,
    pretrained: str | Path | None = None,
    **kwargs: Any,
) -> Any:
    """Build a registered model; ``pretrained`` is an ImageNet weight file for its backbone.

    Extra keyword arguments go to the builder: ``dropout`` (0.5), ``interleave`` (True, GSM/GSF
    channel interleave of the released code), ``gsf_ratio`` (percent of channels GSF processes;
    the backbone family's default), ``shift_div`` (8, TSM), ``width`` (ResNet base width, 64).
    """
    model = model_builder(name)(num_classes=num_classes, num_segments=num_segments, **kwargs)
    if pretrained is not None:
        from gateshift.models.weights import load_pretrained

        load_pretrained(model, pretrained)  # type: ignore[arg-type]
    return model
