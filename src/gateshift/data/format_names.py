"""The names of the annotation formats: the values of the config key ``data.format``.

A dependency-free module, so that :mod:`gateshift.config` can type ``data.format`` with it
without importing the parsers (PyAV, the readers). :mod:`gateshift.data.annotations` maps each
name to its parser, and its table must have exactly these keys (a test checks it). The official
dataset layouts come first, then the generic lists and folders.
"""

from __future__ import annotations

from typing import Literal, TypeGuard, get_args

DataFormat = Literal[
    "sthv1", "sthv2", "diving48", "epic100", "kinetics", "ucf101", "hmdb51",
    "tsn_list", "list", "folder", "prepared",
]  # fmt: skip

FORMATS: tuple[DataFormat, ...] = get_args(DataFormat)


def is_format(name: str) -> TypeGuard[DataFormat]:
    """Whether ``name`` is one of :data:`FORMATS` (narrows ``str`` to ``DataFormat``)."""
    return name in FORMATS
