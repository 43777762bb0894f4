"""Model cost: parameters, FLOPs per clip and measured latency.

FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode`, which counts 2 FLOPs per
multiply-add of convolutions and matrix products (elementwise work such as BN, the gating
products and activations is not counted). Latency is the median wall time of repeated forward
passes after warm-up, in inference mode.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode


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


def autocast_context(device: torch.device, bf16: bool) -> AbstractContextManager[Any]:
    """bf16 autocast on ``device`` when asked, else a no-op."""
    if not bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


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

    def forward() -> None:
        with torch.inference_mode(), autocast_context(clips.device, bf16):
            model(clips)

    return median_time(forward, warmup=warmup, repeats=repeats, sync=clips.device.type == "cuda")


def prepare(model: nn.Module, *, channels_last: bool, device: str | torch.device) -> nn.Module:
    """Move ``model`` to ``device``, in channels_last memory format when asked."""
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return model


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
    model = prepare(model, channels_last=channels_last, device=device)
    clips = torch.randn(batch, frames, 3, size, size, device=device)
    flops = count_flops(model, clips[:1])
    latency = measure_latency(model, clips, bf16=bf16, repeats=repeats)
    return Cost(params=count_params(model), flops=flops, latency_s=latency)
