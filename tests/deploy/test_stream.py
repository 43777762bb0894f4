"""`gateshift stream`: the frame stride from the bundle, outputs per fed frame, files ending
cleanly, network sources reconnecting with back-off, and the errors a user meets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from gateshift.cli.main import main
from gateshift.data.synthetic import write_mp4
from gateshift.deploy import live_source
from gateshift.deploy.live_source import LiveSource, SourceError
from gateshift.deploy.stream_run import FramePicker, training_stride
from gateshift.inference.bundle import load_bundle, load_bundle_config

from ..inference.helpers import make_run

CLIPS = {"num_frames": 12, "duration_s": 1.0, "fps": 12.0, "probed": 22}  # 1 s training videos


def _with_clips(folder: Path) -> Path:
    index = json.loads((folder / "bundle" / "bundle.json").read_text())
    index["clips"] = CLIPS
    (folder / "bundle" / "bundle.json").write_text(json.dumps(index))
    return folder


@pytest.fixture(scope="module")
def causal_run(tiny_synthetic: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder, _ = make_run(tmp_path_factory.mktemp("runs"), tiny_synthetic, ["model.causal=true"])
    return _with_clips(folder)


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s at 12 fps (36 frames), 32x32."""
    frames = np.random.default_rng(0).integers(0, 255, (36, 32, 32, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_mp4(path, frames)
    return path


def test_stride_is_a_training_clip_cut_into_num_segments(causal_run: Path) -> None:
    bundle, cfg = load_bundle(causal_run), load_bundle_config(causal_run)
    stride, origin = training_stride(bundle, cfg, 30.0)
    assert stride == pytest.approx(1.0 / 4)  # 1 s videos, 4 segments
    assert "4 segments" in origin
    bundle.sampling = {**bundle.sampling, "mode": "dense", "frame_interval": 3}
    assert training_stride(bundle, cfg, 30.0)[0] == pytest.approx(3 / 12.0)  # training fps


def test_picker_feeds_one_frame_per_stride() -> None:
    pick = FramePicker(0.25)
    fed = [n for n in range(36) if pick(n / 12)]
    assert fed == list(range(0, 36, 3))
    late = FramePicker(0.25)
    assert [late(t) for t in (0.0, 0.1, 2.0, 2.1, 2.25)] == [True, False, True, False, True]


def test_file_streams_to_jsonl_and_ends_at_its_end(
    causal_run: Path, video: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "live.jsonl"
    rc = main(["stream", str(causal_run), "--source", str(video), "--jsonl", str(out),
               "--smooth", "1", "--top-k", "2"])  # fmt: skip
    assert rc == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(1, 13))  # 36 frames, one fed in 3
    assert [r["time"] for r in lines] == pytest.approx([n * 0.25 for n in range(12)])
    assert all(len(r["top"]) == 2 and r["top"][0][1] >= r["top"][1][1] for r in lines)
    err = capsys.readouterr().err
    assert "36 frames read, 12 fed" in err and "frames/s" in err
    rc = main(["stream", str(causal_run), "--source", str(video), "--jsonl", "--every", "4"])
    assert rc == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["frame"] for r in printed] == [4, 8, 12]


def test_offline_runs_and_unopenable_sources_are_one_line(
    tiny_synthetic: Path, causal_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    offline, _ = make_run(tmp_path, tiny_synthetic, name="offline")
    assert main(["stream", str(_with_clips(offline)), "--source", "x.mp4"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "model.causal=true" in err
    assert main(["stream", str(causal_run), "--source", str(tmp_path / "none.mp4")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot open" in err and "none.mp4" in err


class _Container:
    """A fake PyAV container: ``frames`` frames at 10 fps, then ``end`` (None: end of stream)."""

    def __init__(self, frames: int, start: int, end: Exception | None) -> None:
        video = SimpleNamespace(average_rate=Fraction(10), guessed_rate=None, thread_type=None)
        self.streams = SimpleNamespace(video=[video])
        self.frames, self.start, self.end = frames, start, end

    def decode(self, stream: Any) -> Iterator[Any]:
        for n in range(self.frames):
            pixels = np.full((4, 4, 3), self.start + n, np.uint8)
            yield SimpleNamespace(time=(self.start + n) / 10, to_ndarray=lambda format, p=pixels: p)
        if self.end is not None:
            raise self.end

    def close(self) -> None:
        pass


def test_network_sources_reconnect_with_growing_back_off(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[_Container | Exception] = [
        _Container(3, 0, OSError("connection reset")),  # drops after 3 frames
        SourceError("cannot open rtsp://cam: refused"),  # first retry fails
        _Container(2, 100, None),  # the live stream "ends": a drop too
    ] + [SourceError("cannot open rtsp://cam: refused")] * 5

    def fake_open(source: str, kind: str, timeout_s: float) -> _Container:
        item = opened.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    monkeypatch.setattr(live_source, "_open", fake_open)
    sleeps: list[float] = []
    resets: list[int] = []
    live = LiveSource("rtsp://cam", retries=3, sleep=sleeps.append,
                      on_reconnect=lambda: resets.append(1))  # fmt: skip
    got: list[tuple[float, int]] = []
    with pytest.raises(SourceError, match="gave up after 3"):
        for t, rgb in live:
            got.append((t, int(rgb[0, 0, 0])))
    assert [v for _, v in got] == [0, 1, 2, 100, 101]
    times = [t for t, _ in got]
    assert times == sorted(times) and times[3] >= times[2]  # time runs on across the gap
    assert sleeps == [1.0, 2.0, 1.0, 2.0, 4.0]  # doubling, reset by a connection with frames
    assert live.reconnects == 1 and resets == [1]  # one reopening delivered


def test_a_file_read_error_is_not_retried(monkeypatch: pytest.MonkeyPatch, video: Path) -> None:
    live = LiveSource(str(video), sleep=lambda s: pytest.fail("a file is never retried"))
    frames = [t for t, _ in live]
    assert len(frames) == 36 and frames[-1] == pytest.approx(35 / 12)
    monkeypatch.setattr(live_source, "_open", lambda *a: _Container(2, 0, OSError("gone")))
    with pytest.raises(SourceError, match="read failed"):
        list(LiveSource("/dev/video7"))
    assert torch.is_tensor(next(iter(LiveSource(str(video))))[1])


def test_block_ends_are_the_offline_causal_clip_scores(
    tiny_synthetic: Path, video: Path, tmp_path: Path
) -> None:
    from gateshift.data.transforms import build_eval_transform
    from gateshift.deploy.stream_run import stream
    from gateshift.inference.scoring import top_classes

    # TSM: its shift mixes frames whatever the weights (a new GSM's gates are closed)
    overrides = ["model.causal=true", "model.name=resnet18_tsm"]
    causal_run = _with_clips(make_run(tmp_path, tiny_synthetic, overrides)[0])
    outputs: list[Any] = []
    stream(causal_run, str(video), outputs.append, top_k=3)  # reset and smooth: num_segments=4
    bundle = load_bundle(causal_run)
    transform = build_eval_transform(bundle.input_spec, num_crops=1)
    fed = [rgb for n, (_, rgb) in enumerate(LiveSource(str(video))) if n % 3 == 0]
    clip = torch.stack([transform(f[None], (), torch.Generator())[0][0, 0] for f in fed[4:8]])
    with torch.no_grad():
        expected = top_classes(bundle.model(clip[None])[0], bundle.classes, 3)
    got = outputs[7].top  # fed frame 8: the end of the second block, frames 5..8
    assert [name for name, _, _ in got[0]] == [name for name, _, _ in expected[0]]
    probs = [p for _, _, p in got[0]]
    assert probs == pytest.approx([p for _, _, p in expected[0]], rel=1e-5, abs=0)
    unreset: list[Any] = []
    stream(causal_run, str(video), unreset.append, top_k=3, reset=0)
    assert [p for _, _, p in unreset[7].top[0]] != pytest.approx(probs, rel=1e-5, abs=0)
