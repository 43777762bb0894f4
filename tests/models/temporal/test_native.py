"""The native C++ kernels (gated shift and its backward, gate BN + ReLU, gate sums + tanh)
against the plain-op definitions, and whole models with and without them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from gateshift import create_model
from gateshift.models.temporal import GateShift, _native
from gateshift.models.temporal._fast_gate import batch_norm_affine, gate_from_maps
from gateshift.models.temporal.gsm import choose_path, gated_shift

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
def test_native_shift_equals_the_definition(
    channels_last: bool, dtype: torch.dtype, t: int, c: int
) -> None:
    x, gate = _frames(2, t, c, 5, 3, dtype, channels_last)
    got = _native.gated_shift(x, gate, t)
    assert got is not None
    assert got.dtype == dtype
    assert got.is_contiguous(memory_format=torch.channels_last) == channels_last
    # the definition in float64 on the same (rounded) inputs; the kernel rounds once
    want = gated_shift(x.double(), gate.double(), t, interleave=False)
    tol = 1e-6 if dtype == torch.float32 else 2**-8
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)


@needs_native
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("t", "c"), [(1, 4), (3, 6), (4, 70)])
def test_native_shift_backward_equals_the_definitions_gradients(
    channels_last: bool, dtype: torch.dtype, t: int, c: int
) -> None:
    x, gate = _frames(2, t, c, 5, 3, dtype, channels_last)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(7)).to(dtype)
    got = _native.gated_shift_backward(x, gate, grad, t)
    assert got is not None
    grad_x, grad_gate = got
    assert grad_x.dtype == dtype and grad_gate.dtype == torch.float32
    assert grad_x.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert grad_gate.shape == gate.shape
    # autograd through the definition, float64, on the same (rounded) inputs
    x64 = x.double().requires_grad_()
    gate64 = gate.double().requires_grad_()
    gated_shift(x64, gate64, t, interleave=False).backward(grad.double())
    tol = 1e-5 if dtype == torch.float32 else 2**-7
    torch.testing.assert_close(grad_x.double(), x64.grad, rtol=tol, atol=tol)
    # dG sums C/2 products, accumulated in float32 whatever the dtype
    torch.testing.assert_close(grad_gate.double(), gate64.grad, rtol=1e-5, atol=1e-4)


@needs_native
@pytest.mark.parametrize("channels_last", [False, True])
def test_a_gsm_training_step_gives_the_same_gradients_with_and_without_the_kernels(
    channels_last: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = create_model("resnet18_gsm", num_classes=5, num_segments=4, width=8, dropout=0.0)
    for name, module in model.named_modules():
        if name.endswith("conv3D"):  # a non-zero gate in every GSM
            torch.nn.init.normal_(module.weight, std=0.3)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    clip = torch.randn(2, 4, 3, 32, 32)
    calls: list[int] = []
    real = _native.gated_shift_backward

    def counted(*args: object) -> object:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_native, "gated_shift_backward", counted)

    def gradients() -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        model(clip).square().sum().backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    native = gradients()
    assert calls, "the training step did not reach the native backward"
    monkeypatch.setenv("GATESHIFT_NATIVE", "0")
    eager = gradients()
    assert len(native) == len(eager)
    for a, b in zip(native, eager, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@needs_native
def test_inference_takes_the_native_path_and_training_the_autograd_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gsm = GateShift(8, 4, interleave=False).eval()
    torch.nn.init.normal_(gsm.conv3D.weight, std=0.3)
    x, _ = _frames(1, 4, 8, 4, 4, torch.float32, True)
    params = tuple(gsm.parameters())
    calls: list[str] = []
    real_shift, real_gate = _native.gated_shift, _native.gate

    def shift(*args: object, **kw: object) -> object:
        calls.append("shift")
        return real_shift(*args, **kw)  # type: ignore[arg-type]

    def gate(*args: object, **kw: object) -> object:
        calls.append("gate")
        return real_gate(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(_native, "gated_shift", shift)
    monkeypatch.setattr(_native, "gate", gate)
    with torch.no_grad():
        assert choose_path(x, gsm.bn, params) == "native"
        native = gsm(x)
    assert calls == ["gate", "shift"]
    assert choose_path(x, gsm.bn, params) == "autograd"  # the parameters require gradients
    trained = gsm(x)
    # training: the autograd path, whose gated shift (no interleave) runs the kernel forward
    assert calls == ["gate", "shift", "shift"] and trained.requires_grad
    torch.testing.assert_close(native, trained.detach(), rtol=1e-5, atol=1e-5)
    monkeypatch.setenv("GATESHIFT_NATIVE", "0")
    with torch.no_grad():
        assert choose_path(x, gsm.bn, params) == "eager"
        assert choose_path(x.double(), gsm.bn, params) == "eager"


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
@pytest.mark.parametrize("name", ["bninception_gsm", "resnet18_gsm", "bninception_gsf"])
def test_model_logits_are_the_same_with_and_without_the_kernels(
    channels_last: bool, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, num_segments=4).eval()
    for module in model.modules():  # a non-zero gate and BN statistics, so all of it matters
        if hasattr(module, "conv3D"):
            torch.nn.init.normal_(module.conv3D.weight, std=0.05)
            module.bn.running_mean.normal_(0, 0.1)
            module.bn.running_var.uniform_(0.5, 2.0)
            torch.nn.init.normal_(module.bn.weight, 1.0, 0.2)
            torch.nn.init.normal_(module.bn.bias, 0.0, 0.2)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    clip = torch.randn(1, 4, 3, 96, 96)
    calls: set[str] = set()
    real = _native.native_module()
    assert real is not None

    class Counting:  # the compiled module, noting which kernels run
        def __getattr__(self, name: str) -> object:
            calls.add(name)
            return getattr(real, name)

    monkeypatch.setattr(_native, "native_module", lambda: Counting() if _native.enabled() else None)
    with torch.no_grad():
        native = model(clip)
        again = model(clip)  # from the cached BN scale/shift and gate weights
        monkeypatch.setenv("GATESHIFT_NATIVE", "0")
        eager = model(clip)
    assert {"affine_relu", "gate_fold"} <= calls
    assert bool(calls & {"gated_shift", "gated_shift_"}) == name.endswith("gsm")  # GSF: own fuse
    torch.testing.assert_close(native, eager, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, native, rtol=0, atol=0)


@needs_native
def test_the_kernels_tanh_is_within_two_ulp_of_torch() -> None:
    module = _native.native_module()
    assert module is not None
    x = torch.cat(
        (
            torch.linspace(-12, 12, 200_001),
            torch.logspace(-30, 1.2, 20_001),
            -torch.logspace(-30, 1.2, 20_001),
            torch.tensor([0.0, 0.55, -0.55, 9.0, 1e30, -1e30, float("inf"), -float("inf")]),
        )
    )
    got = module.tanh_float(x).double()
    want = torch.tanh(x.double())
    ulp = torch.finfo(torch.float32).eps * want.abs().clamp_min(torch.finfo(torch.float32).tiny)
    assert ((got - want).abs() / ulp).max() <= 2.0
    assert torch.isnan(module.tanh_float(torch.tensor([float("nan")]))).all()


def _layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@needs_native
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(8, 6, 5, 3), (2, 37, 1, 1), (4, 64, 7, 7)])
def test_native_bn_relu_equals_eval_batch_norm_then_relu(
    channels_last: bool, dtype: torch.dtype, shape: tuple[int, int, int, int]
) -> None:
    gen = torch.Generator().manual_seed(shape[1])
    c = shape[1]
    bn = torch.nn.BatchNorm2d(c).eval()
    with torch.no_grad():
        bn.running_mean.normal_(generator=gen)
        bn.running_var.uniform_(0.1, 3.0, generator=gen)
        bn.weight.normal_(generator=gen)  # negative scales too
        bn.bias.normal_(generator=gen)
    x = _layout(torch.randn(shape, generator=gen).to(dtype), channels_last)
    x[0, 0, 0, 0] = float("nan")
    scale, shift = batch_norm_affine(bn)
    got = _native.affine_relu(x, scale, shift)
    assert got is not None and got.dtype == dtype
    one_pixel = shape[2] * shape[3] == 1  # both layouts at once
    assert got.is_contiguous(memory_format=torch.channels_last) == (channels_last or one_pixel)
    with torch.no_grad():
        want = torch.relu(bn.double()(x.double()))
    tol = 1e-6 if dtype == torch.float32 else 2**-8
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol, equal_nan=True)
    assert torch.isnan(got[0, 0, 0, 0])  # NaN is not clamped to 0
    with pytest.raises(ValueError, match="channels"):
        _native.affine_relu(x, scale[:-1], shift[:-1])


@needs_native
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(("t", "h", "w"), [(8, 9, 7), (1, 3, 5), (3, 1, 1), (2, 7, 2), (4, 2, 1)])
def test_native_gate_sums_equal_the_definition(
    channels_last: bool, dtype: torch.dtype, t: int, h: int, w: int
) -> None:
    gen = torch.Generator().manual_seed(t * 100 + h * 10 + w)
    y = _layout((torch.randn(2 * t, 54, h, w, generator=gen) * 0.4).to(dtype), channels_last)
    bias = torch.tensor([0.3, -0.7])
    got = _native.gate_fold(y, bias, t)
    assert got is not None and got.shape == (2, t, 2, h, w) and got.dtype == dtype
    planes = got.view(2 * t, 2, h, w)
    assert planes.is_contiguous(memory_format=torch.channels_last) == (channels_last or h * w == 1)
    want = gate_from_maps(y.double(), bias.double(), t)  # the eager slice adds, in float64
    tol = 1e-6 if dtype == torch.float32 else 2**-8
    torch.testing.assert_close(got.double(), want, rtol=tol, atol=tol)
    assert _native.gate_fold(y[:, :27], bias, t) is None  # not the 54 maps: eager
    assert _native.gate_fold(y, bias, 2 * t + 1) is None  # no whole clips: eager


@needs_native
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_in_place_shift_equals_the_out_of_place_one(
    channels_last: bool, dtype: torch.dtype
) -> None:
    x, gate = _frames(3, 5, 70, 4, 3, dtype, channels_last)
    want = _native.gated_shift(x, gate, 5)
    y = x.clone(memory_format=torch.preserve_format)
    got = _native.gated_shift(y, gate, 5, inplace=True)
    assert got is y and want is not None
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_the_build_is_keyed_by_the_instruction_sets_the_compiler_targets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cache shared by machines with other CPUs (an NFS home) must not hand one machine's
    -march=native build to another: the build folder's name follows the compiler's target."""
    import subprocess

    targets = {"now": "#define __AVX2__ 1\n#define __AVX512F__ 1\n"}

    def compiler(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
        assert "-march=native" in cmd and "-dM" in cmd
        return subprocess.CompletedProcess(cmd, 0, stdout=targets["now"], stderr="")

    monkeypatch.setattr(subprocess, "run", compiler)
    avx512 = _native.build_tag()
    targets["now"] = "#define __AVX512F__ 1\n#define __AVX2__ 1\n"  # same set, other order
    assert _native.build_tag() == avx512
    targets["now"] = "#define __AVX2__ 1\n"  # an older CPU
    avx2 = _native.build_tag()
    assert avx2 != avx512
    monkeypatch.setattr(_native.torch, "__version__", "0.0.0")  # another torch
    other_torch = _native.build_tag()
    assert other_torch != avx2
    # another checkout: its own folder (ninja rebuilds a folder whose sources moved)
    monkeypatch.setattr(_native, "_SOURCE", Path("/elsewhere/gateshift/_native.cpp"))
    assert _native.build_tag() != other_torch


def test_a_lock_left_by_a_killed_build_is_removed_a_fresh_one_kept(tmp_path: Path) -> None:
    """torch waits on a build lock forever: a killed build's would hang every later process."""
    import os
    import time

    lock = tmp_path / "lock"
    lock.touch()
    _native._drop_stale_lock(lock)
    assert lock.exists()  # a build may be running right now
    old = time.time() - _native.STALE_LOCK_S - 60
    os.utime(lock, (old, old))
    _native._drop_stale_lock(lock)
    assert not lock.exists()
    _native._drop_stale_lock(lock)  # none: nothing to do


def test_a_compiler_that_cannot_target_this_machine_turns_the_kernels_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    monkeypatch.setattr(_native.shutil, "which", lambda name: name)  # "found" on PATH
    with pytest.raises(RuntimeError, match="march=native"):
        _native.build_tag()
    assert _native._build() is None
