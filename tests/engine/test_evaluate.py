"""`gateshift evaluate`: --clips/--crops/--precision are the eval.* keys of the run's config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gateshift.cli.main import main

from ..inference.helpers import make_run


def test_clips_flag_is_the_eval_num_clips_key(
    tiny_synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic)
    flag, key = tmp_path / "flag.json", tmp_path / "key.json"
    f_npz, k_npz = tmp_path / "f.npz", tmp_path / "k.npz"
    args = ["evaluate", str(run)]
    cpu = ["--device", "cpu"]
    assert (
        main([*args, *cpu, "--clips", "2", "--json", str(flag), "--save-scores", str(f_npz)]) == 0
    )
    assert "11 videos, 2 clip(s) x 1 crop(s)" in capsys.readouterr().out
    metrics = json.loads(flag.read_text())
    assert (metrics["num_clips"], metrics["num_crops"], metrics["num_videos"]) == (2, 1, 11)
    assert (run / "eval" / "val_2x1" / "metrics.json").is_file()
    assert (
        main([*args, "eval.num_clips=2", *cpu, "--json", str(key), "--save-scores", str(k_npz)])
        == 0
    )
    assert json.loads(key.read_text()) == metrics  # one code path, the same result
    with np.load(f_npz) as f, np.load(k_npz) as k:
        np.testing.assert_array_equal(f["scores"], k["scores"])
    one = tmp_path / "one.json"
    assert main([*args, "eval.num_clips=3", *cpu, "--clips", "1", "--json", str(one)]) == 0
    assert json.loads(one.read_text())["num_clips"] == 1  # the flag comes last and wins


def test_precision_defaults_to_the_runs_train_precision(
    tiny_synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic, ["train.precision=fp16"])
    assert main(["evaluate", str(run), "--device", "cpu"]) == 2
    assert "train.precision=fp16 needs a GPU" in capsys.readouterr().err
    assert main(["evaluate", str(run), "eval.precision=fp16", "--device", "cpu"]) == 2
    assert "eval.precision=fp16 needs a GPU" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--device", "cpu", "--precision", "bf16"]) == 0
    assert json.loads((run / "eval" / "val_1x1" / "metrics.json").read_text())["num_videos"] == 11
