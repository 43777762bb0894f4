"""Timeline files: JSON, CSV or SRT, chosen by the file's extension, always written atomically.

* ``.json``: ``{"video", "duration_s", "window_s", "stride_s", "complete", "windows": [{"start",
  "end", "top": [[label, prob], ...]}], "segments": [{"start", "end", "label", "score"}]}``,
  plus ``"truth"`` (see :mod:`.timeline_truth`) when scored and ``"error"`` when the video
  could not be read to its end.
* ``.csv``: one row per segment, ``start,end,label,score`` (seconds, probability).
* ``.srt``: one subtitle per segment, ``label (score %)``, to watch next to the video.

A file is written to a temporary name in its folder and renamed over the target, so a reader
(or a crash in the middle) never sees half a file: the target holds the previous complete
version or the new one. The timeline rewrites its file this way while it runs, so an
interrupted run leaves the windows done so far (``"complete": false``).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gateshift._files import publish
from gateshift.deploy.segments import Segment, WindowResult

Format = Literal["json", "csv", "srt"]
FORMATS: tuple[Format, ...] = ("json", "csv", "srt")


@dataclass
class Timeline:
    video: str
    duration_s: float
    window_s: float
    stride_s: float
    windows: list[WindowResult] = field(default_factory=list)
    segments: list[Segment] = field(default_factory=list)
    complete: bool = False
    truth: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "video": self.video,
            "duration_s": round(self.duration_s, 6),
            "window_s": round(self.window_s, 6),
            "stride_s": round(self.stride_s, 6),
            "complete": self.complete,
            "windows": [
                {
                    "start": round(w.start, 6),
                    "end": round(w.end, 6),
                    "top": [[name, round(p, 6)] for name, p in w.top],
                }
                for w in self.windows
            ],
            "segments": [_segment_dict(s) for s in self.segments],
        }
        if self.truth is not None:
            out["truth"] = self.truth
        if self.error is not None:
            out["error"] = self.error
        return out


def _segment_dict(s: Segment) -> dict[str, Any]:
    return {
        "start": round(s.start, 6),
        "end": round(s.end, 6),
        "label": s.label,
        "score": round(s.score, 6),
    }


def output_format(path: str | Path) -> Format:
    """The format a file name asks for; an error naming the file for any other extension."""
    suffix = Path(path).suffix.lower().lstrip(".")
    for fmt in FORMATS:
        if suffix == fmt:
            return fmt
    raise ValueError(f"--out {path}: unknown timeline format; end the name in .json, .csv or .srt")


def render(timeline: Timeline, fmt: Format) -> str:
    if fmt == "json":
        return json.dumps(timeline.to_dict(), indent=1) + "\n"
    if fmt == "csv":
        return _csv(timeline.segments)
    return _srt(timeline.segments)


def _csv(segments: Sequence[Segment]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["start", "end", "label", "score"])
    for s in segments:
        writer.writerow([f"{s.start:.3f}", f"{s.end:.3f}", s.label, f"{s.score:.4f}"])
    return buffer.getvalue()


def srt_time(seconds: float) -> str:
    """``HH:MM:SS,mmm``."""
    ms = round(seconds * 1000)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def _srt(segments: Sequence[Segment]) -> str:
    blocks = [
        f"{i}\n{srt_time(s.start)} --> {srt_time(s.end)}\n{s.label} ({100 * s.score:.0f} %)\n"
        for i, s in enumerate(segments, start=1)
    ]
    return "\n".join(blocks)


def write_atomic(path: str | Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        publish(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_timeline(path: str | Path, timeline: Timeline) -> None:
    write_atomic(path, render(timeline, output_format(path)))
