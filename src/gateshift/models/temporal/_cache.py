"""A value derived from parameters, kept between inference calls until they change."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import torch
from torch import Tensor

V = TypeVar("V")


class InferenceCache(Generic[V]):
    """One value computed from some tensors (and an extra hashable key), reused while no
    autograd graph is being built and none of the tensors changed.

    A change is: another tensor object, a new version counter (any in-place write, such as
    ``load_state_dict`` or an optimizer step), another storage (``param.data = ...``), dtype or
    device. The tensors themselves are kept, so a freed storage cannot come back at the same
    address and pass for the old one. Inference tensors (made under ``torch.inference_mode``)
    have no version counter, so values derived from them are computed afresh every time, as is
    every value while autograd records (so gradients flow through it).
    """

    def __init__(self) -> None:
        # (tensors, key, value) as one tuple, replaced whole, so that threads running the same
        # model never see one call's key with another call's value
        self._entry: tuple[tuple[Tensor, ...], tuple[object, ...], V] | None = None

    def get(self, tensors: Sequence[Tensor], extra: object, compute: Callable[[], V]) -> V:
        if torch.is_grad_enabled() or any(t.is_inference() for t in tensors):
            self.clear()
            return compute()
        key = (extra, *((t._version, t.data_ptr(), t.dtype, t.device) for t in tensors))
        entry = self._entry
        if (
            entry is not None
            and entry[1] == key
            and len(entry[0]) == len(tensors)
            and all(a is b for a, b in zip(tensors, entry[0], strict=True))
        ):
            return entry[2]
        value = compute()
        self._entry = (tuple(tensors), key, value)
        return value

    def clear(self) -> None:
        self._entry = None
