"""``gateshift demo``: the comparison's outputs on a toy budget, and (slow) the real claim."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

import gateshift
from gateshift.data.synthetic import CLASSES
from gateshift.engine import demo
from gateshift.engine.demo import demo_precision, run_demo
from gateshift.engine.tracking import read_metrics

TINY_DATA = {"videos_per_class": 2, "val_per_class": 1, "size": 32, "num_frames": 8}
TINY = {"train.epochs": 1, "train.batch_size": 4, "data.num_workers": 0, "model.width": 8,
        "data.crop_size": 32, "data.resize_size": 32, "eval.batch_size": 8}  # fmt: skip


@pytest.mark.parametrize("jobs", [1, 2])  # one after the other; both at once in two processes
def test_demo_writes_the_comparison(tmp_path: Path, jobs: int) -> None:
    results = run_demo(tmp_path, seed=1, overrides=TINY, data=TINY_DATA, jobs=jobs)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == results and saved["jobs"] == jobs
    for kind in ("gsm", "tsn"):  # each run trained its whole budget
        assert [r["epoch"] for r in read_metrics(tmp_path / kind, "epoch")] == [1]
    for kind in ("gsm", "tsn"):
        assert 0.0 <= saved[kind]["top1"] <= 1.0
        assert saved[kind]["num_videos"] == len(CLASSES)  # one val video per class
        assert set(saved[kind]["per_class"]) == set(CLASSES)
        assert (tmp_path / kind / "bundle").is_dir()
    assert saved["settings"]["train.epochs"] == 1 and saved["data"]["size"] == 32
    # both trained in the demo's precision for this CPU, and the runs' configs say so
    assert saved["settings"]["train.precision"] == demo_precision()
    for kind in ("gsm", "tsn"):
        assert f"precision: {demo_precision()}" in (tmp_path / kind / "config.yaml").read_text()
    with (tmp_path / "per_class.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["class", "gsm_accuracy", "tsn_accuracy"] and len(rows) == 1 + len(CLASSES)
    assert (tmp_path / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    model = gateshift.load_model(tmp_path / "gsm")  # the public API, from the run folder
    assert model.classes == [list(CLASSES)] and not model.training
    clips = torch.rand(2, 8, 3, 32, 32)
    with torch.no_grad():
        fast = model(clips)
        assert fast.shape == (2, len(CLASSES))
        plain = gateshift.load_model(tmp_path / "gsm", channels_last=False)
        torch.testing.assert_close(fast, plain(clips), rtol=1e-4, atol=1e-5)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    assert not plain.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)


def test_demo_precision_is_bf16_only_with_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "cpu_has_amx", lambda: True)
    assert demo_precision() == "bf16" and demo_precision("fp32") == "fp32"
    monkeypatch.setattr(demo, "cpu_has_amx", lambda: False)
    assert demo_precision("auto") == "fp32" and demo_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="'fp16' is not one of auto, fp32, bf16"):
        demo_precision("fp16")


def test_demo_caller_precision_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An explicit train.precision overrides the CPU rule (what --precision passes)."""
    monkeypatch.setattr(demo, "cpu_has_amx", lambda: True)
    results = run_demo(
        tmp_path, overrides={**TINY, "train.precision": "fp32"}, data=TINY_DATA, jobs=1
    )
    assert results["settings"]["train.precision"] == "fp32"
    assert "precision: fp32" in (tmp_path / "gsm" / "config.yaml").read_text()


@pytest.mark.slow
def test_demo_gsm_beats_tsn(tmp_path: Path) -> None:
    """The issue's claim, with the real recipe (about 10 minutes on 2 cores)."""
    results = run_demo(tmp_path)
    assert results["gsm"]["top1"] >= 0.9
    assert results["tsn"]["top1"] <= 0.5
