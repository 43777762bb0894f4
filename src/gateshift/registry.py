"""The model registry: ``@register_model``, :func:`list_models`, :func:`model_builder`.

A plain name -> builder table, as timm's ``_registry``: this module imports no model file, so
model modules can import it to register themselves without a cycle. The built-in
``{backbone}_{tsn|tsm|gsm|gsf}`` families register in :mod:`gateshift.models.zoo`, which
importing :mod:`gateshift.models` (and so ``gateshift``) runs; :func:`gateshift.create_model`
lives with the models, in :mod:`gateshift.models.factory`.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import TypeVar

# A builder returns a Recognizer; the factory checks that at call time, so that this module
# need not import the models to name the type.
Builder = TypeVar("Builder", bound=Callable[..., object])

_MODELS: dict[str, Callable[..., object]] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator registering ``builder(num_classes=..., num_segments=..., **kw)`` as ``name``."""

    def decorate(builder: Builder) -> Builder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = builder
        return builder

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern`` (``"resnet50_*"``), sorted."""
    return sorted(n for n in _MODELS if fnmatch.fnmatchcase(n, pattern))


def model_builder(name: str) -> Callable[..., object]:
    """The builder registered as ``name``; an unknown name is an error suggesting close ones."""
    if name not in _MODELS:
        close = difflib.get_close_matches(name, _MODELS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}{hint} (`gateshift models` lists them)")
    return _MODELS[name]
