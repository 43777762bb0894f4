"""Scoring a timeline against a true one: frame-level accuracy, segment precision and recall.

A true timeline is a JSON file ``{"segments": [{"start": s, "end": s, "label": name}, ...]}``
(seconds; what ``gateshift data synthetic --long`` writes next to each long video, and what a
person would write by hand). Segments need not cover the whole video: time outside every true
segment is not scored.

* **Frame accuracy**: over the video's frames ``n`` (at time ``n / fps``) that lie in a true
  segment (``start <= t < end``), the share whose predicted label (that of the predicted
  segment holding ``t``) equals the true one.
* **Segment matching**: a predicted segment matches a true segment when they carry the same
  label and their temporal IoU (length of the intersection over length of the union) is at
  least ``iou`` (0.5). Matching is one-to-one, pairs taken greedily by decreasing IoU, so no
  segment counts twice. **Precision** is matched / predicted segments, **recall** matched /
  true segments (each 0 when there is nothing to divide by).
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateshift.deploy.segments import Segment

IOU_THRESHOLD = 0.5


@dataclass(frozen=True)
class TruthScores:
    frame_accuracy: float
    segment_precision: float
    segment_recall: float
    frames: int  # frames scored
    matched: int  # segments matched
    predicted: int
    true: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_truth(path: str | Path) -> list[Segment]:
    """The segments of a true-timeline file, sorted by start; an error naming the file and
    the entry for anything malformed."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        entries = data["segments"]
        if not isinstance(entries, list):
            raise TypeError("'segments' is not a list")
    except FileNotFoundError:
        raise FileNotFoundError(f"--truth {path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"--truth {path}: not a timeline ({{'segments': [...]}}): {err}") from None
    out = []
    for i, entry in enumerate(entries):
        try:
            start, end, label = float(entry["start"]), float(entry["end"]), str(entry["label"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"--truth {path}: segment {i} needs start, end, label: {err}"
            ) from None
        if not (math.isfinite(start) and math.isfinite(end)) or end <= start:
            raise ValueError(f"--truth {path}: segment {i} ends at {end} before its start {start}")
        out.append(Segment(start, end, label, 1.0))
    return sorted(out, key=lambda s: s.start)


def _label_at(segments: Sequence[Segment], starts: Sequence[float], t: float) -> str | None:
    i = bisect.bisect_right(starts, t) - 1
    if i >= 0 and segments[i].start <= t < segments[i].end:
        return segments[i].label
    return None


def frame_accuracy(
    predicted: Sequence[Segment], truth: Sequence[Segment], *, num_frames: int, fps: float
) -> tuple[float, int]:
    """(accuracy, frames scored) over the frames that lie in a true segment."""
    predicted = sorted(predicted, key=lambda s: s.start)
    truth = sorted(truth, key=lambda s: s.start)
    p_starts, t_starts = [s.start for s in predicted], [s.start for s in truth]
    scored = correct = 0
    for n in range(num_frames):
        t = n / fps
        true = _label_at(truth, t_starts, t)
        if true is None:
            continue
        scored += 1
        correct += _label_at(predicted, p_starts, t) == true
    return (correct / scored if scored else 0.0), scored


def iou(a: Segment, b: Segment) -> float:
    inter = max(0.0, min(a.end, b.end) - max(a.start, b.start))
    union = max(a.end, b.end) - min(a.start, b.start)
    return inter / union if union > 0 else 0.0


def match_segments(
    predicted: Sequence[Segment], truth: Sequence[Segment], *, threshold: float = IOU_THRESHOLD
) -> list[tuple[int, int]]:
    """One-to-one (predicted index, true index) pairs: same label, IoU >= ``threshold``,
    greedily by decreasing IoU."""
    pairs = [
        (iou(p, t), i, j)
        for i, p in enumerate(predicted)
        for j, t in enumerate(truth)
        if p.label == t.label and p.end > t.start and t.end > p.start
    ]
    used_p: set[int] = set()
    used_t: set[int] = set()
    out = []
    for value, i, j in sorted(pairs, key=lambda x: -x[0]):
        if value >= threshold and i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            out.append((i, j))
    return sorted(out)


def score_timeline(
    predicted: Sequence[Segment],
    truth: Sequence[Segment],
    *,
    num_frames: int,
    fps: float,
    threshold: float = IOU_THRESHOLD,
) -> TruthScores:
    """Frame accuracy and segment precision / recall (see the module docstring)."""
    accuracy, frames = frame_accuracy(predicted, truth, num_frames=num_frames, fps=fps)
    matched = len(match_segments(predicted, truth, threshold=threshold))
    return TruthScores(
        frame_accuracy=accuracy,
        segment_precision=matched / len(predicted) if predicted else 0.0,
        segment_recall=matched / len(truth) if truth else 0.0,
        frames=frames,
        matched=matched,
        predicted=len(predicted),
        true=len(truth),
    )
