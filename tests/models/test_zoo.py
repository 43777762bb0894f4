"""Every registered model: shapes, gradients, modes; the registry and the recognizer contract."""

from __future__ import annotations

import pytest
import torch

import gateshift
from gateshift.models.temporal import GateShift, GateShiftFuse, temporal_modules

ALL_MODELS = gateshift.list_models()


def _tiny_size(name: str) -> int:
    return 75 if name.startswith("inceptionv3") else 32  # smallest inputs each net accepts


def test_registry_has_every_backbone_and_temporal_combination() -> None:
    backbones = ["bninception", "inceptionv3", "resnet18", "resnet34", "resnet50", "resnet101",
                 "mobilenetv2"]  # fmt: skip
    expected = {f"{b}_{t}" for b in backbones for t in ("tsn", "tsm", "gsm", "gsf")}
    assert set(ALL_MODELS) == expected
    assert gateshift.list_models("resnet50_*") == [
        "resnet50_gsf", "resnet50_gsm", "resnet50_tsm", "resnet50_tsn"
    ]  # fmt: skip


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ValueError, match="did you mean resnet50_gsm"):
        gateshift.create_model("resnet50_gms", num_classes=3)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_model_forward_backward(name: str) -> None:
    torch.manual_seed(0)
    model = gateshift.create_model(name, num_classes=5, num_segments=2)
    # GSM's gate convolution starts at zero, which blocks the gradient of the gate's BN;
    # give it small weights so that every parameter must receive a gradient.
    for _, module in temporal_modules(model):
        if isinstance(module, GateShift | GateShiftFuse):
            torch.nn.init.normal_(module.conv3D.weight, std=0.1)
    size = _tiny_size(name)
    clips = torch.randn(2, 2, 3, size, size)
    model.train()
    logits = model(clips)
    assert logits.shape == (2, 5)
    assert torch.isfinite(logits).all()
    logits.logsumexp(dim=1).sum().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    model.eval()
    with torch.no_grad():
        out = model(clips)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    expected_sites = 0 if name.endswith("_tsn") else len(model.backbone.temporal_sites(
        model.temporal))  # fmt: skip
    assert len(temporal_modules(model)) == expected_sites


def test_recognizer_averages_per_frame_logits() -> None:
    model = gateshift.create_model("resnet18_tsn", num_classes=4, num_segments=3).eval()
    clips = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        per_frame = model.head(model.backbone(clips.flatten(0, 1))).view(2, 3, 4)
        torch.testing.assert_close(model(clips), per_frame.mean(1))


def test_recognizer_input_errors() -> None:
    model = gateshift.create_model("resnet18_gsm", num_classes=4, num_segments=4)
    with pytest.raises(ValueError, match="num_segments=4"):
        model(torch.randn(1, 3, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(N, T, C, H, W\)"):
        model(torch.randn(4, 3, 32, 32))
    with pytest.raises(TypeError, match="normalised float"):
        model(torch.zeros(1, 4, 3, 32, 32, dtype=torch.uint8))


def test_multi_head_outputs_split() -> None:
    model = gateshift.create_model("resnet18_tsm", num_classes=(97, 300), num_segments=2)
    logits = model(torch.randn(1, 2, 3, 32, 32))
    verb, noun = model.head.split(logits)
    assert verb.shape == (1, 97) and noun.shape == (1, 300)


def test_channels_last_matches_nchw_for_gsm() -> None:
    model = gateshift.create_model("bninception_gsm", num_classes=10, num_segments=4).eval()
    for _, module in temporal_modules(model):
        torch.nn.init.normal_(module.conv3D.weight, std=0.05)
    clips = torch.randn(2, 4, 3, 64, 64) * 50
    with torch.no_grad():
        expected = model(clips)
        got = model.to(memory_format=torch.channels_last)(clips)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_builder_options_reach_the_modules() -> None:
    model = gateshift.create_model("resnet50_gsf", num_classes=3, gsf_ratio=50, interleave=False)
    modules = [m for _, m in temporal_modules(model)]
    assert all(m.ratio == 50 and not m.interleave for m in modules)
    assert modules[0].processed == 128
    tsm = gateshift.create_model("resnet18_tsm", num_classes=3, shift_div=4)
    assert all(m.shift_div == 4 for _, m in temporal_modules(tsm))
    with pytest.raises(TypeError):
        gateshift.create_model("resnet18_gsm", num_classes=3, not_an_option=1)
