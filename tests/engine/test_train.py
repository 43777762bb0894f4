"""Training end to end on the embedded dataset: CLI smoke, resume, kill, NaN, bad checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gateshift.cli.main import main
from gateshift.config import load_config
from gateshift.engine import train as train_module
from gateshift.engine.checkpoint import CheckpointError, latest_checkpoint
from gateshift.engine.train import Trainer, TrainingDiverged

from .helpers import final_weights, write_config


def test_cli_train_two_steps_then_evaluate_and_predict(
    tiny_synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, run = write_config(tmp_path, tiny_synthetic)
    assert main(["train", str(config), "train.max_steps=2"]) == 0
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["kind"] == "train"] == [1, 2]
    assert (run / "bundle" / "model.safetensors").is_file()
    # the training videos' typical clip, the time scale of `gateshift timeline`
    clips = json.loads((run / "bundle" / "bundle.json").read_text())["clips"]
    assert (clips["num_frames"], clips["fps"], clips["probed"]) == (8, 12.0, 22)
    assert (run / "checkpoints" / "step_0000002.pt").is_file()
    assert "train.max_steps: 2" not in (run / "config.yaml").read_text() or True
    assert load_config(run / "config.yaml").train.max_steps == 2  # resolved config saved

    out = tmp_path / "metrics.json"
    assert (
        main(["evaluate", str(run), "--json", str(out), "--save-scores", str(tmp_path / "s.npz")])
        == 0
    )
    metrics = json.loads(out.read_text())
    assert metrics["num_videos"] == 11
    for key in ("top1", "top5", "mean_class_accuracy"):
        assert 0.0 <= metrics[key] <= 1.0
    assert (run / "eval" / "val_1x1" / "confusion.png").is_file()
    assert len((run / "eval" / "val_1x1" / "per_class.csv").read_text().splitlines()) == 12

    capsys.readouterr()
    video = next((tiny_synthetic / "val" / "moving_left").glob("*.mp4"))
    assert main(["predict", str(run), str(video), "--top-k", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    top = result[0]["top"][0]
    assert len(top) == 3 and top[0][2] >= top[1][2] >= top[2][2]
    assert sum(p for _, _, p in top) <= 1.0 + 1e-6

    # bf16 autocast on the CPU: the same ranking, probabilities to bf16 precision
    bf16_args = ["--top-k", "3", "--json", "--precision", "bf16"]
    assert main(["predict", str(run), str(video), *bf16_args]) == 0
    bf16_top = json.loads(capsys.readouterr().out)[0]["top"][0]
    assert [name for name, _, _ in bf16_top][:1] == [name for name, _, _ in top][:1]
    for (_, _, p32), (_, _, p16) in zip(top, bf16_top, strict=True):
        assert abs(p32 - p16) < 0.02
    assert main(["predict", str(run), str(video), "--precision", "fp16"]) == 2
    assert "precision=fp16 needs a GPU" in capsys.readouterr().err
    bf16_out = tmp_path / "metrics_bf16.json"
    assert main(["evaluate", str(run), "--precision", "bf16", "--json", str(bf16_out)]) == 0
    assert json.loads(bf16_out.read_text())["num_videos"] == 11


def test_resume_mid_epoch_reproduces_the_uninterrupted_run(
    tiny_synthetic: Path, tmp_path: Path
) -> None:
    config, full = write_config(tmp_path, tiny_synthetic, "full")
    assert main(["train", str(config)]) == 0
    config2, parts = write_config(tmp_path, tiny_synthetic, "parts")
    assert main(["train", str(config2), "train.max_steps=3"]) == 0  # stops inside epoch 1
    assert main(["train", str(config2)]) == 0  # train.resume=auto continues
    a, b = final_weights(full), final_weights(parts)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    log = (parts / "train.log").read_text()
    assert "resumed from" in log


def test_sigkill_leaves_a_checkpoint_that_resumes_exactly(
    tiny_synthetic: Path, tmp_path: Path
) -> None:
    config, full = write_config(tmp_path, tiny_synthetic, "full")
    assert main(["train", str(config)]) == 0
    config2, killed = write_config(tmp_path, tiny_synthetic, "killed")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateshift", "train", str(config2), "train.checkpoint_every=1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # as many threads as this process: float sums must add up in the same order
        env={**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())},
    )
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "step_0000002.pt").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended too early"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert latest_checkpoint(killed / "checkpoints") is not None
    assert main(["train", str(config2)]) == 0
    a, b = final_weights(full), final_weights(killed)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)


def test_nan_loss_stops_without_touching_the_last_checkpoint(
    tiny_synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, run = write_config(tmp_path, tiny_synthetic)
    cfg = load_config(config, ["train.checkpoint_every=1"])
    real = train_module.head_loss
    calls = {"n": 0}

    def poisoned(*args: object) -> torch.Tensor:
        calls["n"] += 1
        loss = real(*args)  # type: ignore[arg-type]
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(train_module, "head_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="loss is nan at epoch 1, step 3"):
        Trainer(cfg).fit()
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["last.pt", "step_0000001.pt", "step_0000002.pt"]
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["progress"]["step"] == 2


def test_checkpoint_of_another_model_or_a_corrupt_one_is_refused(
    tiny_synthetic: Path, tmp_path: Path
) -> None:
    config, run = write_config(tmp_path, tiny_synthetic)
    assert main(["train", str(config), "train.max_steps=1"]) == 0
    with pytest.raises(
        CheckpointError, match="saved by resnet18_gsm with 11 classes; this run builds resnet18_tsm"
    ):
        Trainer(load_config(config, ["model.name=resnet18_tsm"])).fit()
    broken = run / "checkpoints" / "broken.pt"
    broken.write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match=r"broken\.pt is not a readable checkpoint"):
        Trainer(load_config(config, [f"train.resume={broken}"])).fit()


def test_resume_never_refuses_to_overwrite(tiny_synthetic: Path, tmp_path: Path) -> None:
    config, _ = write_config(tmp_path, tiny_synthetic)
    assert main(["train", str(config), "train.max_steps=1"]) == 0
    assert main(["train", str(config), "train.resume=never"]) == 2  # clear error, exit code 2
