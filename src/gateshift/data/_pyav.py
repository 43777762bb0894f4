"""PyAV internals of :class:`~gateshift.data.readers.VideoFileReader`: open, count, decode.

Frame numbering. Frame ``n`` of a video is its ``n``-th frame in presentation order. For a
constant-frame-rate stream that is the frame whose timestamp is ``start + n / fps``, which is what
``ffmpeg -i video %05d.jpg`` extracts, so a video and the frame folder made from it agree. The
decoder works on that time grid (``_Clock``): it maps timestamps to frame numbers, which lets it
seek into long videos (EPIC-KITCHENS) and skip frames nobody asked for. Every decoded timestamp is
checked against the grid; a variable-rate stream fails the check and is decoded again from the
start, counting frames, so numbering stays exact either way.

Speed (see the module docstring of ``readers``): the container is opened once per read, with
find-stream-info told the pixel format and to skip decoding (otherwise it decodes the first frame
only to learn the pixel format: 2-3 ms of a ~12 ms clip); non-reference frames nobody asked for
are not decoded (``skip_frame``, per packet: H.264 B-frames; VP9 ignores it); decoding stops at the
last frame asked for; only the frames returned are converted to RGB, by one reused swscale context.
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import av.error
from av.video.reformatter import VideoReformatter

from gateshift.data.records import BadVideoError

# Options for avformat_find_stream_info only (PyAV does not apply them to its own decoder).
# With a pixel-format hint and skip_frame it stops without decoding a frame; the real decoder
# still reads the pixel format from the bitstream (a yuv444p or RGB stream decodes exactly).
OPEN_OPTIONS = {"pixel_format": "yuv420p", "skip_frame": "all"}
# Containers whose stream header frame count (mp4 `stts` sample counts) can be trusted.
_COUNTED_FORMATS = ("mov", "mp4")
# A decoded timestamp further than this from the frame grid means a variable frame rate.
_GRID_TOLERANCE = 0.2


class OffGridError(Exception):
    """The stream's timestamps do not follow its frame rate: number frames by counting."""


@dataclass(frozen=True)
class VideoMeta:
    """Facts about a whole video file, cached per path by the reader."""

    num_frames: int
    width: int
    height: int
    fps: float | None
    t0: int | None  # pts of frame 0
    frames_per_pts: float  # time_base * fps; 0 when the grid is unknown


@dataclass(frozen=True)
class _Clock:
    t0: int
    frames_per_pts: float

    def index(self, pts: int) -> int:
        x = (pts - self.t0) * self.frames_per_pts
        n = round(x)
        if abs(x - n) > _GRID_TOLERANCE:
            raise OffGridError
        return n

    def pts(self, index: float) -> int:
        return self.t0 + math.floor(index / self.frames_per_pts)


def open_video(path: Path) -> Any:
    """Open a container; a missing or unreadable file becomes :class:`BadVideoError`."""
    if not path.exists():
        raise BadVideoError(path, "missing")
    if not path.is_file():
        raise BadVideoError(path, "not a file")
    try:
        container = av.open(str(path), options=OPEN_OPTIONS)
    except av.error.FFmpegError as err:
        raise BadVideoError(path, f"corrupt: {describe(err)}") from err
    if not container.streams.video:
        container.close()
        raise BadVideoError(path, "corrupt: no video stream")
    return container


def describe(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def read_meta(path: Path) -> VideoMeta:
    """Frame count, size, rate and time grid of a video, without decoding (except a frame when
    the container does not know the frame size)."""
    with open_video(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else None
        t0 = stream.start_time
        grid = float(stream.time_base * rate) if (rate and stream.time_base) else 0.0
        try:
            count = _count_frames(container, stream)
            width, height = stream.codec_context.width, stream.codec_context.height
            if count and not (width and height):
                frame = next(container.decode(stream))
                width, height = frame.width, frame.height
        except (av.error.FFmpegError, StopIteration) as err:
            raise BadVideoError(path, f"corrupt: {describe(err)}") from err
        expected = _frames_from_duration(container, stream, fps)
    if count == 0:
        raise BadVideoError(path, "zero frames")
    if expected is not None and count + 1 < expected:
        # A cut Matroska/WebM file keeps the duration its header was written with.
        raise BadVideoError(path, f"truncated: {count} frames, the duration implies {expected}")
    return VideoMeta(count, width, height, fps, t0, grid if t0 is not None else 0.0)


def _frames_from_duration(container: Any, stream: Any, fps: float | None) -> int | None:
    """Frames the header's duration implies, where the header does not also give the count."""
    if not fps or stream.frames > 0:
        return None
    if stream.duration is not None and stream.time_base:
        seconds = float(stream.duration * stream.time_base)
    elif "DURATION" in stream.metadata:  # Matroska per-stream tag, "HH:MM:SS.nnnnnnnnn"
        h, m, s = stream.metadata["DURATION"].split(":")
        seconds = int(h) * 3600 + int(m) * 60 + float(s)
        if stream.start_time and stream.time_base:  # the tag is the end time, not a length
            seconds -= float(stream.start_time * stream.time_base)
    elif len(container.streams) == 1 and container.duration:
        seconds = container.duration / 1_000_000
    else:
        return None
    return round(seconds * fps)


def _count_frames(container: Any, stream: Any) -> int:
    # mp4/mov store the sample count in the header; Matroska/WebM and AVI are counted by
    # demuxing without decoding (one packet per frame, VP9 hidden frames ride in superframes).
    # Measured on a 4 s 12 fps webm: 0.3 ms, against 12 ms to decode it.
    if stream.frames > 0 and any(f in container.format.name.split(",") for f in _COUNTED_FORMATS):
        return int(stream.frames)
    return sum(1 for packet in container.demux(stream) if packet.size)


class Decoder:
    """Decodes the wanted frames (sorted, unique, absolute numbers) of one open container."""

    def __init__(
        self, container: Any, path: Path, meta: VideoMeta, *, seek_gap: int, skip: bool
    ) -> None:
        self.container = container
        self.stream = container.streams.video[0]
        self.path = path
        self.meta = meta
        self.seek_gap = seek_gap
        self.skip = skip
        self.frames_decoded = 0
        self.last = -1  # number of the last frame decoded

    def _packets(self) -> Iterator[Any]:
        """Demux; a read error (data the index promises is not there) means a cut file."""
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as err:
                reason = f"{self._truncated(self.last).reason} ({describe(err)})"
                raise BadVideoError(self.path, reason) from err
            if packet.is_corrupt:  # short read: cut at the end of the file, else damaged
                if packet.pos is not None and packet.pos + packet.size >= self.path.stat().st_size:
                    raise self._truncated(self.last)
                raise BadVideoError(self.path, f"corrupt: damaged packet after frame {self.last}")
            yield packet

    def decode_on_grid(self, wanted: list[int]) -> dict[int, Any]:
        """Decode by timestamps, seeking over long gaps; :class:`OffGridError` when the stream
        does not keep to its frame rate."""
        if not self.meta.frames_per_pts or self.meta.t0 is None:
            raise OffGridError
        clock = _Clock(self.meta.t0, self.meta.frames_per_pts)
        want = set(wanted)
        got: dict[int, Any] = {}
        frames: Iterator[tuple[int, Any]] | None = None
        pos = -1  # number of the last frame decoded
        for target in wanted:
            if target in got:
                continue
            # A seek lands on the keyframe at or before the target; for a target close to the
            # current position, decoding on is cheaper than a seek that may land further back.
            if target > self.seek_gap and target - pos > self.seek_gap:
                frames = self._frames(clock, want, seek_to=target)
            elif frames is None:
                frames = self._frames(clock, want)
            for number, frame in frames:
                pos = number
                if number in want:
                    got[number] = frame
                if number >= target:
                    break
            else:
                raise self._truncated(pos)
            if target not in got:  # the grid jumped over it: timestamps disagree with the rate
                raise OffGridError
        return got

    def iter_on_grid(self, want: Container[int]) -> Iterator[tuple[int, Any]]:
        """Every frame from the start with its grid number, for one pass over a whole video
        (with ``skip``, non-reference frames not in ``want`` are not decoded).
        :class:`OffGridError` when the stream does not keep to its frame rate."""
        if not self.meta.frames_per_pts or self.meta.t0 is None:
            raise OffGridError
        yield from self._frames(_Clock(self.meta.t0, self.meta.frames_per_pts), want)

    def iter_counting(self) -> Iterator[tuple[int, Any]]:
        """Every frame from the start, numbered by counting (any stream)."""
        for packet in self._packets():
            for frame in packet.decode():
                self.frames_decoded += 1
                self.last += 1
                yield self.last, frame

    def _frames(
        self, clock: _Clock, want: Container[int], seek_to: int | None = None
    ) -> Iterator[tuple[int, Any]]:
        stream, ctx = self.stream, self.stream.codec_context
        if seek_to is not None:  # half a frame early so rounding never passes the target
            self.container.seek(clock.pts(seek_to - 0.5), backward=True, stream=stream)
        skipping = False
        last = -1
        for packet in self._packets():
            if self.skip and packet.pts is not None:
                # Only non-reference frames are dropped, so every wanted frame decodes as usual.
                drop = round((packet.pts - clock.t0) * clock.frames_per_pts) not in want
                if drop != skipping:
                    ctx.skip_frame = "NONREF" if drop else "DEFAULT"
                    skipping = drop
            for frame in packet.decode():
                self.frames_decoded += 1
                if frame.pts is None:
                    raise OffGridError
                number = clock.index(frame.pts)
                if number <= last:
                    raise OffGridError
                last = self.last = number
                yield number, frame

    def decode_counting(self, wanted: list[int]) -> dict[int, Any]:
        """Decode from the start, numbering frames by counting (any stream, no seeking)."""
        want = set(wanted)
        got: dict[int, Any] = {}
        for packet in self._packets():
            for frame in packet.decode():
                self.frames_decoded += 1
                self.last += 1
                if self.last in want:
                    got[self.last] = frame
                    if self.last == wanted[-1]:
                        return got
        raise self._truncated(self.last)

    def _truncated(self, last: int) -> BadVideoError:
        return BadVideoError(
            self.path, f"truncated: decoded {last + 1} of {self.meta.num_frames} frames"
        )


def frames_to_rgb(frames: list[Any], out: Any, reformatter: VideoReformatter) -> None:
    """Convert decoded frames to RGB into ``out`` (N, H, W, 3) uint8; frames of another size
    (a stream that changes resolution) are scaled to the first frame's."""
    height, width = out.shape[1:3]
    for row, frame in enumerate(frames):
        rgb = reformatter.reformat(frame, format="rgb24", width=width, height=height, threads=1)
        out[row] = rgb.to_ndarray()
