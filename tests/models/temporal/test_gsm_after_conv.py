"""GSM right after a convolution, with its interleave folded into that convolution.

``TemporalWrap(conv, GateShift, "after")`` computes ``GateShift(conv(x))`` through
``GateShift.forward_after``, which reorders the convolution's output channels instead of
writing an interleaved output. These tests hold it to the plain composition: same outputs,
same gradients, same BN statistics, and no stale weights from its inference cache.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from gateshift.models.temporal import GateShift
from gateshift.models.temporal.insert import TemporalWrap

from .helpers import randomise

T = 4


def _pair(channels: int = 16, bias: bool = True) -> tuple[TemporalWrap, nn.Conv2d, GateShift]:
    conv = nn.Conv2d(6, channels, 3, padding=1, bias=bias)
    gsm = randomise(GateShift(channels, T), seed=3)
    wrap = TemporalWrap(copy.deepcopy(conv), copy.deepcopy(gsm), "after")
    return wrap, conv, gsm


def _clips(channels_last: bool = False) -> torch.Tensor:
    x = torch.randn(2 * T, 6, 7, 5, generator=torch.Generator().manual_seed(4))
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _fold_is_taken(wrap: TemporalWrap) -> bool:
    assert isinstance(wrap.temporal, GateShift)
    gsm = wrap.temporal
    return gsm._can_follow(wrap.layer) and gsm.source is not None


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_eval_matches_the_plain_composition(channels_last: bool, bias: bool) -> None:
    wrap, conv, gsm = _pair(bias=bias)
    wrap.eval()
    gsm.eval()
    assert _fold_is_taken(wrap)
    x = _clips(channels_last)
    with torch.no_grad():
        expected = gsm(conv(x))
        got = wrap(x)
        again = wrap(x)  # second call: from the cached folded weights
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, expected, rtol=1e-5, atol=1e-5)
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_training_step_matches_outputs_gradients_and_bn_statistics() -> None:
    wrap, conv, gsm = _pair()
    wrap.train()
    gsm.train()
    x = _clips().requires_grad_()
    x_plain = x.detach().clone().requires_grad_()
    weights = torch.randn(2 * T, 16, 7, 5, generator=torch.Generator().manual_seed(5))
    out = wrap(x)
    (out * weights).sum().backward()
    expected = gsm(conv(x_plain))
    (expected * weights).sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad, x_plain.grad, rtol=1e-4, atol=1e-5)
    folded = dict(wrap.named_parameters())

    def close_grads(got: torch.Tensor | None, want: torch.Tensor | None) -> None:
        # the two paths add the same float32 terms in another order: rounding scales with
        # the size of the gradient, so the absolute tolerance does too
        assert got is not None and want is not None
        scale = max(1.0, want.abs().max().item())
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * scale)

    for name, p in conv.named_parameters():
        close_grads(folded[f"layer.{name}"].grad, p.grad)
    for name, p in gsm.named_parameters():
        close_grads(folded[f"temporal.{name}"].grad, p.grad)
    buffers = dict(wrap.named_buffers())
    for name, b in gsm.bn.named_buffers():
        torch.testing.assert_close(buffers[f"temporal.bn.{name}"], b)
    assert int(buffers["temporal.bn.num_batches_tracked"]) == 1


def test_bn_cumulative_average_counts_batches_like_plain_bn() -> None:
    wrap, conv, gsm = _pair()
    wrap.temporal.bn.momentum = None  # type: ignore[union-attr]
    gsm.bn.momentum = None
    wrap.train()
    gsm.train()
    for seed in range(3):
        x = torch.randn(2 * T, 6, 7, 5, generator=torch.Generator().manual_seed(seed))
        wrap(x)
        gsm(conv(x))
    for name, b in gsm.bn.named_buffers():
        torch.testing.assert_close(dict(wrap.named_buffers())[f"temporal.bn.{name}"], b)


def test_bf16_autocast_matches_the_plain_composition() -> None:
    wrap, conv, gsm = _pair()
    wrap.eval()
    gsm.eval()
    x = _clips(channels_last=True)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        got, expected = wrap(x), gsm(conv(x))
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), expected.float(), rtol=0.03, atol=0.03)


def _scaled_weight_is_seen(factor: float) -> None:
    """Run, scale the conv weight in place, run again: the second run sees the new weight."""
    wrap, _, _ = _pair()
    wrap.eval()
    x = _clips()
    before = wrap(x)
    wrap.layer.weight.mul_(factor)
    after = wrap(x)
    expected = wrap.temporal(wrap.layer(x))
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)


def test_in_place_weight_change_is_seen_after_caching() -> None:
    with torch.no_grad():
        _scaled_weight_is_seen(-2.0)  # bumps the version counter


def test_load_state_dict_is_seen_after_caching() -> None:
    wrap, _, _ = _pair()
    other, _, _ = _pair()
    with torch.no_grad():
        other.layer.weight.normal_()
    wrap.eval()
    other.eval()
    x = _clips()
    with torch.no_grad():
        wrap(x)
        wrap.load_state_dict(other.state_dict())
        torch.testing.assert_close(wrap(x), other(x))


def test_model_built_under_inference_mode_runs_and_sees_changes() -> None:
    with torch.inference_mode():
        _scaled_weight_is_seen(3.0)  # inference tensors keep no version counter


def test_hooks_on_the_convolution_see_its_own_output() -> None:
    wrap, conv, gsm = _pair()
    wrap.eval()
    gsm.eval()
    seen: list[torch.Tensor] = []
    wrap.layer.register_forward_hook(lambda m, i, o: seen.append(o.detach()))
    assert not _fold_is_taken(wrap)
    x = _clips()
    with torch.no_grad():
        out = wrap(x)
        torch.testing.assert_close(seen[0], conv(x))
        torch.testing.assert_close(out, gsm(conv(x)), rtol=1e-5, atol=1e-5)


def test_no_fold_without_interleave_or_for_other_layers() -> None:
    plain = TemporalWrap(nn.Conv2d(6, 16, 1), GateShift(16, T, interleave=False), "after")
    grouped = TemporalWrap(nn.Conv2d(6, 16, 1, groups=2), GateShift(16, T), "after")
    seq = TemporalWrap(nn.Sequential(nn.Conv2d(6, 16, 1)), GateShift(16, T), "after")
    assert not any(_fold_is_taken(w) for w in (plain, grouped, seq))
    x = _clips()
    for w in (plain, grouped, seq):
        w.eval()
        torch.testing.assert_close(w(x), w.temporal(w.layer(x)))
