"""Model cost: parameters, FLOPs per clip and measured inference latency.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`, which counts 2 FLOPs per
multiply-add of convolutions and matrix products (elementwise work such as BN, the gating
products and activations is not counted). Latency is the median wall time of repeated forward
passes after warm-up, in inference mode, placed and autocast the way evaluation and
prediction run (:func:`~gateshift.inference.device.place_model`,
:func:`~gateshift.inference.precision.autocast`): it measures inference, so it lives with it
rather than with the models (``gateshift profile`` and ``benchmarks/model_overhead.py`` use it).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from gateshift.inference.device import place_model
from gateshift.inference.precision import autocast


@dataclass(frozen=True)
class Cost:
    params: int
    flops: int
    latency_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, clips: Tensor) -> int:
    """FLOPs of one forward pass on ``clips`` (counted on whatever batch is given)."""
    model.eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(clips)
    return int(counter.get_total_flops())


def median_time(fn: Callable[[], object], *, warmup: int, repeats: int, sync: bool) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if sync:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_latency(
    model: nn.Module,
    clips: Tensor,
    *,
    bf16: bool = False,
    warmup: int = 2,
    repeats: int = 10,
) -> float:
    """Median seconds of an inference forward pass on ``clips``."""
    model.eval()
    dtype = torch.bfloat16 if bf16 else None

    def forward() -> None:
        with torch.inference_mode(), autocast(clips.device, dtype):
            model(clips)

    return median_time(forward, warmup=warmup, repeats=repeats, sync=clips.device.type == "cuda")


def measure(
    model: nn.Module,
    *,
    frames: int,
    size: int,
    batch: int = 1,
    bf16: bool = False,
    channels_last: bool = False,
    device: str = "cpu",
    repeats: int = 10,
) -> Cost:
    """Parameters, FLOPs per clip and latency on a ``(batch, frames, 3, size, size)`` input."""
    model = place_model(model, device=device, channels_last=channels_last)
    clips = torch.randn(batch, frames, 3, size, size, device=device)
    flops = count_flops(model, clips[:1])
    latency = measure_latency(model, clips, bf16=bf16, repeats=repeats)
    return Cost(params=count_params(model), flops=flops, latency_s=latency)
