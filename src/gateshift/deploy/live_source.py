"""Frames from a file, a camera or a network stream, reconnecting: ``gateshift stream``'s input.

:class:`LiveSource` opens the source with PyAV (FFmpeg does the protocols: a file path,
``/dev/videoN`` through V4L2, ``rtsp://``, ``http(s)://``, ``rtmp://``, ``udp://``, ``srt://``)
and yields ``(time_s, rgb)`` per decoded frame, ``rgb`` a ``(3, H, W)`` uint8 tensor, ``time_s``
the frame's presentation time in seconds since the source's first frame (counted at the
stream's nominal rate where a frame carries no timestamp). Only frames are decoded, one at a
time, front to back: nothing is held (the one-pass decoder of :mod:`gateshift.data.stream` does
the same for files whose length is known; a live source has none).

What ends a source:

- a **file** ends cleanly at its end;
- a **network** source that drops (an error, or an end of stream, which for a live feed is a
  drop) or stalls (no packet for ``timeout_s``) is opened again after a back-off of
  ``backoff_s``, doubling to ``max_backoff_s``, at most ``retries`` times in a row (a
  connection that delivers a frame resets the count); then :class:`SourceError`. Time runs on
  across a reconnection (the wall-clock gap is added) and ``on_reconnect`` is called, so the
  consumer can forget state from before the gap;
- a **camera** that disappears is a :class:`SourceError` at once (re-opening a device that left
  does not bring it back).

A source that cannot be opened is one :class:`SourceError` naming it and FFmpeg's reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import av
import av.error
import torch
from torch import Tensor

from gateshift.data._pyav import describe

log = logging.getLogger(__name__)

SourceKind = Literal["file", "device", "network"]
NETWORK_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://",
                   "srt://")  # fmt: skip


class SourceError(ValueError):
    """A source that cannot be opened or read (any more); the message names it."""


def source_kind(source: str) -> SourceKind:
    if source.lower().startswith(NETWORK_SCHEMES):
        return "network"
    if source.startswith("/dev/video"):
        return "device"
    return "file"


def _open(source: str, kind: SourceKind, timeout_s: float) -> Any:
    options: dict[str, str] = {}
    if source.lower().startswith("rtsp"):
        options["rtsp_transport"] = "tcp"  # UDP loses packets on busy links: broken frames
    try:
        container = av.open(
            source,
            format="v4l2" if kind == "device" else None,
            options=options,
            timeout=timeout_s if kind == "network" else None,
        )
    except (av.error.FFmpegError, OSError) as err:
        raise SourceError(f"cannot open {source}: {describe(err)}") from None
    if not container.streams.video:
        container.close()
        raise SourceError(f"cannot open {source}: it has no video stream")
    return container


class LiveSource:
    """Decoded frames of ``source`` (see the module docstring); iterate over it once."""

    def __init__(
        self,
        source: str,
        *,
        retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        timeout_s: float = 10.0,
        on_reconnect: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.source = source
        self.kind = source_kind(source)
        if self.kind == "file" and not Path(source).is_file():
            raise SourceError(f"cannot open {source}: no such file")
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self.timeout_s = timeout_s
        self.on_reconnect = on_reconnect
        self.sleep = sleep
        self.reconnects = 0
        self._container = _open(source, self.kind, timeout_s)  # fails here, before any work
        video = self._container.streams.video[0]
        rate = video.average_rate or video.guessed_rate
        self.fps = float(rate) if rate else None

    def __iter__(self) -> Iterator[tuple[float, Tensor]]:
        offset, last = 0.0, 0.0
        failures = 0
        container: Any = self._container
        while True:
            got = False
            try:
                for t, rgb in self._decode(container):
                    got, last = True, offset + t
                    yield last, rgb
                reason = f"{self.source}: the stream ended"
            except (av.error.FFmpegError, OSError) as err:
                if self.kind != "network":
                    raise SourceError(f"{self.source}: read failed: {describe(err)}") from None
                reason = f"{self.source}: {describe(err)}"
            finally:
                container.close()
            if self.kind != "network":
                return
            failures = 0 if got else failures + 1
            container, waited = self._reconnect(reason, failures)
            offset = last + waited

    def _reconnect(self, reason: str, failures: int) -> tuple[Any, float]:
        """Open the network source again after back-off; (container, seconds it took)."""
        start = time.monotonic()
        while True:
            if failures >= self.retries:
                raise SourceError(
                    f"{reason}; gave up after {self.retries} reconnection attempts without a frame"
                )
            delay = min(self.max_backoff_s, self.backoff_s * 2**failures)
            log.warning("%s; reconnecting in %.1f s", reason, delay)
            self.sleep(delay)
            try:
                container = _open(self.source, self.kind, self.timeout_s)
            except SourceError as err:
                reason, failures = str(err), failures + 1
                continue
            self.reconnects += 1
            if self.on_reconnect is not None:
                self.on_reconnect()
            return container, time.monotonic() - start

    def _decode(self, container: Any) -> Iterator[tuple[float, Tensor]]:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else self.fps  # the stream's nominal rate
        first: float | None = None
        for count, frame in enumerate(container.decode(stream)):
            stamp = frame.time
            if stamp is None:
                stamp = count / (self.fps or 30.0)
            if first is None:
                first = stamp
            rgb = torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1)
            yield max(0.0, stamp - first), rgb  # (H, W, 3) -> (3, H, W)
