"""The inference bundle: written as training writes it, read back into a ready model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import gateshift
from gateshift.inference.bundle import bundle_dir, load_bundle, load_bundle_config, load_model
from gateshift.inference.settings import Views

from .helpers import make_run

CL = torch.channels_last


def _convs(model: torch.nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


def test_load_model_is_ready_eval_channels_last_and_gives_the_saved_outputs(
    tiny_synthetic: Path, tmp_path: Path
) -> None:
    run, saved = make_run(tmp_path, tiny_synthetic)
    model = load_model(run)
    assert not model.training and all(not m.training for m in model.modules())
    assert all(w.is_contiguous(memory_format=CL) for w in _convs(model))
    assert not model.backbone.conv1.weight.is_contiguous()  # 7x7: really channels_last
    assert len(model.classes[0]) == 11 and model.classes[0][0] == "appearing"
    clips = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        expected = saved(clips)
        torch.testing.assert_close(model(clips), expected, rtol=1e-4, atol=1e-5)
        plain = gateshift.load_model(run, channels_last=False)  # the public API: same thing
        assert all(w.is_contiguous() for w in _convs(plain)) and not plain.training
        torch.testing.assert_close(plain(clips), expected, rtol=1e-5, atol=1e-6)


def test_bundle_carries_views_sampling_spec_and_config(
    tiny_synthetic: Path, tmp_path: Path
) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic, ["eval.num_clips=2", "eval.num_crops=3"])
    bundle = load_bundle(run / "bundle", channels_last=False)  # the bundle folder works too
    assert bundle.folder == run / "bundle" == bundle_dir(run)
    assert bundle.views == Views(num_clips=2, num_crops=3)
    assert bundle.sampling["num_segments"] == 4 and bundle.input_spec.crop_size == 32
    cfg = load_bundle_config(run, ["eval.num_clips=5"])
    assert (cfg.eval.num_clips, cfg.eval.num_crops, cfg.model.width) == (5, 3, 8)


def test_missing_or_broken_bundles_are_named(tiny_synthetic: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no inference bundle in"):
        bundle_dir(tmp_path)
    run, _ = make_run(tmp_path, tiny_synthetic)
    index = json.loads((run / "bundle" / "bundle.json").read_text())
    del index["num_classes"]
    (run / "bundle" / "bundle.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"bundle\.json is not a valid bundle index"):
        load_bundle(run)


def _batchnorms(model: torch.nn.Module) -> int:
    return sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())


def test_fold_loads_the_model_with_its_batch_norms_folded_and_the_same_outputs(
    tiny_synthetic: Path, tmp_path: Path
) -> None:
    run, saved = make_run(tmp_path, tiny_synthetic)
    folded = load_bundle(run, fold=True).model
    assert 0 < _batchnorms(folded) < _batchnorms(saved)  # the GSM-adjacent ones stay
    clips = torch.rand(2, 4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(folded(clips), saved(clips), rtol=1e-4, atol=1e-5)
    from gateshift.deploy.predict import _torch_backend

    network, _, _ = _torch_backend(run, (), "cpu")
    assert _batchnorms(network.model) == _batchnorms(folded)  # type: ignore[attr-defined]


def test_a_refused_fold_loads_the_model_unfolded_with_a_warning(
    tiny_synthetic: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from gateshift.inference import fold

    run, saved = make_run(tmp_path, tiny_synthetic)
    monkeypatch.setattr(fold, "TOLERANCE", -1.0)
    with caplog.at_level("WARNING"):
        model = load_bundle(run, fold=True).model
    assert _batchnorms(model) == _batchnorms(saved)
    assert "left unfolded" in caplog.text and str(run) in caplog.text
