"""Sliding windows over a video decoded once: which frames each window samples, and holding
only those frames, only while a window still needs them.

A :class:`WindowPlan` lays windows of ``window_s`` seconds every ``stride_s`` seconds over a
video of ``num_frames`` frames at ``fps`` (frame ``n`` is at time ``n / fps``, the numbering of
:mod:`gateshift.data.readers`). Every window holds the same number of frames,
``L = round(window_s * fps)``; window ``k`` starts at frame ``round(k * stride_s * fps)`` (starts
closer than one frame collapse); when the last of them stops short of the video's end, one more
window ends exactly there, so every frame lies in some window. Inside a window the frames are
the run's test sampling of ``L`` frames (:func:`gateshift.data.sampling.build_sampler`,
``"test"``): the same offsets for every window, the frames a clip of ``L`` frames cut out of the
video would give ``gateshift predict``.

:class:`WindowAssembler` takes frames in increasing order from a one-pass decoder
(:class:`gateshift.data.stream.VideoStream`), keeps a frame only if an unfinished window samples
it, hands out each window's frames as soon as its last sampled frame has arrived, and then drops
every frame no later window needs. It holds at most the sampled frames of the windows that
overlap the current frame: ``ceil(L / stride) + 1`` windows of ``num_clips * T`` frames, however
long the video (``max_held`` records the most it held). A live source can use it unchanged.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from gateshift.data.records import FrameSampler


@dataclass(frozen=True)
class Window:
    """Window ``index``: frames ``[start_frame, end_frame)``; ``positions``: the frames its
    clips sample, ``(num_clips, T)`` absolute frame numbers."""

    index: int
    start_frame: int
    end_frame: int
    positions: Tensor
    fps: float

    @property
    def start(self) -> float:
        return self.start_frame / self.fps

    @property
    def end(self) -> float:
        return self.end_frame / self.fps

    @property
    def centre(self) -> float:
        return (self.start + self.end) / 2


class WindowPlan:
    """The windows over a video (see the module docstring). ``name`` names the video in
    errors: a window longer than the video and a stride that is not positive are refused."""

    def __init__(
        self,
        num_frames: int,
        fps: float,
        *,
        window_s: float,
        stride_s: float,
        sampler: FrameSampler,
        name: str = "the video",
    ) -> None:
        # the window first: the default stride is a quarter of it, so --window 0 is the error
        if not window_s > 0:
            raise ValueError(f"--window must be positive, got {window_s:g} s")
        if not stride_s > 0:
            raise ValueError(f"--stride must be positive, got {stride_s:g} s")
        duration = num_frames / fps
        length = max(1, round(window_s * fps))
        if length > num_frames:
            raise ValueError(
                f"--window {window_s:g} s is longer than {name} ({duration:.3f} s, "
                f"{num_frames} frames at {fps:g} fps): choose --window <= {duration:.3f}"
            )
        self.num_frames, self.fps, self.length = num_frames, fps, length
        self.window_s, self.stride_s = window_s, stride_s
        self.offsets = sampler(length, torch.Generator())  # (num_clips, T), within [0, L)
        self.starts = self._starts(stride_s * fps)

    def _starts(self, stride: float) -> list[int]:
        last = self.num_frames - self.length  # the latest start that still fits
        starts: list[int] = []
        for k in range(math.floor(last / stride) + 1):
            start = round(k * stride)
            if start <= last and (not starts or start > starts[-1]):
                starts.append(start)
        if starts[-1] < last:  # one more window ends at the last frame
            starts.append(last)
        return starts

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def __len__(self) -> int:
        return len(self.starts)

    def __iter__(self) -> Iterator[Window]:
        for index, start in enumerate(self.starts):
            positions = self.offsets + start
            yield Window(index, start, start + self.length, positions, self.fps)

    def wanted(self) -> Iterator[int]:
        """The frames any window samples, sorted, each once (lazily: an hour-long plan is never
        listed whole). Frames before a window's start are final: later windows start later."""
        pending: set[int] = set()
        for window in self:
            ready = sorted(n for n in pending if n < window.start_frame)
            yield from ready
            pending.difference_update(ready)
            pending.update(window.positions.flatten().tolist())
        yield from sorted(pending)


class WindowAssembler:
    """Frames in, finished windows out (see the module docstring).

    ``keep`` maps a frame to what is stored (e.g. resized to the network's short side, so the
    frames held are small); the frames of a finished window come back stacked in its sampling
    order, ``(num_clips * T, ...)``.
    """

    def __init__(self, plan: WindowPlan, keep: Callable[[Tensor], Tensor] | None = None) -> None:
        self._upcoming = iter(plan)
        self._next: Window | None = next(self._upcoming, None)
        self._open: deque[Window] = deque()
        self._needed: set[int] = set()
        self._frames: dict[int, Tensor] = {}
        self._keep = keep
        self.max_held = 0
        self.last = -1  # the last frame number pushed

    @property
    def held(self) -> int:
        return len(self._frames)

    @property
    def done(self) -> bool:
        return self._next is None and not self._open

    def _open_up_to(self, number: int) -> None:
        while self._next is not None and self._next.start_frame <= number:
            self._open.append(self._next)
            self._needed.update(self._next.positions.flatten().tolist())
            self._next = next(self._upcoming, None)

    def wants(self, number: int) -> bool:
        """Whether frame ``number`` (the next one pushed or later) is sampled by some window."""
        self._open_up_to(number)
        return number in self._needed

    def push(
        self, number: int, frame: Tensor | Callable[[], Tensor]
    ) -> list[tuple[Window, Tensor]]:
        """Offer frame ``number`` (increasing from call to call; a callable is only called when
        the frame is kept); returns the windows it finished with their frames."""
        if number <= self.last:
            raise ValueError(f"frames must come in increasing order: {number} after {self.last}")
        self.last = number
        if self.wants(number):
            value = frame() if callable(frame) else frame
            self._frames[number] = self._keep(value) if self._keep else value
            self.max_held = max(self.max_held, len(self._frames))
        finished = []
        while self._open and int(self._open[0].positions.max()) <= number:
            window = self._open.popleft()
            order = window.positions.flatten().tolist()
            finished.append((window, torch.stack([self._frames[n] for n in order])))
        if finished:
            self._needed = {n for w in self._open for n in w.positions.flatten().tolist()}
            for n in [n for n in self._frames if n not in self._needed]:
                del self._frames[n]
        return finished

    def missing(self) -> int:
        """Windows not finished yet: after the last frame, those the video ended too early for."""
        rest = 0 if self._next is None else sum(1 for _ in self._upcoming) + 1
        return len(self._open) + rest
