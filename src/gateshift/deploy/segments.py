"""From classified windows to a timeline of labelled segments, as the windows come in.

The starts and ends of all windows cut the video into *cells*, stretches of time that the same
windows cover (with the default stride of a quarter window, cells are one stride long and lie
in four windows). A cell takes the most likely class of the most confident window covering it
(the one with the highest top-1 probability; between windows further apart than their length,
each half of the gap goes to the window next to it). Why not the window centred on it:
a window that straddles a change of action sees half of each and is unsure, often wrong, while a
window inside one action is sure. On the embedded dataset's long videos (``gateshift data
synthetic --long``, the demo's GSM) the centred window got 0.65 of the frames right, the mean
of the covering windows' probabilities 0.81, the most confident covering window 0.87.

A *segment* is a maximal run of consecutive cells with the same class; its score is the mean of
its cells' probabilities, weighted by their length. Cells tile the video from 0 to its end, so
segments do too, and the label of any instant is the label of the segment holding it.

:class:`SegmentBuilder` works online: a cell is final once a window starting at or after its end
has come in (no later window can cover it), a segment once a cell of another class follows, so a
streaming caller (and ``--annotate``, which burns the label into each frame) lags by about one
window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class WindowResult:
    """A classified window: its time span and the top classes (name, probability), best first."""

    start: float
    end: float
    top: list[tuple[str, float]]

    @property
    def centre(self) -> float:
        return (self.start + self.end) / 2

    @property
    def label(self) -> str:
        return self.top[0][0]

    @property
    def prob(self) -> float:
        return self.top[0][1]


@dataclass(frozen=True)
class Cell:
    """The stretch of time one window decides."""

    start: float
    end: float
    label: str
    prob: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    label: str
    score: float


@dataclass
class _Run:
    start: float
    end: float
    label: str
    weighted: float = 0.0  # sum of probability x cell length

    def add(self, cell: Cell) -> None:
        self.end = cell.end
        self.weighted += cell.prob * (cell.end - cell.start)

    def close(self) -> Segment:
        length = self.end - self.start
        return Segment(self.start, self.end, self.label, self.weighted / length if length else 0.0)


class SegmentBuilder:
    """Windows in (in time order), final cells and segments out."""

    def __init__(self) -> None:
        self._open: deque[WindowResult] = deque()  # windows that may cover a cell not final yet
        self._previous: WindowResult | None = None  # the last window dropped from _open
        self._bounds: set[float] = set()  # window starts and ends after the last final cell
        self._cell_start = 0.0
        self._run: _Run | None = None
        self.cells: list[Cell] = []  # final cells not yet taken by the caller
        self.segments: list[Segment] = []  # every final segment so far

    def add(self, window: WindowResult) -> None:
        if self._open and window.start <= self._open[-1].start:
            raise ValueError("windows must come in time order")
        if self._open and window.start > self._open[-1].end:  # a gap: split it halfway
            self._bounds.add((self._open[-1].end + window.start) / 2)
        self._open.append(window)
        self._bounds.update((window.start, window.end))
        self._close_cells(window.start)

    def finish(self, duration_s: float) -> list[Segment]:
        """Close the remaining cells, the last one at the video's end; returns every segment."""
        if self._open:
            end = max(duration_s, self._open[-1].end)
            self._bounds.add(end)
            self._close_cells(end)
        if self._run is not None:
            self.segments.append(self._run.close())
            self._run = None
        return self.segments

    def partial(self) -> list[Segment]:
        """The segments so far, the open one cut at the last final cell (for a partial file)."""
        return self.segments + ([self._run.close()] if self._run is not None else [])

    def take_cells(self) -> list[Cell]:
        cells, self.cells = self.cells, []
        return cells

    def _close_cells(self, upto: float) -> None:
        """Every cell ending at or before ``upto`` is final."""
        for end in sorted(b for b in self._bounds if self._cell_start < b <= upto):
            self._add_cell(self._cell_start, end)
            self._cell_start = end
        self._bounds = {b for b in self._bounds if b > self._cell_start}
        while len(self._open) > 1 and self._open[0].end <= self._cell_start:
            self._previous = self._open.popleft()

    def _add_cell(self, start: float, end: float) -> None:
        covering = [w for w in self._open if w.start <= start and w.end >= end]
        if covering:
            best = max(covering, key=lambda w: w.prob)  # the first of equals: the earliest
        else:  # a gap between windows
            near = [*self._open, *([self._previous] if self._previous else [])]
            best = min(near, key=lambda w: abs(w.centre - (start + end) / 2))
        cell = Cell(start, end, best.label, best.prob)
        self.cells.append(cell)
        if self._run is not None and self._run.label != cell.label:
            self.segments.append(self._run.close())
            self._run = None
        if self._run is None:
            self._run = _Run(cell.start, cell.start, cell.label)
        self._run.add(cell)


def merge_windows(windows: Sequence[WindowResult], duration_s: float) -> list[Segment]:
    """The segments of a whole list of windows (see the module docstring)."""
    builder = SegmentBuilder()
    for window in windows:
        builder.add(window)
    return builder.finish(duration_s)
