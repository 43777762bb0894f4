"""How long the videos of a split typically are: the time scale a model was trained at.

A model trained with TSN segment sampling sees each training video whole, cut into
``num_segments`` segments; a timeline over a long video (``gateshift timeline``) should show
it windows of about that length, so training records the typical clip of its training split in
the inference bundle (``bundle.json``, key ``clips``). "Typical" is the median over up to
``limit`` records spread evenly over the split (a probe reads container headers only, well
under a millisecond a video); records that cannot be probed are left out, not guessed.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from gateshift.data.records import BadVideoError, ClipReader, VideoRecord


@dataclass(frozen=True)
class TypicalClip:
    """Medians over the probed records; ``duration_s`` and ``fps`` are None for frame folders
    (they carry no frame rate)."""

    num_frames: int
    duration_s: float | None
    fps: float | None
    probed: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TypicalClip:
        return cls(
            num_frames=int(data["num_frames"]),
            duration_s=None if data.get("duration_s") is None else float(data["duration_s"]),
            fps=None if data.get("fps") is None else float(data["fps"]),
            probed=int(data.get("probed", 0)),
        )


def typical_clip(
    records: Sequence[VideoRecord], reader: ClipReader, *, limit: int = 64
) -> TypicalClip | None:
    """The median clip of ``records`` (None: none could be probed)."""
    if not records:
        return None
    step = max(1, len(records) // limit)
    frames: list[int] = []
    durations: list[float] = []
    rates: list[float] = []
    for record in records[::step][:limit]:
        try:
            info = reader.probe(record)
        except (BadVideoError, OSError):
            continue
        frames.append(info.num_frames)
        if info.duration_s:
            durations.append(info.duration_s)
        if info.fps:
            rates.append(info.fps)
    if not frames:
        return None
    return TypicalClip(
        num_frames=round(statistics.median(frames)),
        duration_s=statistics.median(durations) if durations else None,
        fps=statistics.median(rates) if rates else None,
        probed=len(frames),
    )
