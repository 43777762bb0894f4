"""Clip readers: video files through PyAV and folders of extracted frames, behind one interface.

Both implement :class:`~gateshift.data.records.ClipReader` (``probe`` and ``read``) and raise
:class:`~gateshift.data.records.BadVideoError` for anything unreadable: a missing file, a corrupt
or truncated video, a missing or unreadable frame file. Nothing is ever substituted (the GSM/TSN
loaders silently replace an unreadable frame with frame 1).

``read`` returns ``(T, 3, H, W)`` uint8 RGB in channels-last memory (a permuted view of the
``(T, H, W, 3)`` decode buffer): the decoders write pixels interleaved, and the resizes that
follow are fastest on that layout, so no copy is spent on reordering. ``.contiguous()`` gives
NCHW memory where needed.

Decoding is selective (:mod:`gateshift.data._gop`): only the GOPs holding wanted frames are
decoded, from their key frame up to the last wanted frame, unwanted non-reference frames skipped,
bit-exact to a full decode. What that saves depends on the encoding: on a 5 s 602x256 H.264 clip
with x264's default 250-frame GOP (one key frame) every reference frame up to the last sample is
still needed, so it matches sequential decoding (8.0 frames decoded per frame returned, 14.8 with
nothing skipped); at a 1 s GOP it is 1.13-1.22x faster, at a 6-frame GOP 2.7x
(``benchmarks/video_reader.py``, clips per CPU second on a loaded 2-core AMD EPYC).

Earlier profile, on one core of the 2-core dev container (PyAV 18 / FFmpeg 8, simplejpeg 1.9), 8
frames per clip sampled across it. 4 s 12 fps 427x240 VP9 webm (Something-Something V2 style):
~12 ms a clip, of which decoding ~11.3 ms (every frame up to the last one asked for, one GOP;
VP9 has no skippable frames; the keyframe alone ~2 ms), container open 0.13, demux 0.15, RGB
conversion of the 8 returned frames 0.37. The same content as H.264 mp4: ~12 ms (decode 13.7 ms
without skipping, 11.3 ms with the unwanted B-frames skipped). So the video path is decode-bound
(~93%); the reader's own overhead is under 1 ms. A 250-frame folder of 602x256 JPEGs: ~4.8 ms for
8 frames with simplejpeg, ~7.6 ms with PIL (same pixels).
"""

from __future__ import annotations

import logging
import os
import re
import string
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import av.error
import numpy as np
import torch
from PIL import Image
from torch import Tensor

from gateshift.data import _gop, _pyav
from gateshift.data.records import BadVideoError, ClipReader, VideoDataset, VideoInfo, VideoRecord

try:  # optional: ~2x faster JPEG decoding than PIL, identical pixels
    import simplejpeg
except ImportError:  # pragma: no cover - exercised only without the package
    simplejpeg = None

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
ThreadType = Literal["AUTO", "FRAME", "SLICE"]
DecodeMode = Literal["selective", "sequential"]


def _check_indices(indices: Sequence[int], num_frames: int, path: Path) -> list[int]:
    out = [int(i) for i in indices]
    if not out:
        raise ValueError(f"{path}: no frame indices to read")
    bad = [i for i in out if not 0 <= i < num_frames]
    if bad:
        raise IndexError(f"{path}: frame index {bad[0]} outside the {num_frames} frames")
    return out


def _gather(buffer: np.ndarray, rows: list[int], order: list[int]) -> Tensor:
    """(U, H, W, 3) buffer of the unique sorted ``rows`` -> (T, 3, H, W) in request ``order``."""
    frames = torch.from_numpy(buffer)
    if order != rows:
        position = {n: i for i, n in enumerate(rows)}
        frames = frames[torch.tensor([position[n] for n in order])]
    return frames.permute(0, 3, 1, 2)  # (T, H, W, 3) -> (T, 3, H, W), channels-last memory


def _default_threads() -> int:
    # Inside a DataLoader worker the workers are the parallelism: one decoder thread each.
    if torch.utils.data.get_worker_info() is not None:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cores or 1))


class VideoFileReader:
    """Reads frames of video files (mp4, webm/VP9, mkv, avi, ...) with PyAV.

    ``threads``: decoder threads; None means 1 inside a DataLoader worker, else up to 4 (the
    cores this process may use). ``thread_type``: FFmpeg's threading (AUTO picks frame threads).
    ``seek_gap``: seek (to the keyframe before) when the next wanted frame is more than this
    many frames past the current position, instead of decoding through. ``skip_unneeded``:
    do not decode non-reference frames that are not returned. ``decode``: ``"selective"``
    sends the decoder only the GOPs (key frame up to the wanted frame) that wanted frames need
    (:mod:`gateshift.data._gop`), and falls back to ``"sequential"`` (every frame from the
    start or a seek point up to the last one wanted) for a file where skipping is not safe.
    ``frames_decoded`` counts the frames the decoder output, for benchmarks and tests.
    """

    def __init__(
        self,
        *,
        threads: int | None = None,
        thread_type: ThreadType = "AUTO",
        seek_gap: int = 100,
        skip_unneeded: bool = True,
        decode: DecodeMode = "selective",
    ) -> None:
        if seek_gap < 1:
            raise ValueError(f"seek_gap must be positive, got {seek_gap}")
        self.threads = threads
        self.thread_type = thread_type
        self.seek_gap = seek_gap
        self.skip_unneeded = skip_unneeded
        self.decode = decode
        self._sequential: set[str] = set()  # files found unsafe to decode selectively
        self.frames_decoded = 0  # running total, for profiling and tests
        self._meta: dict[str, _pyav.VideoMeta] = {}
        self._reformatter: Any = None

    def __getstate__(self) -> dict[str, Any]:  # the swscale context does not pickle
        return {**self.__dict__, "_reformatter": None}

    def meta(self, path: Path) -> _pyav.VideoMeta:
        """Whole-file facts (frame count, size, rate), cached per path."""
        key = str(path)
        meta = self._meta.get(key)
        if meta is None:
            meta = self._meta[key] = _pyav.read_meta(path)
        return meta

    def _segment(self, record: VideoRecord, meta: _pyav.VideoMeta) -> tuple[int, int]:
        start, end = record.start_frame, record.end_frame
        rate = record.frame_rate
        if rate and meta.fps and abs(rate - meta.fps) > 1e-4 * meta.fps:
            # Annotation frames counted at another rate: convert through time.
            start = round(start * meta.fps / rate)
            end = None if end is None else max(start + 1, round(end * meta.fps / rate))
        end = meta.num_frames if end is None else end
        if end > meta.num_frames:
            reason = f"truncated: segment ends at frame {end}, the video has {meta.num_frames}"
            raise BadVideoError(record.path, reason)
        if end <= start:
            raise BadVideoError(record.path, f"zero frames in segment [{start}, {end})")
        return start, end

    def probe(self, record: VideoRecord) -> VideoInfo:
        meta = self.meta(record.path)
        start, end = self._segment(record, meta)
        duration = (end - start) / meta.fps if meta.fps else None
        return VideoInfo(end - start, meta.width, meta.height, meta.fps, duration)

    def read(self, record: VideoRecord, indices: Sequence[int]) -> Tensor:
        meta = self.meta(record.path)
        start, end = self._segment(record, meta)
        order = [start + i for i in _check_indices(indices, end - start, record.path)]
        wanted = sorted(set(order))
        got = self._decode(record.path, meta, wanted)
        buffer = np.empty((len(wanted), meta.height, meta.width, 3), np.uint8)
        if self._reformatter is None:
            self._reformatter = _pyav.VideoReformatter()
        try:
            _pyav.frames_to_rgb([got[n] for n in wanted], buffer, self._reformatter)
        except av.error.FFmpegError as err:
            raise BadVideoError(record.path, f"corrupt: {err}") from err
        return _gather(buffer, wanted, order)

    def _decode(self, path: Path, meta: _pyav.VideoMeta, wanted: list[int]) -> dict[int, Any]:
        selective = self.decode == "selective" and self.skip_unneeded
        modes = ["selective"] if selective and str(path) not in self._sequential else []
        modes += ["grid", "counting"]
        while True:
            mode = modes.pop(0)
            try:
                return self._decode_with(mode, path, meta, wanted)
            except _gop.UnsafeSkipError as err:
                log.debug("%s: %s; decoding sequentially", path, err)
                self._sequential.add(str(path))
            except _pyav.OffGridError:
                log.debug("%s: timestamps off the frame grid; decoding by counting", path)
                modes = ["counting"]

    def _decode_with(
        self, mode: str, path: Path, meta: _pyav.VideoMeta, wanted: list[int]
    ) -> dict[int, Any]:
        with _pyav.open_video(path) as container:
            ctx = container.streams.video[0].codec_context
            ctx.thread_count = self.threads or _default_threads()
            ctx.thread_type = self.thread_type
            # After a refused selective walk, no seeking either: read the file from the start.
            seek_gap = self.seek_gap if str(path) not in self._sequential else 1 << 62
            decoder = _pyav.Decoder(
                container, path, meta, seek_gap=seek_gap, skip=self.skip_unneeded
            )
            try:
                if mode == "selective":
                    return _gop.decode_selective(decoder, wanted)
                if mode == "grid":
                    return decoder.decode_on_grid(wanted)
                return decoder.decode_counting(wanted)
            except av.error.FFmpegError as err:
                raise BadVideoError(path, f"corrupt: {_pyav.describe(err)}") from err
            finally:
                self.frames_decoded += decoder.frames_decoded


class FrameFolderReader:
    """Reads frames from a folder of images named by ``template`` (e.g. ``"{:05d}.jpg"``).

    ``start``: the number of the first file (1 for the official frame sets). The frame count is
    the number of files matching the template (one directory scan, cached); a gap in the
    numbering is reported as a missing frame. JPEGs decode with simplejpeg when it is installed
    (``jpeg_decoder="auto"``), else PIL; both give libjpeg-turbo's exact (ISLOW, fancy
    upsampling) pixels.
    """

    def __init__(
        self,
        template: str = "{:05d}.jpg",
        *,
        start: int = 1,
        jpeg_decoder: Literal["auto", "simplejpeg", "pil"] = "auto",
    ) -> None:
        self.template = template
        self.start = start
        self._pattern = template_regex(template)
        if jpeg_decoder == "simplejpeg" and simplejpeg is None:
            raise ValueError("jpeg_decoder='simplejpeg' needs the simplejpeg package")
        self._simplejpeg = simplejpeg is not None and jpeg_decoder != "pil"
        self._counts: dict[str, int] = {}
        self._sizes: dict[str, tuple[int, int]] = {}

    def frame_path(self, record: VideoRecord, index: int) -> Path:
        """The file holding frame ``index`` (0-based, segment-relative) of ``record``."""
        return record.path / self.template.format(self.start + record.start_frame + index)

    def count(self, folder: Path) -> int:
        """Frames in ``folder``: files matching the template, checked to number without gaps."""
        key = str(folder)
        if key not in self._counts:
            self._counts[key] = self._scan(folder)
        return self._counts[key]

    def _scan(self, folder: Path) -> int:
        if not folder.is_dir():
            raise BadVideoError(folder, "missing" if not folder.exists() else "not a folder")
        with os.scandir(folder) as entries:
            numbers = sorted(
                int(m.group(1)) for e in entries if (m := self._pattern.fullmatch(e.name))
            )
        if not numbers:
            raise BadVideoError(folder, f"zero frames (no file matches {self.template!r})")
        for expected, number in enumerate(numbers, start=self.start):
            if number != expected:
                name = self.template.format(expected)
                raise BadVideoError(folder, f"missing frame file {name}")
        return len(numbers)

    def _segment(self, record: VideoRecord) -> tuple[int, int]:
        # With an annotated end the folder is not scanned: a missing file fails the read.
        end = record.end_frame if record.end_frame is not None else self.count(record.path)
        if end <= record.start_frame:
            raise BadVideoError(record.path, f"zero frames in [{record.start_frame}, {end})")
        return record.start_frame, end

    def probe(self, record: VideoRecord) -> VideoInfo:
        if not record.path.is_dir():
            reason = "missing" if not record.path.exists() else "not a folder"
            raise BadVideoError(record.path, reason)
        start, end = self._segment(record)
        key = str(record.path)
        if key not in self._sizes:
            first = self.frame_path(record, 0)
            try:
                with Image.open(first) as image:
                    self._sizes[key] = image.size
            except FileNotFoundError as err:
                raise BadVideoError(record.path, f"missing frame file {first.name}") from err
            except OSError as err:
                reason = f"corrupt frame file {first.name}: {err}"
                raise BadVideoError(record.path, reason) from err
        width, height = self._sizes[key]
        return VideoInfo(end - start, width, height)

    def read(self, record: VideoRecord, indices: Sequence[int]) -> Tensor:
        start, end = self._segment(record)
        order = _check_indices(indices, end - start, record.path)
        wanted = sorted(set(order))
        first = self._decode(record, wanted[0], None)
        buffer = np.empty((len(wanted), *first.shape), np.uint8)
        buffer[0] = first
        for row, index in enumerate(wanted[1:], start=1):
            self._decode(record, index, buffer[row])
        return _gather(buffer, wanted, order)

    def _decode(self, record: VideoRecord, index: int, out: np.ndarray | None) -> np.ndarray:
        """Decode one frame file to (H, W, 3) uint8, into ``out`` when given."""
        file = self.frame_path(record, index)
        try:
            data = file.read_bytes()
        except FileNotFoundError as err:
            raise BadVideoError(record.path, f"missing frame file {file.name}") from err
        except OSError as err:
            raise BadVideoError(record.path, f"unreadable frame file {file.name}: {err}") from err
        if self._simplejpeg and data[:2] == b"\xff\xd8":
            try:
                height, width, _, _ = simplejpeg.decode_jpeg_header(data)
                if out is None or out.shape == (height, width, 3):
                    return simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=out)
            except ValueError:
                pass  # PIL decides: it tolerates warnings simplejpeg's strict mode rejects
        try:
            with Image.open(file) as image:
                array = np.asarray(image.convert("RGB"))
        except OSError as err:
            raise BadVideoError(record.path, f"corrupt frame file {file.name}: {err}") from err
        if out is None:
            return array
        if array.shape != out.shape:
            size = f"{array.shape[1]}x{array.shape[0]}"
            raise BadVideoError(record.path, f"frame file {file.name} is {size}, unlike frame 0")
        out[...] = array
        return out


def template_regex(template: str) -> re.Pattern[str]:
    """A regex matching the file names of ``template``, the frame number as group 1."""
    parts = list(string.Formatter().parse(template))
    fields = [i for i, (_, name, _, _) in enumerate(parts) if name is not None]
    if len(fields) != 1 or parts[fields[0]][1] != "":
        raise ValueError(f"frame template {template!r} needs one field like '{{:05d}}'")
    spec = parts[fields[0]][2] or ""
    if not re.fullmatch(r"(0\d+)?d?", spec):
        raise ValueError(f"frame template {template!r}: {spec!r} is not an integer format")
    before = "".join(p[0] for p in parts[: fields[0] + 1])
    after = "".join(p[0] for p in parts[fields[0] + 1 :])
    return re.compile(re.escape(before) + r"(\d+)" + re.escape(after))


def detect_frame_template(folder: Path) -> tuple[str, int] | None:
    """Guess ``(template, first number)`` from the image names in ``folder``: the most common
    ``<prefix><digits><ext>`` pattern, preferring RGB names over TSN's ``flow_x_`` files."""
    groups: Counter[tuple[str, int, str]] = Counter()
    lowest: dict[tuple[str, int, str], int] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            m = re.fullmatch(r"(.*?)(\d+)(\.[A-Za-z]+)", entry.name)
            if m is None or m.group(3).lower() not in IMAGE_EXTENSIONS:
                continue
            key = (m.group(1), len(m.group(2)), m.group(3))
            groups[key] += 1
            lowest[key] = min(lowest.get(key, 1 << 62), int(m.group(2)))
    if not groups:
        return None
    rgb = {k: n for k, n in groups.items() if "flow" not in k[0].lower()} or dict(groups)
    prefix, width, ext = max(rgb, key=lambda k: rgb[k])
    padded = all(k[1] == width for k in groups if k[0] == prefix and k[2] == ext)
    field = f"{{:0{width}d}}" if padded and width > 1 else "{:d}"
    return f"{prefix}{field}{ext}", lowest[(prefix, width, ext)]


def _kind(path: Path) -> str:
    if path.is_dir():
        return "folder"
    if path.suffix.lower() in VIDEO_EXTENSIONS or path.is_file():
        return "video"
    return "folder"  # a missing path without an extension: a frame folder id


def make_reader(
    dataset: VideoDataset,
    *,
    threads: int | None = None,
    jpeg_decoder: Literal["auto", "simplejpeg", "pil"] = "auto",
) -> ClipReader:
    """The reader for ``dataset``: video files or frame folders, decided from its records (a
    dataset is one or the other). A frame folder template not given by the annotation format is
    detected from the first folder."""
    if not dataset.records:
        raise ValueError(f"{dataset.root}: the {dataset.split or 'dataset'} split has no records")
    sample = dataset.records[:32]
    kinds = {_kind(r.path) for r in sample}
    if len(kinds) > 1:
        video = next(r.path for r in sample if _kind(r.path) == "video")
        folder = next(r.path for r in sample if _kind(r.path) == "folder")
        raise ValueError(f"dataset mixes video files ({video}) and frame folders ({folder})")
    if kinds == {"video"}:
        return VideoFileReader(threads=threads)
    template, start = dataset.frame_template, dataset.frame_start
    if template is None:
        found = next((r.path for r in sample if r.path.is_dir()), None)
        guess = detect_frame_template(found) if found is not None else None
        template, start = guess or ("{:05d}.jpg", 1)
        log.info("frame folders: file names %r starting at %d", template, start)
    return FrameFolderReader(template, start=start, jpeg_decoder=jpeg_decoder)
