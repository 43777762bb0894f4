"""Selective decoding: send the decoder only the packets the wanted frames depend on.

TSN sampling asks for 8 frames spread over a video. Decoding every frame up to the last one
asked for wastes most of the work when the video has several key frames: a frame depends only on
the packets from the key frame that opens its group of pictures (GOP) up to itself, in decode
order. So the packets are demuxed in order (cheap: ~7 us a packet, no decoding) and held back
per GOP; when a wanted frame's packet arrives, the held-back packets of its GOP are sent, the
unwanted ones with ``skip_frame="NONREF"`` (a non-reference frame is read by nobody, so skipping
it changes no other frame), the wanted one with ``"DEFAULT"``. A GOP with no wanted frame is never
decoded. Before the first packet of the next GOP is sent the decoder is drained and flushed,
exactly as after a seek, and a far-away frame is reached with a real seek (to the key frame before
it), so long videos are not read through.

This is exact only where a key frame really starts an independent GOP. The walk refuses
(:class:`UnsafeSkipError`, and the reader decodes that file sequentially) when a stream does not
start with a key frame, when a packet after a key frame shows an earlier time (a leading picture
of an open GOP, which may refer to the GOP before), when the frame decoded from a key frame packet
is not a key frame to the decoder, or when a seek lands anywhere but on a key frame at or before
its target. Frames are identified by timestamp on the reader's frame grid, never by a counter,
so seeking cannot shift the numbering; a timestamp off the grid raises
:class:`~gateshift.data._pyav.OffGridError` (numbering by counting takes over).

FFmpeg (through PyAV) is the maintained decoder; PyAV exposes no container index, so the walk
learns the key frames from the packets' flags as it demuxes instead.
"""

from __future__ import annotations

from typing import Any

from gateshift.data._pyav import Decoder, OffGridError, _Clock


class UnsafeSkipError(Exception):
    """The stream's GOP structure does not allow skipping safely: decode it sequentially."""


class _Walk:
    """State of one selective decode; see the module docstring."""

    def __init__(self, decoder: Decoder, wanted: list[int]) -> None:
        meta = decoder.meta
        if not meta.frames_per_pts or meta.t0 is None:
            raise OffGridError
        self.decoder = decoder
        self.ctx = decoder.stream.codec_context
        self.clock = _Clock(meta.t0, meta.frames_per_pts)
        self.want = set(wanted)
        self.remaining = set(wanted)  # wanted frames whose packet has not been sent yet
        self.got: dict[int, Any] = {}
        self.pending: list[tuple[int, Any]] = []  # packets of this GOP held back
        self.key: int | None = None  # number of the key frame opening this GOP
        self.check_key = False  # the next frame out must be the key frame, flagged as such
        self.fed = False  # packets sent since the last flush
        self.skipping: bool | None = None
        self.last_out = -1
        self.position = -1  # number of the last packet seen

    def packet(self, packet: Any) -> None:
        number = self.clock.index(packet.pts)
        if packet.is_keyframe:
            self.drain()
            self.pending, self.key = [], number
        elif self.key is None:
            raise UnsafeSkipError("stream does not start with a key frame")
        elif number < self.key:
            raise UnsafeSkipError("leading picture before its key frame (open GOP)")
        self.position = number
        self.pending.append((number, packet))
        if number in self.remaining:
            for n, p in self.pending:
                self.send(n, p)
            self.pending = []

    def send(self, number: int, packet: Any) -> None:
        drop = number not in self.want
        if drop != self.skipping:
            self.ctx.skip_frame = "NONREF" if drop else "DEFAULT"
            self.skipping = drop
        if number == self.key:
            self.check_key = True
        self.remaining.discard(number)
        self.fed = True
        self.take(self.ctx.decode(packet))

    def take(self, frames: list[Any]) -> None:
        for frame in frames:
            self.decoder.frames_decoded += 1
            if frame.pts is None:
                raise OffGridError
            number = self.clock.index(frame.pts)
            if number <= self.last_out:
                raise OffGridError
            if self.check_key:
                if number != self.key or not frame.key_frame:
                    raise UnsafeSkipError(f"frame {number} did not decode as a key frame")
                self.check_key = False
            self.last_out = self.decoder.last = number
            if number in self.want:
                self.got[number] = frame

    def drain(self) -> None:
        """Take the decoder's delayed frames and reset it for a new GOP (what a seek does)."""
        if self.fed:
            self.take(self.ctx.decode(None))
            self.ctx.flush_buffers()
            self.fed = False
            self.skipping = None


def decode_selective(decoder: Decoder, wanted: list[int]) -> dict[int, Any]:
    """Decode the wanted frames (sorted, unique, absolute numbers) sending only the packets they
    depend on; :class:`UnsafeSkipError` or :class:`OffGridError` when that is not safe."""
    walk = _Walk(decoder, wanted)
    sought: set[int] = set()
    packets = decoder._packets()
    while walk.remaining:
        target = min(walk.remaining)
        if target - walk.position > decoder.seek_gap and target not in sought:
            sought.add(target)
            packets = _seek(decoder, walk, target)
        packet = next(packets, None)
        if packet is None:
            break
        if packet.size and packet.pts is None:
            raise OffGridError
        if packet.size:
            walk.packet(packet)
    walk.drain()
    if len(walk.got) < len(wanted):
        if walk.remaining:  # packets ran out before a wanted frame
            raise decoder._truncated(walk.position)
        raise OffGridError  # sent but never came out at its time: the grid is wrong
    return walk.got


def _seek(decoder: Decoder, walk: _Walk, target: int) -> Any:
    """Seek to the key frame at or before ``target``; the packets from there."""
    walk.drain()
    # half a frame early so rounding never passes the target
    stream = decoder.stream
    decoder.container.seek(walk.clock.pts(target - 0.5), backward=True, stream=stream)
    walk.pending, walk.key = [], None
    packets = decoder._packets()
    first = next(packets, None)
    while first is not None and not first.size:
        first = next(packets, None)
    if first is None or first.pts is None or not first.is_keyframe:
        raise UnsafeSkipError("seek did not land on a key frame")
    if walk.clock.index(first.pts) > target:
        raise UnsafeSkipError("seek landed after its target")
    # A key frame behind frames already taken (a GOP longer than the gap): they decode again,
    # identical, so numbering restarts from the landing point.
    walk.position = walk.last_out = -1
    walk.packet(first)
    return packets
