"""One pass over a whole video file, front to back: the decoder for timelines and streaming.

:class:`~gateshift.data.readers.VideoFileReader` reads a few frames of a short clip per call,
seeking as it goes. A timeline (``gateshift timeline``) instead slides overlapping windows over a
long video: re-reading each window would decode every frame several times, so
:class:`VideoStream` decodes the file once and hands over the frames as they come, keeping
none of them. The caller keeps what it needs (see :mod:`gateshift.deploy.windows`), so memory
follows the caller, not the length of the video.

Frames are numbered as the reader numbers them (:mod:`gateshift.data._pyav`): on the stream's
time grid, so a wanted-frame list lets H.264 non-reference frames nobody wants go undecoded.
A stream whose timestamps leave the grid is decoded again from the start, numbered by
counting, and the frames already handed over are not handed over again. Only wanted frames
need converting to RGB (:meth:`VideoStream.rgb`), by one reused swscale context.

:func:`read_ahead` runs the decoding in a thread of its own (FFmpeg releases the GIL), a bounded
number of frames ahead of the consumer, so decoding and the network overlap on different cores
instead of competing for the same ones.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import av.error
import numpy as np
import torch
from torch import Tensor

from gateshift.data import _pyav
from gateshift.data.records import BadVideoError

log = logging.getLogger(__name__)

T = TypeVar("T")
_END = object()


class _Upcoming:
    """The wanted frame numbers not yet reached, drawn lazily from a sorted iterator.

    The decoder asks about numbers near its position (packets arrive in decode order, a few
    frames off presentation order), so only numbers up to the largest one asked about are held:
    an hour-long plan never sits in memory whole.
    """

    def __init__(self, numbers: Iterable[int]) -> None:
        self._source = iter(numbers)
        self._queue: deque[int] = deque()
        self._set: set[int] = set()
        self._max = -1
        self._done = False

    def _fill(self, upto: int) -> None:
        while not self._done and self._max < upto:
            number = next(self._source, None)
            if number is None:
                self._done = True
            elif number > self._max:  # sorted; repeats collapse
                self._max = number
                self._queue.append(number)
                self._set.add(number)

    def __contains__(self, number: object) -> bool:
        if not isinstance(number, int):
            return False
        self._fill(number)
        return number in self._set

    def first(self) -> int | None:
        """The smallest wanted number not yet handed over (None: nothing left)."""
        if not self._queue:
            self._fill(self._max + 1)
        return self._queue[0] if self._queue else None

    def pop(self) -> None:
        self._set.discard(self._queue.popleft())


class VideoStream:
    """A video file decoded once, front to back.

    ``meta`` (frame count, size, rate) is read on construction: a missing or unreadable file
    raises :class:`BadVideoError` there, before anything else happens. ``threads``: decoder
    threads (None: up to 4, the cores this process may use).
    """

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        self.path = Path(path)
        self.meta = _pyav.read_meta(self.path)
        self.threads = threads
        self.frames_decoded = 0
        self._reformatter = _pyav.VideoReformatter()

    @property
    def fps(self) -> float:
        if not self.meta.fps:
            raise BadVideoError(self.path, "unknown frame rate")
        return self.meta.fps

    def frames(self, wanted: Iterable[int] | None = None) -> Iterator[tuple[int, Any]]:
        """``(number, av.VideoFrame)`` in increasing order: every frame (``wanted`` None) or
        those of the sorted ``wanted`` numbers. :class:`BadVideoError` when the video ends
        before a wanted frame (or its data is damaged)."""
        targets = None if wanted is None else _Upcoming(wanted)
        given = [-1]  # last number handed over, shared with _pass
        for on_grid in (True, False):
            try:
                yield from self._pass(on_grid, targets, given)
                return
            except _pyav.OffGridError:
                log.debug("%s: timestamps off the frame grid; decoding by counting", self.path)
            except av.error.FFmpegError as err:
                raise BadVideoError(self.path, f"corrupt: {_pyav.describe(err)}") from err
        raise AssertionError("unreachable: counting never leaves the grid")  # pragma: no cover

    def _pass(
        self, on_grid: bool, targets: _Upcoming | None, given: list[int]
    ) -> Iterator[tuple[int, Any]]:
        with _pyav.open_video(self.path) as container:
            ctx = container.streams.video[0].codec_context
            ctx.thread_count = self.threads or _default_threads()
            ctx.thread_type = "AUTO"
            decoder = _pyav.Decoder(
                container, self.path, self.meta, seek_gap=1 << 62, skip=targets is not None
            )
            frames = decoder.iter_on_grid(targets or ()) if on_grid else decoder.iter_counting()
            try:
                for number, frame in frames:
                    if number <= given[0]:
                        continue  # decoding again after leaving the grid: handed over already
                    expected = given[0] + 1 if targets is None else targets.first()
                    if expected is None:
                        return
                    if number > expected:  # the grid jumped over a frame
                        raise _pyav.OffGridError
                    if number == expected:
                        given[0] = number
                        if targets is not None:
                            targets.pop()
                        yield number, frame
                if targets is not None and targets.first() is not None:
                    raise BadVideoError(
                        self.path,
                        f"truncated: decoded {given[0] + 1} of {self.meta.num_frames} frames",
                    )
            finally:
                self.frames_decoded += decoder.frames_decoded

    def rgb(self, frame: Any) -> Tensor:
        """``(3, H, W)`` uint8 RGB of a decoded frame (channels-last memory, see ``readers``),
        at the video's size."""
        buffer = np.empty((1, self.meta.height, self.meta.width, 3), np.uint8)
        try:
            _pyav.frames_to_rgb([frame], buffer, self._reformatter)
        except av.error.FFmpegError as err:
            raise BadVideoError(self.path, f"corrupt: {err}") from err
        return torch.from_numpy(buffer[0]).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)


def _default_threads() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(4, cores or 1))


class _Producer(threading.Thread):
    """Puts ``(item, None)`` from ``items``, then ``(_END, error or None)``, into ``out``."""

    def __init__(self, items: Iterator[Any], out: queue.Queue[Any]) -> None:
        super().__init__(name="gateshift-decode", daemon=True)
        self.items, self.out, self.stop = items, out, threading.Event()

    def _put(self, entry: tuple[Any, BaseException | None]) -> bool:
        while not self.stop.is_set():
            try:
                self.out.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            for item in self.items:
                if not self._put((item, None)):
                    return
            self._put((_END, None))
        except BaseException as err:  # handed to the consumer
            self._put((_END, err))
        finally:
            close = getattr(self.items, "close", None)
            if close is not None:
                close()


def read_ahead(items: Iterator[T], size: int) -> Iterator[T]:
    """``items`` produced by a background thread at most ``size`` ahead; its exceptions are
    raised here, in order, and closing this generator stops the thread (and closes ``items``)."""
    ahead: queue.Queue[Any] = queue.Queue(maxsize=max(1, size))
    worker = _Producer(items, ahead)
    worker.start()
    try:
        while True:
            item, err = ahead.get()
            if item is _END:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        worker.stop.set()
        worker.join()
