"""One pass over a whole video: exact frames, numbered as the reader numbers them, decoded once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gateshift.data.annotations import load_annotations
from gateshift.data.clip_stats import TypicalClip, typical_clip
from gateshift.data.readers import VideoFileReader, make_reader
from gateshift.data.records import BadVideoError, VideoRecord
from gateshift.data.stream import VideoStream, read_ahead

from .media import pattern, write_video


def _rgb(stream: VideoStream, frame: object) -> np.ndarray:
    return stream.rgb(frame).permute(1, 2, 0).numpy()


@pytest.mark.parametrize("ext", ["mp4", "mkv", "webm"])
def test_wanted_frames_come_exact_and_in_order_from_one_pass(tmp_path: Path, ext: str) -> None:
    path = write_video(tmp_path / f"v.{ext}", 60)
    stream = VideoStream(path)
    wanted = [1, 2, 9, 30, 59]
    got = [(n, _rgb(stream, f)) for n, f in stream.frames(iter(wanted))]
    assert [n for n, _ in got] == wanted
    assert all(np.array_equal(rgb, pattern(n)) for n, rgb in got)
    assert stream.frames_decoded <= 60  # never a frame twice
    # the reader returns the same pixels for the same numbers
    frames = VideoFileReader().read(VideoRecord(path, ()), wanted)
    assert np.array_equal(frames.permute(0, 2, 3, 1).numpy(), np.stack([g for _, g in got]))


def test_every_frame_and_a_variable_rate_stream(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", 30)
    assert [n for n, _ in VideoStream(path).frames()] == list(range(30))
    # off the grid: decoded again, numbered by counting, nothing handed over twice
    pts = [i * 40 + (15 if i % 3 == 0 else 0) for i in range(30)]
    vfr = write_video(tmp_path / "vfr.mp4", 30, pts=pts)
    stream = VideoStream(vfr)
    got = [(n, _rgb(stream, f)) for n, f in stream.frames([0, 5, 29])]
    assert [n for n, _ in got] == [0, 5, 29]
    assert all(np.array_equal(rgb, pattern(n)) for n, rgb in got)


def test_a_wanted_frame_past_the_end_and_an_unreadable_file(tmp_path: Path) -> None:
    path = write_video(tmp_path / "v.mp4", 20)
    frames = VideoStream(path).frames([3, 25])
    assert next(frames)[0] == 3  # what came before the end was handed over
    with pytest.raises(BadVideoError, match=r"v\.mp4: truncated: decoded 4 of 20 frames"):
        next(frames)
    with pytest.raises(BadVideoError, match=r"nope\.mp4: missing"):
        VideoStream(tmp_path / "nope.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"not a video" * 10)
    with pytest.raises(BadVideoError, match=r"junk\.mp4: corrupt"):
        VideoStream(tmp_path / "junk.mp4")


def test_typical_clip_of_a_split(tiny_synthetic: Path) -> None:
    data = load_annotations("folder", tiny_synthetic, "train")
    clip = typical_clip(data.records, make_reader(data))
    assert clip == TypicalClip(num_frames=8, duration_s=pytest.approx(8 / 12), fps=12.0, probed=22)
    assert TypicalClip.from_dict(clip.to_dict()) == clip
    broken = [VideoRecord(tiny_synthetic / "missing.mp4", (0,))]
    assert typical_clip(broken, make_reader(data)) is None  # unreadable: left out, not guessed


def test_read_ahead_hands_over_in_order_raises_in_order_and_stops_when_closed() -> None:
    def numbers(fail_at: int | None = None) -> Iterator[int]:
        for i in range(50):
            if i == fail_at:
                raise BadVideoError("v.mp4", "corrupt: damaged")
            yield i

    assert list(read_ahead(numbers(), 4)) == list(range(50))
    got = []
    with pytest.raises(BadVideoError, match="damaged"):
        for i in read_ahead(numbers(fail_at=7), 4):
            got.append(i)
    assert got == list(range(7))  # everything before the error arrives first
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    ahead = read_ahead(endless(), 2)
    assert [next(ahead) for _ in range(3)] == [0, 1, 2]
    ahead.close()  # the producer thread stops and closes its source
    assert closed.wait(5)
