"""Placing temporal modules inside a 2D backbone by wrapping named layers.

A placement is a list of :class:`Site`: the dotted path of a layer and whether the temporal
module runs on that layer's input (``before``, TSM's residual shift before ``conv1``) or on its
output (``after``, GSM/GSF between a convolution and its BN). :func:`insert_temporal` swaps the
layer for a :class:`TemporalWrap` holding the original layer and the new module, so "resnet50 +
gsm" is the same ResNet code with a few layers wrapped, never a forked backbone.

A wrapped layer's parameters move from ``<path>.*`` to ``<path>.layer.*`` and the temporal
module's live under ``<path>.temporal.*``. A site also records where the authors' checkpoints
keep the same tensors (``official_layer``, ``official_module``) so that
:mod:`gateshift.models.weights` can map their keys exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

Position = Literal["before", "after"]


@dataclass(frozen=True)
class Site:
    """Where one temporal module goes.

    ``official_layer``: the wrapped layer's key prefix in the authors' checkpoints (defaults to
    ``path``); ``official_module``: the temporal module's key prefix there (``None`` when the
    module has no parameters or no released checkpoint places it).
    """

    path: str
    position: Position
    official_module: str | None = None
    official_layer: str | None = None


class TemporalWrap(nn.Module):
    """``layer`` with a temporal module on its input (``before``) or output (``after``)."""

    def __init__(self, layer: nn.Module, temporal: nn.Module, position: Position) -> None:
        super().__init__()
        if position not in ("before", "after"):
            raise ValueError(f"position must be 'before' or 'after', got {position!r}")
        self.layer = layer
        self.temporal = temporal
        self.position = position

    def forward(self, x: Tensor) -> Tensor:
        if self.position == "before":
            out: Tensor = self.layer(self.temporal(x))
            return out
        after = getattr(self.temporal, "forward_after", None)  # GSM: may fold into the layer
        if after is not None:
            out = after(self.layer, x)
            return out
        out = self.temporal(self.layer(x))
        return out

    def extra_repr(self) -> str:
        return f"position={self.position!r}"


def site_channels(layer: nn.Module, position: Position) -> int:
    """Channels the temporal module sees: the layer's output (``after``) or input (``before``)."""
    if isinstance(layer, nn.Conv2d):
        return layer.out_channels if position == "after" else layer.in_channels
    raise TypeError(f"temporal modules wrap Conv2d layers, not {type(layer).__name__}")


def insert_temporal(
    backbone: nn.Module, make_module: Callable[[int], nn.Module], sites: Sequence[Site]
) -> list[str]:
    """Wrap each site's layer with ``make_module(channels)``; returns the wrapped paths."""
    for site in sites:
        parent_path, _, name = site.path.rpartition(".")
        parent = backbone.get_submodule(parent_path) if parent_path else backbone
        layer = getattr(parent, name, None)
        if layer is None:
            raise ValueError(f"no layer {site.path!r} in {type(backbone).__name__}")
        if isinstance(layer, TemporalWrap):
            raise ValueError(f"layer {site.path!r} already has a temporal module")
        module = make_module(site_channels(layer, site.position))
        setattr(parent, name, TemporalWrap(layer, module, site.position))
    return [site.path for site in sites]


def temporal_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(path, module) of every inserted temporal module, in model order."""
    return [
        (name, module.temporal)
        for name, module in model.named_modules()
        if isinstance(module, TemporalWrap)
    ]
