"""Temporal modules: each maps ``(N*T, C, H, W)`` frames to the same shape.

``tsn`` (no module), ``tsm`` (:class:`TemporalShift`), ``gsm`` (:class:`GateShift`) and ``gsf``
(:class:`GateShiftFuse`); :func:`make_temporal` builds one by name.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from gateshift.models.temporal.gsf import GateShiftFuse
from gateshift.models.temporal.gsm import GateShift
from gateshift.models.temporal.insert import Site, TemporalWrap, insert_temporal, temporal_modules
from gateshift.models.temporal.tsm import TemporalShift

TemporalKind = Literal["tsn", "tsm", "gsm", "gsf"]
TEMPORAL_KINDS: tuple[TemporalKind, ...] = ("tsn", "tsm", "gsm", "gsf")


def make_temporal(
    kind: TemporalKind,
    channels: int,
    *,
    num_segments: int,
    interleave: bool = True,
    gsf_ratio: float = 100.0,
    shift_div: int = 8,
) -> nn.Module:
    """One temporal module of ``kind`` for ``channels`` channels."""
    if kind == "gsm":
        return GateShift(channels, num_segments, interleave=interleave)
    if kind == "gsf":
        return GateShiftFuse(channels, num_segments, ratio=gsf_ratio, interleave=interleave)
    if kind == "tsm":
        return TemporalShift(channels, num_segments, shift_div=shift_div)
    raise ValueError(f"no temporal module for kind {kind!r}; choose from tsm, gsm, gsf")


__all__ = [
    "TEMPORAL_KINDS",
    "GateShift",
    "GateShiftFuse",
    "Site",
    "TemporalKind",
    "TemporalShift",
    "TemporalWrap",
    "insert_temporal",
    "make_temporal",
    "temporal_modules",
]
