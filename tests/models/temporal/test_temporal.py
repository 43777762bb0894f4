"""GSM, GSF and TSM against slow references written from the definitions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gateshift.models.temporal import GateShift, GateShiftFuse, TemporalShift, make_temporal
from gateshift.models.temporal._cache import InferenceCache
from gateshift.models.temporal._fast_gate import _gate_sum, _GateSum, fast_gate
from gateshift.models.temporal._fast_shift import GatedShiftFunction
from gateshift.models.temporal._gate import GateConv, conv3d_from_taps
from gateshift.models.temporal.gsm import frame_gate, gated_shift, spatiotemporal_gate

from .helpers import random_frames, randomise
from .reference_impl import reference_gsf, reference_gsm, reference_tsm

# ---------------------------------------------------------------- GSM


def test_gsm_worked_example_from_reference() -> None:
    c, t = 8, 4
    x = (torch.arange(t * c, dtype=torch.float32) + 1).view(t, c, 1, 1)  # x[t, c] = 8t + c + 1
    gsm = GateShift(c, t).eval()
    zero_gate = gsm(x).flatten(1)
    assert zero_gate[0].tolist() == [1, 3, 2, 4, 5, 7, 6, 8]
    with torch.no_grad():
        gsm.conv3D.bias.fill_(50.0)  # tanh(50) == 1 in float32: gate forced to 1
    one_gate = gsm(x).flatten(1)
    assert one_gate[0].tolist() == [9, 11, 10, 12, 0, 0, 0, 0]
    assert one_gate[1].tolist() == [17, 19, 18, 20, 5, 7, 6, 8]


@pytest.mark.parametrize("interleave", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_gsm_matches_reference(interleave: bool, channels_last: bool, training: bool) -> None:
    gsm = randomise(GateShift(8, 3, interleave=interleave)).train(training)
    x = random_frames(2, 3, 8, channels_last=channels_last)
    expected = reference_gsm(gsm, x, training=training)
    got = gsm(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last or x.shape[-1] == 1


def test_gsm_zero_init_is_the_interleave_permutation() -> None:
    gsm = GateShift(16, 4).eval()
    assert torch.count_nonzero(gsm.conv3D.weight) == 0 and torch.count_nonzero(gsm.conv3D.bias) == 0
    x = random_frames(1, 4, 16)
    half = [2 * (i % 4) + i // 4 for i in range(8)]  # where old channel i of a half goes
    perm = [0] * 16
    for g in range(2):
        for i in range(8):
            perm[g * 8 + half[i]] = g * 8 + i
    torch.testing.assert_close(gsm(x), x[:, perm])
    plain = GateShift(16, 4, interleave=False).eval()
    torch.testing.assert_close(plain(x), x)


@pytest.mark.parametrize("interleave", [True, False])
def test_gated_shift_function_gradcheck(interleave: bool) -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 8, 3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    gate = (torch.rand(2, 3, 2, 3, 4, dtype=torch.float64, generator=gen) * 2 - 1).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: GatedShiftFunction.apply(a, b, 3, interleave), (x, gate)
    )


def test_gsm_module_gradcheck_float64() -> None:
    gsm = randomise(GateShift(4, 3)).double().eval()
    x = torch.randn(6, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gsm, (x,))


def test_autograd_function_and_definition_gradients_agree_channels_last() -> None:
    x = random_frames(2, 4, 8, channels_last=True).requires_grad_()
    gate = torch.rand(2, 4, 2, 5, 6, requires_grad=True)
    weights = torch.randn(8, 8, 5, 6)
    (GatedShiftFunction.apply(x, gate, 4, True) * weights).sum().backward()
    gx, gg = x.grad.clone(), gate.grad.clone()
    x.grad = gate.grad = None
    (gated_shift(x, gate, 4, True) * weights).sum().backward()
    torch.testing.assert_close(gx, x.grad)
    torch.testing.assert_close(gg, gate.grad)


@pytest.mark.parametrize("path", ["fast", "reference", "frame"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_every_gate_path_equals_the_published_conv3d_in_float64(
    path: str, channels_last: bool
) -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2 * 4, 16, 5, 7, dtype=torch.float64, generator=gen)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    conv = GateConv(16, zero_init=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.randn(6, 8, 3, 3, dtype=torch.float64, generator=gen))
        conv.bias.copy_(torch.randn(2, dtype=torch.float64, generator=gen))
    bn = randomise(nn.BatchNorm2d(16)).double().eval()
    inputs = [x.requires_grad_(), conv.weight, conv.bias]
    if path == "fast":
        got = fast_gate(x, bn, conv, 4, "autograd", InferenceCache())  # (N, T, 2, H, W)
    elif path == "frame":  # what tracing and ONNX export run
        got = frame_gate(x, bn, conv, 4)
    else:
        got = spatiotemporal_gate(x, bn, conv, 4)
    clip = F.relu(bn(x)).view(2, 4, 16, 5, 7).transpose(1, 2)  # (N, C, T, H, W)
    published = F.conv3d(clip, conv3d_from_taps(conv.weight), conv.bias, padding=1, groups=2)
    expected = torch.tanh(published).transpose(1, 2)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    if path == "fast":  # the gate comes back in the frames' layout
        assert got.reshape(-1, 2, 5, 7).is_contiguous(memory_format=torch.channels_last) == (
            channels_last
        )
    weights = torch.randn(got.shape, dtype=torch.float64, generator=gen)
    grads = torch.autograd.grad((got * weights).sum(), inputs)
    wanted = torch.autograd.grad((expected * weights).sum(), inputs)
    for grad, want in zip(grads, wanted, strict=True):
        torch.testing.assert_close(grad, want, rtol=1e-12, atol=1e-12)


def test_gate_sum_adjoint_is_the_gradient_of_the_slice_adds() -> None:
    """The training gate's written-out backward (an im2col of the time-shifted gradient) is
    the exact gradient of the forward's slice adds, taps at every border included."""
    gen = torch.Generator().manual_seed(7)
    taps = torch.randn(2, 4, 2, 3, 3, 3, 5, 6, dtype=torch.float64, generator=gen)
    bias = torch.randn(2, dtype=torch.float64, generator=gen)
    taps.requires_grad_()
    bias.requires_grad_()
    assert torch.autograd.gradcheck(_GateSum.apply, (taps, bias))
    weights = torch.randn(2, 4, 2, 5, 6, dtype=torch.float64, generator=gen)
    got = torch.autograd.grad((_GateSum.apply(taps, bias) * weights).sum(), (taps, bias))
    want = torch.autograd.grad((_gate_sum(taps, bias) * weights).sum(), (taps, bias))
    for grad, wanted in zip(got, want, strict=True):
        torch.testing.assert_close(grad, wanted, rtol=0, atol=1e-12)
    # only the slice adds' own taps get gradient: tap 0 of the last frame feeds no frame
    assert got[0][:, -1, :, 0].abs().max() == 0
    assert got[0][:, 0, :, 2].abs().max() == 0


def test_gsm_parameter_count_is_29c_plus_2() -> None:
    for c in (8, 64, 352):
        assert sum(p.numel() for p in GateShift(c, 8).parameters()) == 29 * c + 2


def test_gate_state_dict_round_trips_the_published_conv3d_layout() -> None:
    gsm = randomise(GateShift(8, 4))
    weight5 = gsm.state_dict()["conv3D.weight"]
    # tap k of group g in the stored 2-D form is the published kernel [g, :, k]
    torch.testing.assert_close(gsm.conv3D.weight[3 * 1 + 2], weight5[1, :, 2])
    other = GateShift(8, 4)
    other.load_state_dict(gsm.state_dict())
    torch.testing.assert_close(other.conv3D.weight, gsm.conv3D.weight)
    x = random_frames(1, 4, 8)
    torch.testing.assert_close(other.eval()(x), gsm.eval()(x))


def test_gsm_state_dict_names_follow_the_release() -> None:
    keys = set(GateShift(64, 8).state_dict())
    assert {"conv3D.weight", "conv3D.bias", "bn.weight", "bn.running_var"} <= keys
    assert GateShift(64, 8).state_dict()["conv3D.weight"].shape == (2, 32, 3, 3, 3)


# ---------------------------------------------------------------- GSF


@pytest.mark.parametrize(("channels", "ratio"), [(8, 100), (16, 25), (16, 50)])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_gsf_matches_reference(
    channels: int, ratio: float, channels_last: bool, training: bool
) -> None:
    gsf = randomise(GateShiftFuse(channels, 3, ratio=ratio)).train(training)
    x = random_frames(2, 3, channels, channels_last=channels_last)
    torch.testing.assert_close(gsf(x), reference_gsf(gsf, x, training), rtol=1e-5, atol=1e-5)


def test_gsf_channels_and_parameters() -> None:
    gsf = GateShiftFuse(256, 8, ratio=25)
    assert gsf.processed == 64
    assert gsf.bn.weight.shape == (64,)
    assert gsf.state_dict()["conv3D.weight"].shape == (2, 32, 3, 3, 3)
    assert sum(p.numel() for p in gsf.parameters()) == 29 * 64 + 40
    assert torch.count_nonzero(gsf.conv3D.weight) > 0  # default init, not zero like GSM


@pytest.mark.parametrize(("channels", "ratio"), [(64, 35), (10, 100), (64, 0), (64, 150)])
def test_gsf_bad_ratio_is_a_construction_error(channels: int, ratio: float) -> None:
    with pytest.raises(ValueError, match="GateShiftFuse"):
        GateShiftFuse(channels, 8, ratio=ratio)


def test_gsf_gradcheck_float64() -> None:
    gsf = randomise(GateShiftFuse(8, 3, ratio=50)).double().eval()
    x = torch.randn(6, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gsf, (x,))


# ---------------------------------------------------------------- TSM


@pytest.mark.parametrize("channels_last", [False, True])
def test_tsm_matches_reference(channels_last: bool) -> None:
    x = random_frames(2, 4, 16, channels_last=channels_last)
    out = TemporalShift(16, 4)(x)
    torch.testing.assert_close(out, reference_tsm(x, 4, 8), rtol=0, atol=0)
    assert out.is_contiguous(memory_format=torch.channels_last) == channels_last


def test_tsm_gradcheck_and_no_parameters() -> None:
    tsm = TemporalShift(16, 3, shift_div=4)
    assert not list(tsm.parameters())
    x = torch.randn(6, 16, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(tsm, (x,))


@pytest.mark.parametrize("channels_last", [False, True])
def test_tsm_training_runs_one_autograd_function_with_the_reference_gradient(
    channels_last: bool,
) -> None:
    x = random_frames(2, 4, 16, channels_last=channels_last).requires_grad_()
    out = TemporalShift(16, 4)(x)
    assert type(out.grad_fn).__name__ == "TemporalShiftFunctionBackward"  # not CopySlices
    grad_out = random_frames(2, 4, 16, channels_last=channels_last)
    (grad,) = torch.autograd.grad(out, x, grad_out)
    x_ref = x.detach().clone().requires_grad_()
    (grad_ref,) = torch.autograd.grad(reference_tsm(x_ref, 4, 8), x_ref, grad_out)
    torch.testing.assert_close(grad, grad_ref, rtol=0, atol=0)
    with torch.no_grad():
        assert TemporalShift(16, 4)(x).grad_fn is None


# ---------------------------------------------------------------- shared contract


@pytest.mark.parametrize("kind", ["gsm", "gsf", "tsm"])
def test_batch_not_a_multiple_of_segments_is_a_clear_error(kind: str) -> None:
    module = make_temporal(kind, 16, num_segments=8)
    with pytest.raises(ValueError, match="not a multiple of num_segments=8"):
        module(torch.randn(12, 16, 4, 4))


@pytest.mark.parametrize("kind", ["gsm", "gsf", "tsm"])
def test_wrong_channel_count_is_a_clear_error(kind: str) -> None:
    module = make_temporal(kind, 16, num_segments=2)
    with pytest.raises(ValueError, match="built for 16 channels"):
        module(torch.randn(4, 8, 4, 4))


@pytest.mark.parametrize("kind", ["gsm", "gsf", "tsm"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_matches_float32(kind: str, dtype: torch.dtype) -> None:
    module = randomise(make_temporal(kind, 16, num_segments=4)).eval()
    x = random_frames(2, 4, 16)
    expected = module(x)
    got = module.to(dtype)(x.to(dtype))
    assert got.dtype == dtype
    torch.testing.assert_close(got.float(), expected, rtol=0.05, atol=0.1)  # ~3 digits


@pytest.mark.parametrize("kind", ["gsm", "gsf", "tsm"])
def test_bf16_autocast_backward_runs(kind: str) -> None:
    module = randomise(make_temporal(kind, 16, num_segments=4)).train()
    conv = nn.Conv2d(3, 16, 3, padding=1)
    x = torch.randn(8, 3, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = module(conv(x))
    out.float().square().mean().backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()


@pytest.mark.parametrize("kind", ["gsm", "gsf", "tsm"])
def test_torch_export_matches_eager(kind: str) -> None:
    module = randomise(make_temporal(kind, 16, num_segments=4)).eval()
    x = random_frames(1, 4, 16)
    expected = module(x)
    exported = torch.export.export(module, (x,))
    torch.testing.assert_close(exported.module()(x), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("kind", ["gsm", "gsf", "tsm"])
def test_modules_cast_to_half_precision_follow_float32(
    dtype: torch.dtype, channels_last: bool, kind: str
) -> None:
    """A whole module in fp16/bf16 on CPU (eval, no grad: the native kernels take bf16, fp16
    runs the eager ops) stays within half precision of its float32 self."""
    t, c = 4, 16
    module = randomise(make_temporal(kind, c, num_segments=t), seed=5).eval()
    x = torch.randn(2 * t, c, 6, 5, generator=torch.Generator().manual_seed(1))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        want = module(x)
        got = module.to(dtype)(x.to(dtype))
    assert got.dtype == dtype and torch.isfinite(got).all()
    torch.testing.assert_close(got.float(), want, rtol=0.05, atol=0.05)
