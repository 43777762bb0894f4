"""Batch norms folded into convolutions: same logits, only where the batch norm reads the
convolution's output, refused (model restored) when the outputs would change."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import gateshift
from gateshift.inference import fold as fold_module
from gateshift.inference.fold import FoldError, fold_batchnorm
from gateshift.models.recognizer import Recognizer
from gateshift.models.temporal.insert import TemporalWrap
from tests.models.temporal.helpers import randomise


def _model(name: str, dtype: torch.dtype = torch.float32, **kw: object) -> Recognizer:
    torch.manual_seed(0)
    model = gateshift.create_model(name, num_classes=5, num_segments=4, **kw)  # type: ignore[arg-type]
    randomise(model)
    with torch.no_grad():  # keep activations in range through the depth
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                module.weight.mul_(0.3)
    return model.eval().to(dtype)


def _batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _gate_batchnorms(model: nn.Module) -> int:
    return sum(
        isinstance(m, nn.BatchNorm2d)
        for w in model.modules()
        if isinstance(w, TemporalWrap)
        for m in w.temporal.modules()
    )


@pytest.mark.parametrize(
    ("name", "kw", "size"),
    [
        ("resnet18_tsn", {"width": 16}, 64),
        ("resnet18_tsm", {"width": 16}, 64),
        ("resnet18_gsm", {"width": 16}, 64),
        ("resnet18_gsf", {"width": 16}, 64),
        ("resnet18_gsm", {"width": 16, "causal": True}, 64),
        ("mobilenetv2_tsm", {}, 64),
        ("mobilenetv2_gsm", {}, 64),
        ("bninception_gsm", {}, 96),
    ],
)
def test_folded_models_give_the_same_logits_in_float64(
    name: str, kw: dict[str, object], size: int
) -> None:
    """In fp64 the fold is exact to 1e-10: every folded pair was a pure conv -> BN chain."""
    model = _model(name, torch.float64, **kw)
    clips = torch.randn(2, 4, 3, size, size, dtype=torch.float64)
    with torch.no_grad():
        before = model(clips)
    total, inside = _batchnorms(model), _gate_batchnorms(model)
    folded = fold_batchnorm(model, clip=clips[:1])
    assert folded > 0
    assert _batchnorms(model) == total - folded  # replaced by identities
    assert _gate_batchnorms(model) == inside  # GSM's gate normalisation never folds
    with torch.no_grad():
        after = model(clips)
    assert (after - before).abs().max() <= 1e-10 * before.abs().max()


def test_what_folds_and_what_does_not() -> None:
    """TSN and TSM (shift before the convolution): every batch norm folds. GSM after a
    convolution sits between it and its batch norm: that pair stays, as do the gates' own."""
    tsm = _model("resnet18_tsm", width=16)
    assert fold_batchnorm(tsm) == 20 and _batchnorms(tsm) == 0
    gsm = _model("resnet18_gsm", width=16)
    wraps = sum(isinstance(m, TemporalWrap) for m in gsm.modules())
    assert fold_batchnorm(gsm) == 20 - wraps
    assert _batchnorms(gsm) == 2 * wraps  # each wrapped conv's BN, and each gate's


def test_channels_last_weights_stay_channels_last_and_match_in_fp32() -> None:
    model = _model("mobilenetv2_gsm").to(memory_format=torch.channels_last)
    clips = torch.randn(1, 4, 3, 64, 64)
    with torch.no_grad():
        before = model(clips)
    fold_batchnorm(model)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert all(
        c.weight.is_contiguous(memory_format=torch.channels_last) and c.bias is not None
        for c in convs
        if c.groups == 1
    )
    with torch.no_grad():
        after = model(clips)
    assert (after - before).abs().max() <= 1e-4 * before.abs().max()


def test_a_streamed_folded_causal_model_matches_the_unfolded_one() -> None:
    model = _model("mobilenetv2_gsm", causal=True)
    frames = torch.randn(6, 3, 64, 64)
    plain = gateshift.Streamer(model)
    with torch.no_grad():
        expected = torch.stack([plain.step(f) for f in frames])
    fold_batchnorm(model)
    folded = gateshift.Streamer(model)
    with torch.no_grad():
        got = torch.stack([folded.step(f) for f in frames])
    assert (got - expected).abs().max() <= 1e-4 * expected.abs().max()


class _SharedOutput(nn.Module):
    """A convolution read by its batch norm and by a skip connection: not foldable."""

    name = "shared"
    num_segments = 1

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        randomise(self)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        y = self.conv(clips.flatten(0, 1))
        return (self.bn(y) + y).mean((1, 2, 3))[None]


def test_a_fold_that_changes_the_outputs_is_refused_and_undone() -> None:
    model = _SharedOutput().eval()
    weight, bn = model.conv.weight, model.bn
    clip = torch.randn(1, 1, 3, 8, 8)
    with pytest.raises(FoldError, match=r"shared's logits .* left unfolded"):
        fold_batchnorm(model, clip=clip)  # type: ignore[arg-type]
    assert model.conv.weight is weight and model.bn is bn


def test_the_tolerance_guards_every_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model("resnet18_tsn", width=16)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    monkeypatch.setattr(fold_module, "TOLERANCE", -1.0)  # any difference, even 0, fails
    with pytest.raises(FoldError):
        fold_batchnorm(model)
    assert _batchnorms(model) == 20
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_training_models_are_refused() -> None:
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(_model("resnet18_tsn", width=16).train())
