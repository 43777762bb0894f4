"""``train.compile`` and ``--compile`` of evaluate and predict, end to end on a tiny run.

The ``aot_eager`` backend (``GATESHIFT_COMPILE_BACKEND``) captures the same graphs as inductor
without generating code, which on a 2-core CPU takes about a minute per model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch._dynamo
from safetensors.torch import load_file

from gateshift.cli.main import main
from gateshift.inference.compiled import BACKEND_VARIABLE

from .helpers import final_weights, write_config


@pytest.fixture(autouse=True)
def _cheap_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKEND_VARIABLE, "aot_eager")
    torch._dynamo.reset()  # no recompile limit reached by earlier tests' graphs


def test_compiled_training_saves_the_plain_modules_keys_and_resumes(
    tiny_synthetic: Path, tmp_path: Path
) -> None:
    config, eager = write_config(tmp_path, tiny_synthetic, "eager")
    assert main(["train", str(config), "train.epochs=1"]) == 0
    config, run = write_config(tmp_path, tiny_synthetic, "compiled")
    assert main(["train", str(config), "train.epochs=1", "train.compile=true"]) == 0
    assert "compiling the training forward with torch.compile" in (run / "train.log").read_text()
    plain, compiled = final_weights(eager), final_weights(run)
    assert list(compiled) == list(plain)  # no "_orig_mod." prefixes
    for name in ("best.pt", "epoch_001.pt"):  # best.pt: validated after the epoch
        saved = torch.load(run / "checkpoints" / name, weights_only=True)["model"]
        assert list(saved) == list(plain)
    assert set(load_file(run / "bundle" / "model.safetensors")) == set(
        load_file(eager / "bundle" / "model.safetensors")
    )
    for key, value in plain.items():  # the same training, up to float rounding
        torch.testing.assert_close(compiled[key], value, rtol=1e-3, atol=1e-4, msg=key)
    # and a compiled run resumes from its own checkpoint
    assert (
        main(["train", str(config), "train.epochs=2", "train.max_steps=6", "train.compile=1"]) == 0
    )
    steps = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in steps if x["kind"] == "train"][-1] == 6


@pytest.fixture(scope="module")
def tiny_run(tiny_synthetic: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("compile_run")
    config, run = write_config(tmp, tiny_synthetic)
    assert main(["train", str(config), "train.max_steps=2"]) == 0
    return run


def test_evaluate_with_compile_gives_the_same_metrics(tiny_run: Path, tmp_path: Path) -> None:
    plain, compiled = tmp_path / "plain.json", tmp_path / "compiled.json"
    assert main(["evaluate", str(tiny_run), "--json", str(plain)]) == 0
    assert main(["evaluate", str(tiny_run), "--compile", "--json", str(compiled)]) == 0
    assert json.loads(compiled.read_text()) == json.loads(plain.read_text())


def test_predict_with_compile_gives_the_same_classes(
    tiny_run: Path, tiny_synthetic: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = next((tiny_synthetic / "val" / "moving_left").glob("*.mp4"))
    args = ["predict", str(tiny_run), str(video), "--top-k", "3", "--json"]
    capsys.readouterr()
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)[0]["top"][0]
    assert main([*args, "--compile"]) == 0
    compiled = json.loads(capsys.readouterr().out)[0]["top"][0]
    assert [c[:2] for c in compiled] == [c[:2] for c in plain]
    for (_, _, p), (_, _, q) in zip(compiled, plain, strict=True):
        assert abs(p - q) < 1e-5


def test_compile_needs_the_torch_backend(
    tiny_run: Path, tiny_synthetic: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = next((tiny_synthetic / "val" / "moving_left").glob("*.mp4"))
    assert main(["predict", str(tiny_run), str(video), "--compile", "--backend", "openvino"]) == 2
    assert "--compile (torch.compile) needs --backend torch" in capsys.readouterr().err
    assert main(["evaluate", str(tiny_run), "--compile", "--backend", "onnxruntime"]) == 2
    assert "backend onnxruntime runs an exported file" in capsys.readouterr().err
