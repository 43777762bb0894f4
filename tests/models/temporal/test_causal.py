"""Causal GSM/GSF/TSM: no frame sees a later one; the definition against a slow reference; the
causal modules train on the plain ops; the config key reaches every module."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import gateshift
from gateshift.config import load_config
from gateshift.engine.build import build_model
from gateshift.models.temporal import GateShift, GateShiftFuse, TemporalShift, temporal_modules
from gateshift.models.temporal import gsm as gsm_module
from gateshift.models.temporal._gate import conv3d_from_taps
from tests.models.temporal.helpers import randomise

FAMILIES = ["resnet18_tsm", "resnet18_gsm", "resnet18_gsf"]


def causal_pair(name: str, segments: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The same weights as a causal and an offline model, eval mode, non-trivial gates."""
    models = []
    for causal in (True, False):
        torch.manual_seed(0)
        model = gateshift.create_model(
            name, num_classes=3, num_segments=segments, width=16, causal=causal
        )
        for _, module in temporal_modules(model):
            randomise(module, seed=1)
            for p in module.parameters():
                p.data.mul_(0.5)
        models.append(model.eval())
    return models[0], models[1]


@pytest.mark.parametrize("name", FAMILIES)
def test_later_frames_never_reach_earlier_outputs(name: str) -> None:
    causal, offline = causal_pair(name, segments=5)
    clips = torch.randn(1, 5, 3, 32, 32)
    changed = clips.clone()
    cut = 2  # frames 0..2 stay, 3.. change
    changed[:, cut + 1 :] = torch.randn_like(changed[:, cut + 1 :])
    with torch.no_grad():
        before = [m.backbone(clips.flatten(0, 1)).view(1, 5, -1) for m in (causal, offline)]
        after = [m.backbone(changed.flatten(0, 1)).view(1, 5, -1) for m in (causal, offline)]
    assert torch.equal(before[0][:, : cut + 1], after[0][:, : cut + 1])
    assert not torch.allclose(before[0][:, cut + 1 :], after[0][:, cut + 1 :])
    # the offline model does read the future: the test could fail
    assert not torch.allclose(before[1][:, : cut + 1], after[1][:, : cut + 1], atol=1e-6)


def reference_causal_gsm(x: torch.Tensor, module: GateShift, t: int) -> torch.Tensor:
    """Causal GSM written out frame by frame from the docstring of models/temporal/causal.py."""
    n, c = x.shape[0] // t, x.shape[1]
    half = c // 2
    frames = x.view(n, t, c, *x.shape[2:])
    u = F.relu(module.bn(x)).view_as(frames)
    w = conv3d_from_taps(module.conv3D.weight)  # (2, C/2, 3 taps, 3, 3)
    out = torch.zeros_like(frames)
    y = torch.zeros_like(frames)
    for i in range(t):
        gate = []
        for g in range(2):
            total = module.conv3D.bias[g].expand(n, *x.shape[2:]).clone()
            for k in range(3):
                src = i - 2 + k
                if src >= 0:
                    total = (
                        total
                        + F.conv2d(
                            u[:, src, g * half : (g + 1) * half], w[g : g + 1, :, k], padding=1
                        )[:, 0]
                    )
            gate.append(torch.tanh(total))
        y[:, i, :half] = frames[:, i, :half] * gate[0][:, None]
        y[:, i, half:] = frames[:, i, half:] * gate[1][:, None]
    for i in range(t):
        residual = frames[:, i] - y[:, i]
        out[:, i] = residual
        if i >= 2:
            out[:, i, :half] += y[:, i - 2, :half]  # half 1 from t-2
        if i >= 1:
            out[:, i, half:] += y[:, i - 1, half:]  # half 2 from t-1
    # the interleave: new channel 2b + a of a half holds old channel a*C/4 + b
    z = out.view(n, t, 2, 2, c // 4, *x.shape[2:]).transpose(3, 4)
    return z.reshape_as(x)


def test_causal_gsm_matches_a_frame_by_frame_reference() -> None:
    t = 5
    module = randomise(GateShift(8, t, causal=True)).eval()
    x = torch.randn(2 * t, 8, 4, 5)
    with torch.no_grad():
        expected = reference_causal_gsm(x, module, t)
        assert torch.allclose(module(x), expected, atol=1e-5)
        offline = randomise(GateShift(8, t)).eval()
        assert not torch.allclose(offline(x), expected, atol=1e-3)


def test_causal_tsm_takes_fold_one_from_two_frames_back() -> None:
    t, c = 4, 16
    x = torch.arange(t * c, dtype=torch.float32).view(t, c, 1, 1) + 1
    out = TemporalShift(c, t, shift_div=8, causal=True)(x)[:, :, 0, 0]
    fold = c // 8
    assert torch.equal(out[2:, :fold], x[:-2, :fold, 0, 0])
    assert not out[:2, :fold].any()
    assert torch.equal(out[1:, fold : 2 * fold], x[:-1, fold : 2 * fold, 0, 0])
    assert not out[0, fold : 2 * fold].any()
    assert torch.equal(out[:, 2 * fold :], x[:, 2 * fold :, 0, 0])


@pytest.mark.parametrize("kind", ["gsm", "gsf"])
def test_causal_modules_train_on_the_plain_ops(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a causal module took an offline fast path")

    from gateshift.models.temporal import gsf as gsf_module

    for mod in (gsm_module, gsf_module):
        monkeypatch.setattr(mod, "fast_gate", refuse)
    monkeypatch.setattr(gsm_module, "fast_gated_shift", refuse)
    model = gateshift.create_model(f"resnet18_{kind}", num_classes=3, num_segments=3, width=16,
                                   causal=True)  # fmt: skip
    for _, module in temporal_modules(model):
        assert isinstance(module, GateShift | GateShiftFuse) and module.causal
        torch.nn.init.normal_(module.conv3D.weight, std=0.1)  # zero gates block BN's gradient
    model.train()
    model(torch.randn(2, 3, 3, 32, 32)).logsumexp(1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    model.eval()
    with torch.no_grad():  # inference, where offline GSM would take the native/eager paths
        assert torch.isfinite(model(torch.randn(1, 3, 3, 32, 32))).all()


def test_config_key_builds_causal_modules(tmp_path: object) -> None:
    cfg = load_config(None, ["data.root=x", "model.name=resnet18_gsf", "model.width=16",
                             "model.causal=true"])  # fmt: skip
    model = build_model(cfg, 4)
    modules = [m for _, m in temporal_modules(model)]
    assert model.causal and modules and all(m.causal for m in modules)
    assert not any(m.causal for _, m in temporal_modules(
        build_model(load_config(None, ["data.root=x", "model.width=16"]), 4)))  # fmt: skip


def test_causal_tsn_is_the_tsn() -> None:
    torch.manual_seed(0)
    causal = gateshift.create_model("resnet18_tsn", num_classes=3, width=16, causal=True).eval()
    offline = gateshift.create_model("resnet18_tsn", num_classes=3, width=16).eval()
    offline.load_state_dict(causal.state_dict())
    clips = torch.randn(1, 8, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(causal(clips), offline(clips))
