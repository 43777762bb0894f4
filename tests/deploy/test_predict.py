"""`gateshift predict`: the bundle's views and precision, which --clips/--crops/--precision set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

from gateshift.cli._options import view_overrides
from gateshift.cli.main import build_parser, main
from gateshift.deploy import predict as predict_module
from gateshift.deploy.predict import predict
from gateshift.inference.bundle import load_bundle
from gateshift.inference.network import TorchNetwork
from gateshift.inference.preprocess import VideoViews
from gateshift.inference.scoring import score_views, top_classes
from gateshift.inference.settings import Views

from ..inference.helpers import make_run


def _video(root: Path) -> Path:
    return next((root / "val" / "moving_left").glob("*.mp4"))


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """Shapes of the views predict scores."""
    shapes: list[tuple[int, ...]] = []

    def spy(network: TorchNetwork, clips: Tensor) -> Tensor:
        shapes.append(tuple(clips.shape))
        return score_views(network, clips)

    monkeypatch.setattr(predict_module, "score_views", spy)
    return shapes


def test_flags_are_the_eval_keys() -> None:
    args = build_parser().parse_args(["predict", "r", "v", "--clips", "2", "--precision", "bf16"])
    assert view_overrides(args) == ["eval.num_clips=2", "eval.precision=bf16"]
    args = build_parser().parse_args(["evaluate", "r", "--crops", "3"])
    assert view_overrides(args) == ["eval.num_crops=3"]


def test_clips_and_crops_flags_set_the_views(
    tiny_synthetic: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic)
    shapes = _spy(monkeypatch)
    video = _video(tiny_synthetic)
    assert main(["predict", str(run), str(video), "--clips", "2", "--crops", "3", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)[0]
    assert shapes == [(1, 6, 4, 3, 32, 32)]  # 2 clips x 3 crops of 4 frames at 32 px
    bundle = load_bundle(run)  # the same computation by hand, from the inference layer
    clips = VideoViews(bundle, Views(num_clips=2, num_crops=3))(video)
    assert isinstance(clips, Tensor)
    logits = score_views(TorchNetwork(bundle.model, torch.device("cpu")), clips[None])[0]
    expected = top_classes(logits, bundle.classes, 5)
    assert [[n, i] for n, i, _ in expected[0]] == [[n, i] for n, i, _ in got["top"][0]]
    for (_, _, p), (_, _, q) in zip(expected[0], got["top"][0], strict=True):
        assert q == pytest.approx(p, rel=1e-5, abs=1e-7)


def test_default_views_and_precision_are_the_runs(
    tiny_synthetic: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic, ["eval.num_clips=2", "train.precision=fp16"])
    shapes = _spy(monkeypatch)
    video = str(_video(tiny_synthetic))
    assert main(["predict", run.as_posix(), video]) == 2  # follows train.precision: fp16, no GPU
    assert "train.precision=fp16 needs a GPU" in capsys.readouterr().err
    assert main(["predict", run.as_posix(), video, "--precision", "fp16"]) == 2
    assert "eval.precision=fp16 needs a GPU" in capsys.readouterr().err
    assert shapes == []  # both refused before any scoring
    assert main(["predict", run.as_posix(), video, "--precision", "fp32"]) == 0
    assert shapes == [(1, 2, 4, 3, 32, 32)]  # the run's eval.num_clips=2
    (result,) = predict(run, [video], precision="bf16", num_crops=3)  # the same keys in Python
    assert shapes[-1] == (1, 6, 4, 3, 32, 32) and len(result.top[0]) == 5


def test_unreadable_videos_are_reported(
    tiny_synthetic: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    missing = tmp_path / "missing.mp4"
    assert main(["predict", str(run), str(missing), str(broken)]) == 1  # nothing was read
    out = capsys.readouterr().out
    assert f"{missing}: cannot read (missing)" in out and f"{broken}: cannot read (" in out
    results = predict(run, [missing, _video(tiny_synthetic)], top_k=2)
    assert results[0].error == "missing" and results[1].error is None
    assert len(results[1].top[0]) == 2
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        predict(run, [missing], top_k=0)


def test_predict_and_evaluate_take_the_runs_memory_format(
    tiny_synthetic: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateshift.engine import evaluate as evaluate_module

    run, _ = make_run(tmp_path, tiny_synthetic, ["train.channels_last=false"])
    seen: list[bool] = []

    def spy(path: object, **kw: object) -> object:
        seen.append(bool(kw["channels_last"]))
        return load_bundle(path, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(predict_module, "load_bundle", spy)
    monkeypatch.setattr(evaluate_module, "load_bundle", spy)
    predict(run, [_video(tiny_synthetic)])
    evaluate_module.evaluate_run(run)
    assert seen == [False, False]  # both follow train.channels_last of the run
