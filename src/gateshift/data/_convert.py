"""Conversion jobs of ``data prepare``, one per source item, run in worker processes.

``frames``: decode a video and write every frame as JPEG (``000001.jpg`` ...), numbered in
decode order, which is the numbering of the video reader. ``video``: re-encode to H.264 mp4 with
the same frames in the same order at a constant rate (a variable-rate source keeps its frame
count and order). ``resize``: shrink a frame folder's images, keeping their names. Every output
is built under ``<name>.tmp-<pid>`` and renamed when complete; leftovers of killed runs are
removed before an item is redone.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import av.error
from PIL import Image

from gateshift.data import _pyav
from gateshift.data.readers import FrameFolderReader
from gateshift.data.records import BadVideoError, VideoRecord

FRAME_NAME = "{:06d}.jpg"
INFO_NAME = ".prepare.json"  # inside a frame folder: frame count and source rate
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Job:
    src: str
    dst: str
    kind: Literal["frames", "video", "resize"]
    short_side: int | None
    template: str | None = None  # resize: the source frame names
    start: int = 1
    threads: int = 0  # decoder threads, 0 = FFmpeg's choice


@dataclass(frozen=True)
class Result:
    src: str
    ok: bool
    reason: str = ""
    skipped: bool = False
    num_frames: int = 0
    fps: float | None = None


def scaled_size(width: int, height: int, short_side: int | None, even: bool) -> tuple[int, int]:
    """Size with the short side at most ``short_side`` (aspect kept); even for yuv420p."""
    scale = 1.0 if short_side is None else min(1.0, short_side / min(width, height))
    step = 2 if even else 1
    return (max(step, round(width * scale / step) * step),
            max(step, round(height * scale / step) * step))  # fmt: skip


def run_job(job: Job) -> Result:
    """Do one job; a finished output is skipped, a bad source becomes a failed Result."""
    dst = Path(job.dst)
    if dst.exists():
        info = _read_info(dst)
        return Result(job.src, True, skipped=True, num_frames=info[0], fps=info[1])
    for stale in dst.parent.glob(f"{dst.name}.tmp-*"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f"{dst.name}.tmp-{os.getpid()}")
    try:
        convert = {"frames": _extract, "video": _reencode, "resize": _resize}[job.kind]
        count, fps = convert(job, tmp)
        os.replace(tmp, dst)
    except BadVideoError as err:
        _remove(tmp)
        return Result(job.src, False, err.reason)
    except (av.error.FFmpegError, OSError, ValueError) as err:
        _remove(tmp)
        return Result(job.src, False, f"corrupt: {err}")
    return Result(job.src, True, num_frames=count, fps=fps)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def _read_info(dst: Path) -> tuple[int, float | None]:
    file = dst / INFO_NAME
    if not file.exists():
        return 0, None
    info = json.loads(file.read_text())
    return int(info["num_frames"]), info.get("fps")


def _decoded_frames(path: Path, threads: int) -> Any:
    """(container, meta, frame iterator) of a video, all frames in decode order."""
    meta = _pyav.read_meta(path)
    container = _pyav.open_video(path)
    stream = container.streams.video[0]
    stream.codec_context.thread_count = threads
    stream.codec_context.thread_type = "AUTO"
    return container, meta, container.decode(stream)


def _extract(job: Job, tmp: Path) -> tuple[int, float | None]:
    src = Path(job.src)
    container, meta, frames = _decoded_frames(src, job.threads)
    tmp.mkdir()
    count = 0
    with container:
        size = scaled_size(meta.width, meta.height, job.short_side, even=False)
        for count, frame in enumerate(frames, start=1):
            rgb = frame.reformat(
                width=size[0], height=size[1], format="rgb24", interpolation="AREA"
            )
            rgb.to_image().save(tmp / FRAME_NAME.format(count), quality=JPEG_QUALITY)
    if count < meta.num_frames:
        raise BadVideoError(src, f"truncated: decoded {count} of {meta.num_frames} frames")
    (tmp / INFO_NAME).write_text(json.dumps({"num_frames": count, "fps": meta.fps}))
    return count, meta.fps


def _reencode(job: Job, tmp: Path) -> tuple[int, float | None]:
    src = Path(job.src)
    container, meta, frames = _decoded_frames(src, job.threads)
    rate = Fraction(meta.fps or 25).limit_denominator(1001)
    width, height = scaled_size(meta.width, meta.height, job.short_side, even=True)
    count = 0
    with container, av.open(str(tmp), "w", format="mp4") as output:
        stream = output.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        # One keyframe a second keeps seeking into long videos cheap.
        stream.options = {"crf": "20", "preset": "veryfast", "g": str(max(1, round(rate)))}
        for count, frame in enumerate(frames, start=1):
            out = frame.reformat(width=width, height=height, format="yuv420p", interpolation="AREA")
            out.pts, out.time_base = count - 1, 1 / rate
            output.mux(stream.encode(out))
        output.mux(stream.encode())
    if count < meta.num_frames:
        raise BadVideoError(src, f"truncated: decoded {count} of {meta.num_frames} frames")
    return count, meta.fps


def _resize(job: Job, tmp: Path) -> tuple[int, float | None]:
    src = Path(job.src)
    reader = FrameFolderReader(job.template or "{:05d}.jpg", start=job.start)
    count = reader.count(src)
    tmp.mkdir()
    for i in range(count):
        name = reader.frame_path(VideoRecord(src, ()), i).name
        with Image.open(src / name) as image:
            size = scaled_size(image.width, image.height, job.short_side, even=False)
            small = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
        small.save(tmp / name, quality=JPEG_QUALITY)
    (tmp / INFO_NAME).write_text(json.dumps({"num_frames": count, "fps": None}))
    return count, None
