"""The network seen by inference: any callable from a batch of clips to logits.

View scoring (:mod:`.scoring`) only needs ``(B, T, C, H, W)`` float clips -> ``(B, classes)``
logits. :class:`TorchNetwork` is that callable for a PyTorch model on a device under a precision;
another runtime (an ONNX Runtime session, a streaming model) slots in by implementing the same
call, leaving view averaging, softmax and top-k untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from gateshift.inference.precision import autocast


class Network(Protocol):
    def __call__(self, clips: Tensor, /) -> Tensor:
        """``(B, T, C, H, W)`` float clips (on any device) -> ``(B, classes)`` logits."""
        ...


@dataclass(frozen=True)
class TorchNetwork:
    """A PyTorch model on ``device``, run under autocast to ``dtype`` (None: plain fp32).

    The model's mode (eval / train) and placement are the caller's: see
    :func:`~gateshift.inference.device.place_model`.
    """

    model: nn.Module
    device: torch.device
    dtype: torch.dtype | None = None

    def __call__(self, clips: Tensor, /) -> Tensor:
        clips = clips.to(self.device, non_blocking=True)
        with autocast(self.device, self.dtype):
            return self.model(clips)
