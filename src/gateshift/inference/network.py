"""The network seen by inference: any callable from a batch of clips to logits.

View scoring (:mod:`.scoring`) only needs ``(B, T, C, H, W)`` float clips -> ``(B, classes)``
logits. :class:`TorchNetwork` is that callable for a PyTorch model on a device under a precision;
another runtime (an ONNX Runtime session, a streaming model) slots in by implementing the same
call, leaving view averaging, softmax and top-k untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block, its own mode again after (also on errors):
    validation during training scores the model it is training."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
