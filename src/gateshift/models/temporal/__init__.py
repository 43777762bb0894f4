"""Temporal modules: each maps ``(N*T, C, H, W)`` frames to the same shape.

``tsn`` (no module), ``tsm`` (:class:`TemporalShift`), ``gsm`` (:class:`GateShift`) and ``gsf``
(:class:`GateShiftFuse`); :func:`make_temporal` builds one by name.

Reading order: ``gsm.py`` (the definition as plain ops, then the one place that picks a path),
``gsf.py`` and ``tsm.py``; then the fast paths ``_fast_gate.py`` (the gate) and
``_fast_shift.py`` (the shift, its autograd function, the interleave folded into the
convolution), ``_native.py`` (the only user of the optional C++ kernels), ``_cache.py``
(weights derived for inference), ``_gate.py`` (how the gate's weights are stored),
``_time.py`` (the only place that folds and unfolds time) and ``insert.py`` (placement).
``causal.py`` defines the causal variants (``causal=True``: no frame sees a later one) and
``stream.py`` runs them one frame at a time with the state each module keeps.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from gateshift.models.temporal import _native
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
    causal: bool = False,
) -> nn.Module:
    """One temporal module of ``kind`` for ``channels`` channels; ``causal``: frame t sees only
    frames <= t (:mod:`.causal`)."""
    if kind == "gsm":
        return GateShift(channels, num_segments, interleave=interleave, causal=causal)
    if kind == "gsf":
        return GateShiftFuse(
            channels, num_segments, ratio=gsf_ratio, interleave=interleave, causal=causal
        )
    if kind == "tsm":
        return TemporalShift(channels, num_segments, shift_div=shift_div, causal=causal)
    raise ValueError(f"no temporal module for kind {kind!r}; choose from tsm, gsm, gsf")


def native_kernels_available() -> bool:
    """Whether GSM/GSF CPU inference runs on the compiled kernels here (building them on the
    first call): False when ``GATESHIFT_NATIVE=0`` or when they cannot be built."""
    return _native.available()


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
    "native_kernels_available",
    "temporal_modules",
]
