"""Prediction rows on disk, one per video: CSV or JSON Lines by the file's extension.

Rows are appended and flushed one at a time, so a run that is interrupted (Ctrl-C, a killed
job) leaves a valid file of the videos it finished, and :func:`read_done` lists those videos
for the next run to skip. A process killed mid-write can leave a last line without its newline:
:func:`read_done` cuts it off (that video is predicted again) and says so; a damaged line in the
middle is an error naming the line, since guessing there would hide lost rows.

A JSONL row is one entry of ``gateshift predict --json``: ``{"video", "top": [[[name, index,
prob], ...] per label set], "error"}``. A CSV row has the columns :data:`CSV_FIELDS`: the video,
the first label set's top-1 name and probability, the whole ``top`` as JSON (as in JSONL), and
the error (empty for a good row). The standard library's ``csv`` and ``json`` do the quoting;
an error reason is kept on one line so that every row is one line of the file.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Literal

from gateshift.deploy.predict import Prediction

log = logging.getLogger(__name__)

RowFormat = Literal["csv", "jsonl"]
CSV_FIELDS = ("video", "label", "prob", "top", "error")


def row_format(path: str | Path) -> RowFormat:
    """``csv`` or ``jsonl`` from the file name, else an error naming it."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise ValueError(f"--out {path}: the rows file must end in .csv or .jsonl")


def read_done(path: str | Path) -> set[str]:
    """The videos ``path`` already has rows for (none when it does not exist), after cutting
    off a last line that an interrupted write left without its newline."""
    path = Path(path)
    if not path.exists():
        return set()
    data = path.read_bytes()
    whole = data.rfind(b"\n") + 1
    if whole < len(data):
        log.warning("%s: the last line is cut short; it is dropped and its video redone", path)
        with path.open("r+b") as f:
            f.truncate(whole)
    try:
        lines = data[:whole].decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a predictions file (not UTF-8 text)") from None
    fmt = row_format(path)
    if fmt == "csv":
        return _csv_videos(path, lines)
    done = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            done.add(str(json.loads(line)["video"]))
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{path}:{number}: not a prediction row; fix or remove it") from None
    return done


def _csv_videos(path: Path, lines: list[str]) -> set[str]:
    if not lines:
        return set()
    rows = list(csv.reader(lines))
    if tuple(rows[0]) != CSV_FIELDS:
        raise ValueError(
            f"{path}: not a predictions file (its header is not {','.join(CSV_FIELDS)})"
        )
    done = set()
    for number, row in enumerate(rows[1:], 2):
        if len(row) != len(CSV_FIELDS):
            raise ValueError(f"{path}:{number}: not a prediction row; fix or remove it")
        done.add(row[0])
    return done


class RowWriter:
    """Appends :class:`Prediction` rows to ``path`` (created with its header when new), each
    flushed to the operating system as soon as it is written."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.format = row_format(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._file = self.path.open("a", encoding="utf-8", newline="")
        if new and self.format == "csv":
            self._file.write(_csv_line(CSV_FIELDS))
            self._file.flush()

    def write(self, prediction: Prediction) -> None:
        row = asdict(prediction)
        if row["error"] is not None:
            row["error"] = " ".join(str(row["error"]).split())  # one line per row
        if self.format == "jsonl":
            line = json.dumps(row) + "\n"
        else:
            first = prediction.top[0][0] if prediction.top else None
            line = _csv_line(
                (
                    row["video"],
                    first[0] if first else "",
                    repr(first[2]) if first else "",
                    json.dumps(row["top"]) if prediction.top else "",
                    row["error"] or "",
                )
            )
        self._file.write(line)
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        err: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _csv_line(fields: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue()
