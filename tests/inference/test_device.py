"""Device choice and placement in channels_last or NCHW."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gateshift.inference.device import place_model, resolve_device

CL = torch.channels_last


def test_place_model_sets_the_memory_format_both_ways() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    assert place_model(model, device="cpu", channels_last=True) is model
    assert model[0].weight.is_contiguous(memory_format=CL)
    assert not model[0].weight.is_contiguous()  # really channels_last, not just 1x1
    placed = place_model(model, device=torch.device("cpu"), channels_last=False)
    assert placed[0].weight.is_contiguous()  # back to NCHW
    assert placed[2].weight.is_contiguous()  # 2-D weights untouched either way


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"^device='cuda' but CUDA is not available"):
        resolve_device("cuda", what="device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto", local_rank=3) == torch.device("cuda", 1)
    assert resolve_device("cuda", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:0", local_rank=1) == torch.device("cuda", 0)
