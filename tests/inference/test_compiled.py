"""``torch.compile``: GSM, GSF and TSM models compile to one graph (the ``aot_eager`` backend:
dynamo's capture and AOT autograd, no code generation) and compute what eager PyTorch does."""

from __future__ import annotations

import copy

import pytest
import torch
import torch._dynamo
from torch import Tensor, nn

import gateshift
from gateshift.inference.compiled import (
    BACKEND_VARIABLE,
    check_compilable,
    compile_backend,
    compile_model,
)
from gateshift.models.temporal import GateShift, GateShiftFuse
from gateshift.models.temporal._time import tracing
from gateshift.models.temporal.insert import temporal_modules

SEGMENTS = 4
#: GSF's default 25 % of 8 channels cannot be split in interleaved halves: width 16 for it
MODELS = {"resnet18_gsm": 8, "resnet18_gsf": 16, "resnet18_tsm": 8}


def small_model(name: str) -> nn.Module:
    """A small model whose gates are open: random weights everywhere (GSM's gate starts at
    zero, which would make it a fixed permutation whatever path computes it)."""
    torch.manual_seed(0)
    model = gateshift.create_model(
        name, num_classes=5, num_segments=SEGMENTS, width=MODELS[name], dropout=0.0
    )
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def clips() -> Tensor:
    return torch.randn(2, SEGMENTS, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def strict_compile(model: nn.Module) -> nn.Module:
    torch._dynamo.reset()
    return torch.compile(model, backend="aot_eager", fullgraph=True)


@pytest.mark.parametrize("name", list(MODELS))
def test_eval_logits_match_eager_in_one_graph(name: str) -> None:
    model = small_model(name).eval()
    x = clips()
    with torch.no_grad():
        compiled = strict_compile(model)(x)  # fullgraph: a graph break raises
        # compiled, the fast paths' caches (folded weights, native plans) stay empty
        caches = [
            getattr(module, cache)
            for _, module in temporal_modules(model)
            for cache in ("_folded", "_plan")
            if hasattr(module, cache)
        ]
        assert [c._entry for c in caches] == [None] * len(caches)
        eager = model(x)  # GSM/GSF: the native or eager fast path
    if name == "resnet18_gsm":  # which fills the folded convolution's weights
        assert all(c._entry is not None for c in caches[::2])
    assert compiled.shape == (2, 5)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_training_logits_gradients_and_statistics_match_eager() -> None:
    """GSM in training: eager runs the shift's custom autograd function, compiled the plain ops;
    same logits, the same gradient for every parameter and the same BatchNorm statistics."""
    model = small_model("resnet18_gsm").train()
    twin = copy.deepcopy(model)
    x = clips()
    eager = twin(x)
    eager.square().sum().backward()
    out = strict_compile(model)(x)
    out.square().sum().backward()
    torch.testing.assert_close(out, eager, rtol=1e-4, atol=1e-5)
    params = dict(twin.named_parameters())
    for key, p in model.named_parameters():
        reference = params[key].grad
        assert p.grad is not None and reference is not None, key
        # float rounding of other sum orders only: within 1e-3 of the gradient's largest entry
        scale = float(reference.abs().max())
        assert float((p.grad - reference).abs().max()) <= 1e-3 * scale + 1e-7, key
    buffers = dict(twin.named_buffers())
    gsm = [m for _, m in temporal_modules(model) if isinstance(m, GateShift)]
    assert gsm and all(m._folded._entry is None for m in gsm)
    for key, b in model.named_buffers():
        if key.endswith("running_mean"):  # the training forward updated them alike
            torch.testing.assert_close(b, buffers[key], rtol=1e-4, atol=1e-6, msg=key)


def test_tracing_is_true_inside_a_compiled_function_only() -> None:
    def which(x: Tensor) -> Tensor:
        return x + 1 if tracing() else x - 1

    torch._dynamo.reset()
    compiled = torch.compile(which, backend="eager", fullgraph=True)
    assert compiled(torch.zeros(2)).tolist() == [1.0, 1.0]
    assert which(torch.zeros(2)).tolist() == [-1.0, -1.0]


def test_compile_model_wraps_and_leaves_the_module_alone(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(BACKEND_VARIABLE, "aot_eager")
    model = small_model("resnet18_gsf").eval()
    keys = list(model.state_dict())
    with caplog.at_level("INFO", logger="gateshift"):
        compiled = compile_model(model, what="evaluation")
    assert "compiling the evaluation with torch.compile (backend aot_eager)" in caplog.text
    assert compiled is not model and list(model.state_dict()) == keys  # no _orig_mod. prefix
    assert any(isinstance(m, GateShiftFuse) for m in model.modules())
    torch._dynamo.reset()
    with torch.inference_mode():
        torch.testing.assert_close(compiled(clips()), model(clips()), rtol=1e-4, atol=1e-5)


def test_the_backend_defaults_to_inductor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BACKEND_VARIABLE, raising=False)
    assert compile_backend() == "inductor"
    monkeypatch.setenv(BACKEND_VARIABLE, " aot_eager ")
    assert compile_backend() == "aot_eager"


def test_only_the_torch_backend_compiles() -> None:
    check_compilable("torch")
    with pytest.raises(ValueError, match=r"--compile .* needs --backend torch; backend openvino"):
        check_compilable("openvino")
