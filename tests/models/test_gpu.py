"""The same models on a CUDA GPU: outputs and gradients equal the CPU's, mixed precision runs.

Marked ``gpu``: deselected by default and skipped without CUDA; run with ``pytest -m gpu``.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import gateshift
from gateshift.models.temporal import GateShift, GateShiftFuse, make_temporal, temporal_modules
from gateshift.models.temporal.insert import TemporalWrap

from .temporal.helpers import random_frames, randomise

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def _exact_cuda_math() -> object:
    """TF32 would change fp32 results at the 1e-3 level; compare true fp32."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield None
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize("kind", ["gsm", "gsf", "tsm"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_temporal_module_on_cuda_matches_cpu(kind: str, channels_last: bool) -> None:
    module = randomise(make_temporal(kind, 16, num_segments=4)).train()
    gpu_module = copy.deepcopy(module).to(CUDA)
    x = random_frames(2, 4, 16, channels_last=channels_last).requires_grad_()
    xg = x.detach().to(CUDA).requires_grad_()
    weights = torch.randn(x.shape)
    expected = module(x)
    (expected * weights).sum().backward()
    out = gpu_module(xg)
    (out * weights.to(CUDA)).sum().backward()
    torch.testing.assert_close(out.detach().cpu(), expected.detach(), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(xg.grad.cpu(), x.grad, rtol=1e-4, atol=1e-4)
    pairs = zip(module.named_parameters(), gpu_module.parameters(), strict=True)
    for (name, p), q in pairs:
        assert p.grad is not None and q.grad is not None
        torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gsm_after_conv_under_autocast(dtype: torch.dtype) -> None:
    if dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    conv = nn.Conv2d(6, 16, 3, padding=1)
    wrap = TemporalWrap(conv, randomise(GateShift(16, 4)), "after").to(CUDA).eval()
    x = torch.randn(8, 6, 7, 5, device=CUDA)
    with torch.no_grad():
        expected = wrap.temporal(wrap.layer(x))  # fp32, not folded
        with torch.autocast("cuda", dtype):
            got = wrap(x)
    assert got.dtype == dtype
    torch.testing.assert_close(got.float(), expected, rtol=0.05, atol=0.05)


@pytest.mark.parametrize("name", ["bninception_gsm", "resnet50_gsf", "mobilenetv2_tsm"])
def test_model_on_cuda_matches_cpu_and_trains_in_mixed_precision(name: str) -> None:
    torch.manual_seed(0)
    model = gateshift.create_model(name, num_classes=5, num_segments=4).eval()
    for _, module in temporal_modules(model):
        if isinstance(module, GateShift | GateShiftFuse):
            nn.init.normal_(module.conv3D.weight, std=0.1)
    gpu = copy.deepcopy(model).to(CUDA).to(memory_format=torch.channels_last)
    clips = torch.randn(2, 4, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(gpu(clips.to(CUDA)).cpu(), model(clips), rtol=1e-3, atol=1e-3)
    gpu.train()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    with torch.autocast("cuda", dtype):
        loss = gpu(clips.to(CUDA)).float().logsumexp(1).mean()
    loss.backward()
    grads = [p.grad for p in gpu.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
