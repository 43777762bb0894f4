"""The fused C++ gated shift (inference) against the plain-op definition."""

from __future__ import annotations

import shutil

import pytest
import torch

from gateshift import create_model
from gateshift.models.temporal import _native
from gateshift.models.temporal.gsm import gated_shift, gated_shift_reference

needs_native = pytest.mark.skipif(
    not _native.enabled() or shutil.which("c++") is None,
    reason="native kernels turned off or no C++ compiler",
)


def _frames(n: int, t: int, c: int, h: int, w: int, dtype: torch.dtype, channels_last: bool):
    gen = torch.Generator().manual_seed(c * 100 + t)
    x = torch.randn(n * t, c, h, w, generator=gen).to(dtype)
    gate = (torch.rand(n, t, 2, h, w, generator=gen) * 2 - 1).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        planes = gate.view(n * t, 2, h, w).contiguous(memory_format=torch.channels_last)
        gate = planes.view(n, t, 2, h, w)
    return x, gate


@needs_native
def test_the_kernels_build_on_a_machine_with_a_compiler() -> None:
    assert _native.native_module() is not None


@needs_native
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("t", "c"), [(1, 4), (3, 6), (4, 70)])
def test_fused_shift_equals_the_definition(
    channels_last: bool, dtype: torch.dtype, t: int, c: int
) -> None:
    x, gate = _frames(2, t, c, 5, 3, dtype, channels_last)
    got = _native.gated_shift(x, gate, t)
    assert got is not None
    assert got.dtype == dtype
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
    # the definition in float64 on the same (rounded) inputs; the kernel rounds once
    want = gated_shift_reference(x.double(), gate.double(), t, interleave=False)
    tol = 1e-6 if dtype == torch.float32 else 2**-8
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)


@needs_native
def test_no_grad_gated_shift_takes_the_kernel_and_autograd_the_eager_ops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, gate = _frames(1, 4, 8, 4, 4, torch.float32, True)
    calls: list[int] = []
    real = _native.gated_shift

    def counting(*args: object) -> object:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_native, "gated_shift", counting)
    with torch.no_grad():
        fused = gated_shift(x, gate, 4, interleave=False)
    assert calls == [1]
    x.requires_grad_()
    eager = gated_shift(x, gate, 4, interleave=False)
    assert calls == [1] and eager.requires_grad
    torch.testing.assert_close(fused, eager.detach(), rtol=1e-6, atol=1e-6)


def test_unsupported_inputs_and_the_switch_fall_back(monkeypatch: pytest.MonkeyPatch) -> None:
    x, gate = _frames(1, 2, 4, 3, 3, torch.float64, False)
    assert _native.gated_shift(x, gate, 2) is None  # float64: eager
    strided = torch.randn(2, 4, 6, 6)[:, :, ::2, ::2]
    assert _native.gated_shift(strided, torch.rand(1, 2, 2, 3, 3), 2) is None
    monkeypatch.setenv("GATESHIFT_NATIVE", "0")
    assert not _native.enabled()
    assert _native.native_module() is None


@needs_native
@pytest.mark.parametrize("channels_last", [False, True])
def test_model_logits_are_the_same_with_and_without_the_kernels(
    channels_last: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = create_model("bninception_gsm", num_classes=5, num_segments=4).eval()
    for module in model.modules():  # a non-zero gate, so the shift moves something
        if hasattr(module, "conv3D"):
            torch.nn.init.normal_(module.conv3D.weight, std=0.05)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    clip = torch.randn(1, 4, 3, 96, 96)
    with torch.no_grad():
        fused = model(clip)
        monkeypatch.setenv("GATESHIFT_NATIVE", "0")
        eager = model(clip)
    torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-5)
