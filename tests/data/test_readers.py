"""Readers against lossless synthetic videos and frame folders with known pixels."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from gateshift.data.readers import (
    FrameFolderReader,
    VideoFileReader,
    detect_frame_template,
    make_reader,
    template_regex,
)
from gateshift.data.records import BadVideoError, VideoDataset, VideoRecord
from tests.data.media import HEIGHT, WIDTH, pattern, write_frames, write_video


def expected(indices: list[int]) -> torch.Tensor:
    """(T, 3, H, W) uint8 of ``pattern`` frames."""
    return torch.from_numpy(np.stack([pattern(i) for i in indices])).permute(0, 3, 1, 2)


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("videos")
    out = {ext: write_video(root / f"clip.{ext}", 40) for ext in ("mp4", "mkv", "webm", "avi")}
    out["long"] = write_video(root / "long.mp4", 600, fps=50, gop=25)
    out["long_webm"] = write_video(root / "long.webm", 400, fps=50, gop=25)
    return out


@pytest.mark.parametrize("ext", ["mp4", "mkv", "webm"])
def test_video_frames_exact(videos: dict[str, Path], ext: str) -> None:
    reader = VideoFileReader(threads=1)
    record = VideoRecord(videos[ext], (0,))
    info = reader.probe(record)
    assert (info.num_frames, info.width, info.height, info.fps) == (40, WIDTH, HEIGHT, 25.0)
    assert info.duration_s == pytest.approx(1.6)
    indices = [39, 0, 17, 17, 5, 38]  # unsorted, repeated, up to the last frame
    frames = reader.read(record, indices)
    assert frames.shape == (6, 3, HEIGHT, WIDTH) and frames.dtype == torch.uint8
    assert torch.equal(frames, expected(indices))


def test_avi_counts_and_matches_plain_decode(videos: dict[str, Path]) -> None:
    # Lossy codec: the reference is PyAV decoding every frame in order.
    reader = VideoFileReader(threads=1)
    record = VideoRecord(videos["avi"], (0,))
    assert reader.probe(record).num_frames == 40
    with av.open(str(videos["avi"])) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    indices = [30, 10, 39]
    reference = torch.from_numpy(np.stack([decoded[i] for i in indices])).permute(0, 3, 1, 2)
    assert torch.equal(reader.read(record, indices), reference)


def test_threaded_decoding_matches(videos: dict[str, Path]) -> None:
    record = VideoRecord(videos["mp4"], (0,))
    indices = [1, 8, 15, 22, 29, 36]
    frames = VideoFileReader(threads=2, thread_type="FRAME").read(record, indices)
    assert torch.equal(frames, expected(indices))


def test_decoding_stops_at_last_wanted_frame(videos: dict[str, Path]) -> None:
    reader = VideoFileReader(threads=1, skip_unneeded=False)
    reader.read(VideoRecord(videos["mkv"], (0,)), [2, 5])
    assert reader.frames_decoded <= 8  # not 40


@pytest.mark.parametrize("key", ["long", "long_webm"])
def test_late_segment_seeks(videos: dict[str, Path], key: str) -> None:
    reader = VideoFileReader(threads=1)
    record = VideoRecord(videos[key], (0,), start_frame=300, end_frame=390)
    assert reader.probe(record).num_frames == 90
    frames = reader.read(record, [0, 45, 89, 3])
    assert torch.equal(frames, expected([300, 345, 389, 303]))
    assert reader.frames_decoded < 150  # seeked: did not decode the first 300 frames


def test_far_apart_frames_seek_again(videos: dict[str, Path]) -> None:
    reader = VideoFileReader(threads=1)
    indices = [5, 250, 520, 599]
    frames = reader.read(VideoRecord(videos["long"], (0,)), indices)
    assert torch.equal(frames, expected(indices))
    assert reader.frames_decoded < 200


def test_annotation_frame_rate_converted_through_time(videos: dict[str, Path]) -> None:
    # Annotation counted at 100 fps, video at 50 fps: annotation frame 400 is video frame 200.
    record = VideoRecord(videos["long"], (0,), start_frame=400, end_frame=500, frame_rate=100.0)
    reader = VideoFileReader(threads=1)
    assert reader.probe(record).num_frames == 50
    assert torch.equal(reader.read(record, [0, 10]), expected([200, 210]))


def test_variable_frame_rate_numbered_by_count(tmp_path: Path) -> None:
    stamps = [0, 40, 80, 130, 160, 200, 240, 280, 330, 360, 400, 440]  # off a 25 fps grid
    path = write_video(tmp_path / "vfr.mp4", len(stamps), pts=stamps)
    reader = VideoFileReader(threads=1)
    assert reader.probe(VideoRecord(path, (0,))).num_frames == len(stamps)
    indices = [11, 3, 4, 8]
    assert torch.equal(reader.read(VideoRecord(path, (0,)), indices), expected(indices))


def test_segment_and_index_bounds(videos: dict[str, Path]) -> None:
    reader = VideoFileReader(threads=1)
    with pytest.raises(BadVideoError, match="truncated: segment ends at frame 50"):
        reader.probe(VideoRecord(videos["mp4"], (0,), start_frame=10, end_frame=50))
    with pytest.raises(IndexError, match="outside the 40 frames"):
        reader.read(VideoRecord(videos["mp4"], (0,)), [40])


def test_missing_and_corrupt_videos(tmp_path: Path) -> None:
    reader = VideoFileReader(threads=1)
    with pytest.raises(BadVideoError, match="missing") as err:
        reader.probe(VideoRecord(tmp_path / "nope.mp4", (0,)))
    assert err.value.path == str(tmp_path / "nope.mp4") and err.value.reason == "missing"
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(BadVideoError, match="corrupt"):
        reader.read(VideoRecord(junk, (0,)), [0])
    empty = tmp_path / "empty.webm"
    empty.write_bytes(b"")
    with pytest.raises(BadVideoError, match="corrupt"):
        reader.probe(VideoRecord(empty, (0,)))


@pytest.mark.parametrize("ext", ["mp4", "webm"])
def test_truncated_video(tmp_path: Path, ext: str) -> None:
    # mp4 written with the index first (faststart), so the cut file still opens and claims
    # all 40 frames; the webm header keeps its duration.
    path = write_video(tmp_path / f"full.{ext}", 40)
    if ext == "mp4":
        with (
            av.open(str(path)) as src,
            av.open(str(tmp_path / "fast.mp4"), "w", options={"movflags": "faststart"}) as dst,
        ):
            stream = dst.add_stream_from_template(src.streams.video[0])
            for packet in src.demux(src.streams.video[0]):
                if packet.size:
                    packet.stream = stream
                    dst.mux(packet)
        path = tmp_path / "fast.mp4"
    data = path.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    reader = VideoFileReader(threads=1)
    with pytest.raises(BadVideoError, match=r"truncated: .*40") as err:
        reader.read(VideoRecord(cut, (0,)), [0, 39])
    assert err.value.path == str(cut)


def test_frame_folder_exact_and_counts(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "v1", 30)
    (folder / "flow_x_00001.png").write_bytes(b"")  # other files do not count
    reader = FrameFolderReader("img_{:05d}.png", start=1)
    record = VideoRecord(folder, (0,))
    info = reader.probe(record)
    assert (info.num_frames, info.width, info.height) == (30, WIDTH, HEIGHT)
    indices = [29, 0, 7, 7]
    assert torch.equal(reader.read(record, indices), expected(indices))
    segment = VideoRecord(folder, (0,), start_frame=10, end_frame=20)
    assert reader.probe(segment).num_frames == 10
    assert torch.equal(reader.read(segment, [0, 9]), expected([10, 19]))


def test_jpeg_decoders_agree(tmp_path: Path) -> None:
    folder = tmp_path / "jpg"
    folder.mkdir()
    from PIL import Image

    for i in range(4):
        Image.fromarray(np.kron(pattern(i * 20), np.ones((4, 4, 1), np.uint8))).save(
            folder / f"{i:05d}.jpg", quality=85
        )
    record = VideoRecord(folder, (0,))
    pil = FrameFolderReader(jpeg_decoder="pil", start=0).read(record, [3, 1])
    default = FrameFolderReader(start=0).read(record, [3, 1])
    assert torch.equal(pil, default)
    assert (
        pil.float() - expected([60, 20]).repeat_interleave(4, 2).repeat_interleave(4, 3)
    ).abs().mean() < 6


def test_missing_frame_named_never_substituted(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "gap", 10)
    (folder / "img_00005.png").unlink()
    reader = FrameFolderReader("img_{:05d}.png")
    with pytest.raises(BadVideoError, match=r"missing frame file img_00005\.png"):
        reader.probe(VideoRecord(folder, (0,)))
    annotated = VideoRecord(folder, (0,), end_frame=10)  # no scan: the read finds the hole
    with pytest.raises(BadVideoError, match=r"missing frame file img_00005\.png") as err:
        reader.read(annotated, [0, 4, 8])
    assert err.value.path == str(folder)


def test_corrupt_and_missing_folder(tmp_path: Path) -> None:
    folder = write_frames(tmp_path / "bad", 5, template="{:05d}.jpg")
    (folder / "00003.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    reader = FrameFolderReader()
    with pytest.raises(BadVideoError, match=r"corrupt frame file 00003\.jpg"):
        reader.read(VideoRecord(folder, (0,)), [0, 2])
    with pytest.raises(BadVideoError, match="missing"):
        reader.probe(VideoRecord(tmp_path / "absent", (0,)))
    with pytest.raises(BadVideoError, match="zero frames"):
        reader.probe(VideoRecord(tmp_path, (0,)))


def test_templates() -> None:
    assert template_regex("frame_{:010d}.jpg").fullmatch("frame_0000000042.jpg")
    assert template_regex("{:d}.png").fullmatch("7.png")
    for bad in ("{:05d}_{:05d}.jpg", "frames.jpg", "{:s}.jpg"):
        with pytest.raises(ValueError, match="frame template"):
            template_regex(bad)


def test_detect_template_and_make_reader(tmp_path: Path, videos: dict[str, Path]) -> None:
    folder = write_frames(tmp_path / "tsn", 6, template="img_{:05d}.png")
    write_frames(tmp_path / "tsn", 7, template="flow_x_{:05d}.png")
    assert detect_frame_template(folder) == ("img_{:05d}.png", 1)
    assert detect_frame_template(write_frames(tmp_path / "z", 3, start=0, template="{:d}.png")) == (
        "{:d}.png",
        0,
    )
    frames = VideoDataset([VideoRecord(folder, (0,))], [["a"]], tmp_path, "list")
    reader = make_reader(frames)
    assert isinstance(reader, FrameFolderReader) and reader.template == "img_{:05d}.png"
    video = VideoDataset([VideoRecord(videos["mp4"], (0,))], [["a"]], tmp_path, "list")
    assert isinstance(make_reader(video), VideoFileReader)
    mixed = VideoDataset(frames.records + video.records, [["a"]], tmp_path, "list")
    with pytest.raises(ValueError, match="mixes video files"):
        make_reader(mixed)
