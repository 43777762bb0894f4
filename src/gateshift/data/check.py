"""``data check``: decode every item of a dataset and report what is there and what is broken.

Each item is probed and then decoded at the frames a TSN sampler would touch (the centres of
``num_segments`` segments) plus its first and last frame, so a truncated file is caught and not
only an unreadable header. Bad items (missing, corrupt, truncated, zero frames, fewer frames than
segments) are listed with the reader's reason; nothing is fixed or skipped silently.

:func:`check_splits` checks every split a dataset has (train, val and test where present) and
reports them together: a user checking "my dataset" means all of it. A split whose annotation
file or folder is not there is listed as absent with the reason; a split that reads the same
items as an earlier one (UCF101, HMDB51 and Diving48 read their test list for ``val``) is
checked once and noted.
"""

from __future__ import annotations

import logging
import statistics
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from gateshift.data.annotations import load_annotations
from gateshift.data.readers import make_reader
from gateshift.data.records import BadVideoError, ClipReader, VideoDataset, VideoInfo, VideoRecord

log = logging.getLogger(__name__)

_CHUNK = 16  # records per task sent to a worker process


@dataclass
class CheckReport:
    """Result of :func:`check_dataset`; ``to_dict`` is the ``--json`` output."""

    format: str
    root: str
    split: str
    items: int
    infos: list[VideoInfo] = field(default_factory=list)
    bad: list[dict[str, str]] = field(default_factory=list)
    classes: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return len(self.infos)

    def summaries(self) -> dict[str, dict[str, float] | None]:
        """min / median / max of frames, duration, frame rate, width and height of good items."""
        fields: dict[str, list[float]] = {
            "frames": [i.num_frames for i in self.infos],
            "duration_s": [i.duration_s for i in self.infos if i.duration_s is not None],
            "fps": [i.fps for i in self.infos if i.fps is not None],
            "width": [i.width for i in self.infos],
            "height": [i.height for i in self.infos],
        }
        return {k: _summary(v) for k, v in fields.items()}

    def resolutions(self, top: int = 5) -> dict[str, int]:
        counts = Counter(f"{i.width}x{i.height}" for i in self.infos)
        return dict(counts.most_common(top))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "root": self.root,
            "split": self.split,
            "items": self.items,
            "ok": self.ok,
            "bad": self.bad,
            "classes": self.classes,
            **self.summaries(),
            "resolutions": self.resolutions(),
        }


def _summary(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def probe_indices(num_frames: int, num_segments: int) -> list[int]:
    """Segment centres (the TSN evaluation frames) plus the first and the last frame."""
    step = num_frames / num_segments
    centres = {min(num_frames - 1, int(step * (k + 0.5))) for k in range(num_segments)}
    return sorted(centres | {0, num_frames - 1})


def check_record(
    reader: ClipReader, record: VideoRecord, num_segments: int
) -> tuple[VideoInfo | None, str | None]:
    """(info, None) for a good item, (info or None, reason) for a bad one."""
    try:
        info = reader.probe(record)
        if info.num_frames < num_segments:
            return None, f"too short: {info.num_frames} frames < {num_segments} segments"
        reader.read(record, probe_indices(info.num_frames, num_segments))
    except BadVideoError as err:
        return None, err.reason
    except (IndexError, OSError, ValueError) as err:  # anything else a reader refuses
        return None, f"unreadable: {err}"
    return info, None


def _check_chunk(
    reader: ClipReader, records: list[VideoRecord], num_segments: int
) -> list[tuple[VideoInfo | None, str | None]]:
    return [check_record(reader, r, num_segments) for r in records]


def _results(
    reader: ClipReader, records: list[VideoRecord], num_segments: int, workers: int
) -> Iterator[tuple[VideoInfo | None, str | None]]:
    if workers <= 0:
        for record in records:
            yield check_record(reader, record, num_segments)
        return
    chunks = [records[i : i + _CHUNK] for i in range(0, len(records), _CHUNK)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_check_chunk, reader, c, num_segments) for c in chunks]
        for future in futures:  # in order, so results line up with records
            yield from future.result()


def class_counts(dataset: VideoDataset) -> dict[str, Any]:
    """Items per class name; one mapping per label set when there are several (EPIC)."""
    sets = []
    for k, names in enumerate(dataset.classes):
        counts = Counter(r.labels[k] for r in dataset.records if len(r.labels) > k)
        sets.append({names[i] if i < len(names) else str(i): n for i, n in sorted(counts.items())})
    if len(sets) == 1:
        return sets[0]
    label_sets = dataset.meta.get("label_sets")
    names = list(label_sets) if isinstance(label_sets, list) else [str(k) for k in range(len(sets))]
    return dict(zip(names, sets, strict=False))


def check_dataset(
    dataset: VideoDataset,
    *,
    reader: ClipReader | None = None,
    num_segments: int = 8,
    workers: int = 0,
    progress: bool = True,
) -> CheckReport:
    """Decode every record of ``dataset``; see the module docstring."""
    if num_segments < 1:
        raise ValueError(f"num_segments must be positive, got {num_segments}")
    records = dataset.records
    report = CheckReport(dataset.format, str(dataset.root), dataset.split, len(records))
    report.classes = class_counts(dataset)
    if not records:
        return report
    # One decoder thread per worker process: the processes are the parallelism.
    reader = reader or make_reader(dataset, threads=1 if workers > 0 else None)
    bar = tqdm(total=len(records), desc="check", unit="item", file=sys.stderr, disable=not progress)
    with bar:
        for record, (info, reason) in zip(
            records, _results(reader, records, num_segments, workers), strict=True
        ):
            if reason is None and info is not None:
                report.infos.append(info)
            else:
                report.bad.append({"path": str(record.path), "reason": reason or "unknown"})
            bar.update()
    log.info("checked %d items: %d ok, %d bad", len(records), report.ok, len(report.bad))
    return report


SPLITS = ("train", "val", "test")


@dataclass
class SplitsReport:
    """Result of :func:`check_splits`: one :class:`CheckReport` per split present, and why the
    others were not checked; ``to_dict`` is the ``--json`` output."""

    format: str
    root: str
    reports: list[CheckReport] = field(default_factory=list)
    not_checked: dict[str, str] = field(default_factory=dict)

    @property
    def items(self) -> int:
        return sum(r.items for r in self.reports)

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.reports)

    @property
    def bad(self) -> list[dict[str, str]]:
        """Every bad item of every split, each naming its split."""
        return [{"split": r.split, **item} for r in self.reports for item in r.bad]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "root": self.root,
            "items": self.items,
            "ok": self.ok,
            "bad": self.bad,
            "splits": {r.split: r.to_dict() for r in self.reports},
            "not_checked": self.not_checked,
        }


def check_splits(
    fmt: str,
    root: str,
    *,
    options: dict[str, Any] | None = None,
    num_segments: int = 8,
    workers: int = 0,
    progress: bool = True,
) -> SplitsReport:
    """Check every split of the dataset at ``root`` in format ``fmt`` that is present.

    An absent split (its list or folder not found) is noted, not an error, unless no split is
    present at all: then the train split's error is raised. Malformed annotations are errors.
    """
    result = SplitsReport(fmt, root)
    seen: dict[tuple[str, ...], str] = {}
    errors: list[FileNotFoundError] = []
    for split in SPLITS:
        try:
            dataset = load_annotations(fmt, root, split, **(options or {}))
        except FileNotFoundError as err:
            errors.append(err)
            result.not_checked[split] = f"absent: {err}"
            continue
        result.root = str(dataset.root)
        key = tuple(str(r.path) for r in dataset.records)
        if key and key in seen:
            result.not_checked[split] = f"same items as {seen[key]}"
            continue
        seen[key] = dataset.split
        result.reports.append(
            check_dataset(dataset, num_segments=num_segments, workers=workers, progress=progress)
        )
    if not result.reports:
        raise errors[0]
    return result
