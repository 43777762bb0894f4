"""``bench_pipeline`` and ``gateshift bench data``: what is timed, and bad items."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from gateshift.cli.main import main
from gateshift.data.annotations import load_annotations
from gateshift.data.bench import bench_pipeline
from gateshift.data.readers import VideoFileReader
from gateshift.data.records import VideoInfo, VideoRecord
from gateshift.input_spec import IMAGENET_RGB_224
from tests.data.media import write_video

SPEC = IMAGENET_RGB_224.__class__(**{**IMAGENET_RGB_224.to_dict(), "crop_size": 16})


@pytest.fixture
def videos(tmp_path: Path) -> Path:
    for name, frames in (("a/one.mp4", 20), ("b/two.mkv", 12), ("b/three.webm", 16)):
        (tmp_path / "train" / name).parent.mkdir(parents=True, exist_ok=True)
        write_video(tmp_path / "train" / name, frames)
    return tmp_path


class SlowReader:
    """Reads like VideoFileReader, 20 ms slower per clip."""

    def __init__(self) -> None:
        self.reader, self.calls = VideoFileReader(threads=1), 0

    def probe(self, record: VideoRecord) -> VideoInfo:
        return self.reader.probe(record)

    def read(self, record: VideoRecord, indices: Sequence[int]) -> torch.Tensor:
        self.calls += 1
        time.sleep(0.02)
        return self.reader.read(record, indices)


def test_bench_times_every_clip_and_splits_read_from_transform(videos: Path) -> None:
    dataset = load_annotations("folder", videos, "train")
    reader = SlowReader()
    result = bench_pipeline(dataset, SPEC, clips=7, warmup=2, reader=reader, progress=False)
    assert reader.calls == 9  # warm-up clips are read too, but not timed
    assert result.clips == 7 and result.bad == 0 and result.segments == 8 and result.size == 16
    assert result.read_ms is not None and result.transform_ms is not None
    assert result.read_ms >= 20  # the sleep is inside the read share
    assert result.clips_per_s <= 1000 / 20
    per_clip_ms = 1000 / result.clips_per_s
    assert result.read_ms + result.transform_ms <= per_clip_ms * 1.001
    assert result.clips_per_s == pytest.approx(7 / result.seconds)


def test_bench_counts_bad_items_and_refuses_an_unreadable_split(videos: Path) -> None:
    (videos / "train/a/junk.mp4").write_bytes(b"\0" * 4096)
    dataset = load_annotations("folder", videos, "train")
    result = bench_pipeline(dataset, SPEC, clips=8, warmup=0, progress=False)
    assert result.bad == 2  # 8 clips over 4 items: the junk file comes up twice
    assert result.clips_per_s == pytest.approx(6 / result.seconds)
    for path in (videos / "train").rglob("*.*"):
        if path.name != "junk.mp4":
            path.unlink()
    only_bad = load_annotations("folder", videos, "train")
    with pytest.raises(ValueError, match="no readable item"):
        bench_pipeline(only_bad, SPEC, clips=3, warmup=0, progress=False)


def test_bench_with_workers(videos: Path) -> None:
    dataset = load_annotations("folder", videos, "train")
    result = bench_pipeline(dataset, SPEC, clips=4, warmup=1, workers=1, progress=False)
    assert result.clips == 4 and result.workers == 1
    assert result.read_ms is None and result.transform_ms is None  # unknown across processes


def test_cli_bench_data(videos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "data", str(videos), "--size", "16", "--clips", "5", "--warmup", "1"]
    assert main([*argv, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["clips_per_s"] > 0 and out["clips"] == 5 and out["segments"] == 8
    assert main([*argv, "--segments", "4", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "clips/s (5 clips of 4 frames at 16 px" in text and "read" in text
    assert main(["bench", "data", str(videos / "missing")]) == 2
    assert main([*argv, "--segments", "0"]) == 2
