"""Inference cost measurement: placed and autocast like inference, counts that add up."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from gateshift.inference.profile import count_flops, measure, measure_latency


class Probe(nn.Module):
    """Notes the autocast state and input layout of every call."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.seen: list[tuple[bool, bool]] = []

    def forward(self, x: Tensor) -> Tensor:  # (N, T, 3, H, W)
        self.seen.append((torch.is_autocast_enabled("cpu"), torch.is_inference_mode_enabled()))
        return self.conv(x.flatten(0, 1)).mean((1, 2, 3))


def test_latency_runs_in_inference_mode_under_the_requested_autocast() -> None:
    probe, clips = Probe(), torch.randn(1, 2, 3, 8, 8)
    assert measure_latency(probe, clips, bf16=True, warmup=1, repeats=2) > 0
    assert probe.seen == [(True, True)] * 3
    probe.seen.clear()
    measure_latency(probe, clips, warmup=0, repeats=1)
    assert probe.seen == [(False, True)]


def test_measure_places_the_model_and_counts_params_and_flops() -> None:
    probe = Probe()
    cost = measure(probe, frames=2, size=8, channels_last=True, repeats=1)
    assert probe.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert cost.params == 4 * 3 * 3 * 3 + 4
    assert cost.flops == 2 * (2 * 4 * 6 * 6 * 27)  # 2 frames, 2 FLOPs per multiply-add
    assert cost.flops == count_flops(probe, torch.randn(1, 2, 3, 8, 8))
