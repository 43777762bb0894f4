"""``create_model(name, ...)``: a registered model, optionally with ImageNet backbone weights.

The registry (:mod:`gateshift.registry`) only maps names to builders; building and loading
weights happen here, next to the models, so the registry imports no model file (timm splits
``_registry`` and ``_factory`` the same way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateshift.models.recognizer import Recognizer
from gateshift.models.weights import load_pretrained
from gateshift.registry import model_builder


def create_model(
    name: str,
    *,
    num_classes: int | tuple[int, ...],
    num_segments: int = 8,
    pretrained: str | Path | None = None,
    **kwargs: Any,
) -> Recognizer:
    """Build a registered model; ``pretrained`` is an ImageNet weight file for its backbone.

    Extra keyword arguments go to the builder: ``dropout`` (0.5), ``interleave`` (True, GSM/GSF
    channel interleave of the released code), ``gsf_ratio`` (percent of channels GSF processes;
    the backbone family's default), ``shift_div`` (8, TSM), ``width`` (ResNet base width, 64),
    ``causal`` (False; True: frame t sees only frames <= t, for streaming, see
    :mod:`gateshift.models.temporal.causal`).
    A builder must return a :class:`Recognizer` (the engine relies on its input spec, segments
    and head); anything else is a ``TypeError`` naming the model.
    """
    model = model_builder(name)(num_classes=num_classes, num_segments=num_segments, **kwargs)
    if not isinstance(model, Recognizer):
        raise TypeError(
            f"the builder of model {name!r} returned {type(model).__name__}, not a Recognizer"
        )
    if pretrained is not None:
        load_pretrained(model, pretrained)
    return model
