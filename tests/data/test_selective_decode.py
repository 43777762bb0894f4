"""Selective decoding (data/_gop.py) is bit-exact to a full decode, and decodes less.

The reference is the same reader decoding every frame from the start with nothing skipped; the
videos are lossy H.264 (with and without B-frames, short and several-GOP), VP9 webm and a stream
whose first timestamp is not 0, read with the sample patterns training and evaluation use.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from gateshift.data.readers import VideoFileReader
from gateshift.data.records import VideoRecord
from gateshift.data.sampling import SamplingSpec, build_sampler

W, H = 64, 48


def _texture(count: int, seed: int) -> list[np.ndarray]:
    """A noisy texture panning under a moving square: every frame differs, motion is coded."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (H + count, W + 2 * count, 3), dtype=np.uint8)
    out = []
    for i in range(count):
        frame = base[i : i + H, 2 * i : 2 * i + W].copy()
        x = (3 * i) % (W - 8)
        frame[10:18, x : x + 8] = (250, 20, 20)
        out.append(frame)
    return out


def _write(path: Path, codec: str, count: int, options: dict[str, str], t0_ms: int = 0) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = options
        if t0_ms:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, array in enumerate(_texture(count, len(path.name))):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            if t0_ms:
                frame.pts, frame.time_base = t0_ms + 40 * i, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


X264 = {"preset": "ultrafast", "crf": "28"}
VP9 = {"deadline": "realtime", "cpu-used": "8", "crf": "40", "b": "0"}
VIDEOS = {
    "h264_bframes": ("libx264", 125, {**X264, "preset": "fast", "bf": "3", "g": "25"}),
    "h264_no_bframes": ("libx264", 125, {**X264, "bf": "0", "g": "25"}),
    "h264_one_gop": ("libx264", 125, {**X264, "preset": "fast", "bf": "3"}),
    "h264_long": ("libx264", 600, {**X264, "preset": "fast", "bf": "3", "g": "50"}),
    "vp9": ("libvpx-vp9", 125, {**VP9, "g": "25"}),
    "vp9_long": ("libvpx-vp9", 400, {**VP9, "g": "50"}),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gop")
    out = {}
    for name, (codec, count, options) in VIDEOS.items():
        ext = "webm" if codec.startswith("libvpx") else "mp4"
        out[name] = _write(root / f"{name}.{ext}", codec, count, options)
    out["vp9_late_start"] = _write(root / "late.webm", "libvpx-vp9", 100, {**VP9, "g": "20"}, 520)
    return out


def _full(path: Path) -> torch.Tensor:
    reader = VideoFileReader(threads=1, skip_unneeded=False, decode="sequential")
    record = VideoRecord(path, (0,))
    return reader.read(record, list(range(reader.probe(record).num_frames)))


def _patterns(num_frames: int) -> dict[str, list[int]]:
    generator = torch.Generator().manual_seed(num_frames)
    segments = SamplingSpec(num_segments=8)
    dense = SamplingSpec(mode="dense", clip_len=8, frame_interval=4, num_clips=2)
    return {
        "segments_train": build_sampler(segments, "train")(num_frames, generator).flatten(),
        "segments_test": build_sampler(segments, "test")(num_frames, generator).flatten(),
        "dense_test": build_sampler(dense, "test")(num_frames, generator).flatten(),
        "ends": [num_frames - 1, 0],
        "repeated_descending": [num_frames - 2, 40, 40, 39, 7, 7, 3],
        "one_late": [num_frames - 3],
    }


@pytest.mark.parametrize("name", [*VIDEOS, "vp9_late_start"])
@pytest.mark.parametrize("threads", [1, 2])
def test_selective_is_bit_exact_and_decodes_less(
    videos: dict[str, Path], name: str, threads: int
) -> None:
    path = videos[name]
    full = _full(path)
    record = VideoRecord(path, (0,))
    decoded = sampled = 0
    for pattern, indices in _patterns(len(full)).items():
        indices = [int(i) for i in indices]
        reader = VideoFileReader(threads=threads)
        frames = reader.read(record, indices)
        assert torch.equal(frames, full[indices]), f"{name} {pattern}"
        assert not reader._sequential  # no file here needs the fallback
        decoded += reader.frames_decoded
        sampled += len(set(indices))
    if name != "h264_one_gop":  # several GOPs: whole GOPs were left out
        sequential = VideoFileReader(threads=threads, decode="sequential")
        for indices in _patterns(len(full)).values():
            sequential.read(record, [int(i) for i in indices])
        assert decoded < sequential.frames_decoded
    assert decoded >= sampled


def test_open_gop_falls_back_to_sequential(tmp_path: Path) -> None:
    options = {**X264, "preset": "fast", "bf": "3", "g": "20", "x264-params": "open-gop=1"}
    path = _write(tmp_path / "open.mp4", "libx264", 100, options)
    full = _full(path)
    reader = VideoFileReader(threads=1)
    indices = [0, 18, 19, 37, 38, 58, 79, 99]
    assert torch.equal(reader.read(VideoRecord(path, (0,)), indices), full[indices])
    assert str(path) in reader._sequential  # the leading pictures were noticed


def test_far_sample_seeks_past_whole_gops(videos: dict[str, Path]) -> None:
    reader = VideoFileReader(threads=1, seek_gap=60)
    record = VideoRecord(videos["h264_long"], (0,))
    frames = reader.read(record, [5, 590])
    assert torch.equal(frames, _full(videos["h264_long"])[[5, 590]])
    assert reader.frames_decoded < 2 * 50  # two GOPs at most, of 600 frames
