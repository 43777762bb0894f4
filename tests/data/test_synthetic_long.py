"""Long synthetic videos: actions one after another, each repeat a training-distribution clip,
with a true timeline that matches the frames."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import av
import numpy as np
import pytest

from gateshift.cli.main import main
from gateshift.data import synthetic as S
from gateshift.data.synthetic_long import REPEATS, render_long
from gateshift.deploy.timeline_truth import read_truth


def test_actions_follow_each_other_and_repeat_training_clips() -> None:
    rng = np.random.default_rng(5)
    frames, segments = render_long(rng, actions=5, size=32, num_frames=8)
    assert frames.shape[1:] == (32, 32, 3) and frames.dtype == np.uint8
    assert segments[0].start_frame == 0 and segments[-1].end_frame == len(frames)
    for a, b in itertools.pairwise(segments):
        assert a.end_frame == b.start_frame and a.label != b.label  # contiguous, each different
    for s in segments:
        assert s.label in S.CLASSES
        repeats, rest = divmod(s.end_frame - s.start_frame, 8)
        assert rest == 0 and REPEATS[0] <= repeats <= REPEATS[1]
    # the same draws give the same video; one scene (background) throughout
    again, _ = render_long(np.random.default_rng(5), actions=5, size=32, num_frames=8)
    assert np.array_equal(frames, again)
    assert np.abs(frames[0, :2, :2].astype(int) - frames[-1, :2, :2]).max() <= 40


def test_cli_writes_long_videos_with_their_timelines(tmp_path: Path) -> None:
    args = ["data", "synthetic", str(tmp_path), "--videos-per-class", "1", "--size", "32"]
    assert main([*args, "--frames", "8", "--long", "2"]) == 0
    videos = sorted((tmp_path / "long").glob("*.mp4"))
    assert [v.name for v in videos] == ["long_0000.mp4", "long_0001.mp4"]
    for video in videos:
        truth = read_truth(video.with_suffix(".timeline.json"))
        raw = json.loads(video.with_suffix(".timeline.json").read_text())
        assert set(raw) == {"segments"} and set(raw["segments"][0]) == {"start", "end", "label"}
        with av.open(str(video)) as container:
            count = sum(1 for _ in container.decode(video=0))
        assert truth[0].start == 0 and truth[-1].end == pytest.approx(count / S.FPS, abs=1e-6)
        assert len(truth) == 6
    with pytest.raises(SystemExit):
        main([*args, "--long", "x"])
    assert main([*args, "--long", "1"]) == 2  # exists: --force replaces it
