"""A video -> its views, from the bundle alone, exactly as evaluation prepares it."""

from __future__ import annotations

from pathlib import Path

import torch

from gateshift.config import load_config
from gateshift.data.datasets import BadItem
from gateshift.engine.data import build_split, input_spec
from gateshift.inference.bundle import load_bundle
from gateshift.inference.preprocess import VideoViews
from gateshift.inference.settings import Views

from .helpers import make_run


def test_views_equal_the_evaluation_items(tiny_synthetic: Path, tmp_path: Path) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic)
    bundle = load_bundle(run)
    views = VideoViews(bundle, Views(num_clips=2, num_crops=3))
    cfg = load_config(run / "bundle" / "config.yaml")
    spec = input_spec(cfg, bundle.input_spec)
    data = build_split(cfg, "val", spec, train=False, num_clips=2, num_crops=3)
    for index in (0, 5):
        record = data.annotations.records[index]
        got = views(record.path)
        assert isinstance(got, torch.Tensor) and got.shape == (6, 4, 3, 32, 32)
        item = data.dataset[index]
        assert not isinstance(item, BadItem)
        assert torch.equal(got, item.clips)


def test_unreadable_videos_come_back_as_bad_items(tiny_synthetic: Path, tmp_path: Path) -> None:
    run, _ = make_run(tmp_path, tiny_synthetic)
    views = VideoViews(load_bundle(run), Views())
    missing = views(tmp_path / "nope.mp4")
    assert isinstance(missing, BadItem) and missing.reason == "missing"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 64)
    bad = views(broken)
    assert isinstance(bad, BadItem) and bad.path == str(broken) and bad.reason
