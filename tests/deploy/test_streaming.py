"""Streamer: per-frame logits equal the offline causal model's on one long clip, every family;
batches of streams, reset, the errors a user meets."""

from __future__ import annotations

import pytest
import torch

import gateshift
from gateshift.deploy.streaming import NotCausalError
from gateshift.models.temporal import temporal_modules
from gateshift.models.temporal.stream import GateShiftStream
from tests.models.temporal.helpers import randomise

BACKBONES = ("resnet18", "mobilenetv2", "bninception")
FAMILIES = [f"{b}_{k}" for b in BACKBONES for k in ("tsm", "gsm", "gsf")]
LENGTH = 4  # frames streamed; the offline model sees them as one clip of num_segments=LENGTH


def causal_model(name: str, segments: int = LENGTH) -> gateshift.models.recognizer.Recognizer:
    torch.manual_seed(0)
    kw = {"width": 16} if name.startswith("resnet") else {}
    model = gateshift.create_model(name, num_classes=5, num_segments=segments, causal=True, **kw)
    with torch.no_grad():  # open gates, non-trivial fusion and BN (moderate: fp32 stays exact)
        for _, module in temporal_modules(model):
            for p in randomise(module, seed=1).parameters():
                p.mul_(0.3)
    # BN statistics of real activations (at init they shrink the features of deep nets to ~0)
    for module in model.backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = 1.0
    with torch.no_grad():
        model.train()(torch.randn(2, segments, 3, 32, 32))
        for module in model.backbone.modules():  # and no near-zero variance (~1e-10 in deep
            if isinstance(module, torch.nn.BatchNorm2d):  # MobileNetV2 layers at 1x1) blowing
                module.running_var.clamp_(min=0.01)  # fp32 rounding up
    torch.nn.init.normal_(model.head.fc.weight, std=1.0)  # logits of a usable scale
    return model.eval()


def offline_frame_logits(
    model: gateshift.models.recognizer.Recognizer, clips: torch.Tensor
) -> torch.Tensor:
    """Per-frame logits (before consensus) of clips ``(N, T, C, H, W)``: ``(N, T, K)``."""
    with torch.no_grad():
        return model.head(model.backbone(clips.flatten(0, 1))).unflatten(0, clips.shape[:2])


@pytest.mark.parametrize("name", FAMILIES)
def test_streamed_logits_equal_the_offline_causal_clip(name: str) -> None:
    model = causal_model(name)
    clips = torch.randn(2, LENGTH, 3, 32, 32)  # two streams at once
    expected = offline_frame_logits(model, clips)
    streamer = gateshift.Streamer(model)
    streamed = torch.stack([streamer.step(clips[:, t]) for t in range(LENGTH)], dim=1)
    scale = expected.abs().max()
    assert scale > 1e-3
    assert (streamed - expected).abs().max() <= 1e-5 * scale
    # the stream carries time: dropping the earlier frames changes the last frame's logits
    alone = gateshift.Streamer(model).step(clips[:, -1])
    assert (alone - expected[:, -1]).abs().max() > 1e-3 * scale


def test_single_frames_reset_and_smoothing() -> None:
    model = causal_model("resnet18_gsm", segments=4)
    clip = torch.randn(1, 4, 3, 32, 32)
    expected = offline_frame_logits(model, clip)[0]  # (T, K)
    streamer = gateshift.Streamer(model)
    first = torch.stack([streamer.step(clip[0, t]) for t in range(4)])
    assert first.shape == (4, 5)
    tol = 1e-5 * float(expected.abs().max())
    assert torch.allclose(streamer.smoothed(), expected.mean(0, keepdim=True), atol=tol)
    assert torch.allclose(streamer.smoothed(2), expected[2:].mean(0, keepdim=True), atol=tol)
    # the state is what the reach back needs: two pending gate sums per group (for t+1 and t+2),
    # Y_1 of t-1 and t-2, Y_2 of t-1
    for _, adapter in streamer._adapters:
        assert isinstance(adapter, GateShiftStream)
        assert adapter.gate.pending is not None and adapter.gate.pending.shape[1] == 4
        assert [len(h.values) for h in adapter.shift.halves] == [2, 1]
        assert len(adapter.state()) == 4
    streamer.reset()
    assert streamer.frames == 0
    again = torch.stack([streamer.step(clip[0, t]) for t in range(4)])
    assert torch.allclose(again, first, atol=tol)
    # the model itself is left as it was: its clips still run offline
    with torch.no_grad():
        assert model(clip).shape == (1, 5)


def test_offline_models_and_bad_frames_are_refused() -> None:
    offline = gateshift.create_model("resnet18_gsm", num_classes=3, width=16)
    with pytest.raises(NotCausalError, match=r"model\.causal=true"):
        gateshift.Streamer(offline)
    tsn = gateshift.Streamer(gateshift.create_model("resnet18_tsn", num_classes=3, width=16))
    assert tsn.step(torch.randn(3, 32, 32)).shape == (3,)  # TSN's frames are independent
    streamer = gateshift.Streamer(causal_model("resnet18_tsm", segments=2))
    with pytest.raises(TypeError, match="float"):
        streamer.step(torch.zeros(3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        streamer.step(torch.randn(32, 32))
    streamer.step(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="reset"):
        streamer.step(torch.randn(3, 40, 40))


def test_explain_records_the_causal_gate() -> None:
    from gateshift.deploy.gates import capture_gates

    model = causal_model("resnet18_gsm", segments=4)
    clips = torch.randn(1, 4, 3, 32, 32)
    changed = clips.clone()
    changed[:, 2:] = torch.randn_like(changed[:, 2:])
    gates = []
    for x in (clips, changed):
        with capture_gates(model) as records, torch.no_grad():
            model(x)
        gates.append(torch.cat([r.gate.flatten(2) for r in records], dim=2))  # (N, T, ...)
    assert torch.equal(gates[0][:, :2], gates[1][:, :2])  # frames 0, 1 never see 2, 3
    assert not torch.equal(gates[0][:, 2:], gates[1][:, 2:])
