"""Precision: the resolution table, the autocast context, and where the setting comes from."""

from __future__ import annotations

import pytest
import torch

from gateshift.config import load_config
from gateshift.inference import precision
from gateshift.inference.precision import autocast, resolve_precision
from gateshift.inference.settings import (
    InferenceSettings,
    Views,
    eval_overrides,
    inference_settings,
)

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda", 0), torch.device("mps")


@pytest.mark.parametrize(
    ("setting", "device", "expected"),
    [
        ("auto", CPU, None),
        ("auto", MPS, None),
        ("fp32", CPU, None),
        ("fp32", CUDA, None),
        ("bf16", CPU, torch.bfloat16),
        ("fp16", CUDA, torch.float16),
    ],
)
def test_resolution_table(setting: str, device: torch.device, expected: torch.dtype | None) -> None:
    assert resolve_precision(setting, device) is expected


@pytest.mark.parametrize(("has_bf16", "expected"), [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_on_a_gpu_prefers_bf16(
    has_bf16: bool, expected: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: has_bf16)
    assert resolve_precision("auto", CUDA) is expected
    if not has_bf16:
        with pytest.raises(ValueError, match=r"eval\.precision=bf16: this GPU has no bf16"):
            resolve_precision("bf16", CUDA, what="eval.precision")


@pytest.mark.parametrize("native", [True, False])
def test_bf16_on_a_cpu_without_bf16_kernels_warns_and_still_resolves(
    native: bool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16_kernels", lambda: native)
    with caplog.at_level("WARNING", logger="gateshift.inference.precision"):
        assert resolve_precision("bf16", CPU, what="eval.precision") is torch.bfloat16
    warned = [r.getMessage() for r in caplog.records]
    if native:
        assert warned == []
    else:
        assert len(warned) == 1 and warned[0].startswith("eval.precision=bf16: this CPU has no")


def test_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match=r"^eval\.precision=fp16 needs a GPU; use bf16"):
        resolve_precision("fp16", CPU, what="eval.precision")
    with pytest.raises(ValueError, match=r"^train\.precision: unknown value 'fp8'"):
        resolve_precision("fp8", CPU)


def test_autocast_context() -> None:
    with autocast(CPU, None):
        assert not torch.is_autocast_enabled("cpu")
    with autocast(CPU, torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def _settings(*overrides: str) -> InferenceSettings:
    return inference_settings(load_config(None, ["data.root=/data", *overrides]))


def test_eval_precision_defaults_to_train_precision() -> None:
    default = _settings()
    assert (default.precision, default.precision_key) == ("auto", "train.precision")
    assert default.views == Views(num_clips=1, num_crops=1) and default.views.count == 1
    trained = _settings("train.precision=fp16")
    with pytest.raises(ValueError, match=r"^train\.precision=fp16 needs a GPU"):
        trained.dtype(CPU)
    chosen = _settings("train.precision=fp16", "eval.precision=bf16")
    assert (chosen.precision, chosen.precision_key) == ("bf16", "eval.precision")
    assert chosen.dtype(CPU) is torch.bfloat16
    with pytest.raises(ValueError, match=r"^eval\.precision=fp16 needs a GPU"):
        _settings("eval.precision=fp16").dtype(CPU)


def test_options_are_the_eval_keys() -> None:
    assert eval_overrides() == []
    keys = eval_overrides(num_clips=2, num_crops=3, precision="bf16")
    assert keys == ["eval.num_clips=2", "eval.num_crops=3", "eval.precision=bf16"]
    settings = _settings(*keys)
    assert settings.views == Views(num_clips=2, num_crops=3) and settings.views.count == 6
    assert settings.precision == "bf16"
