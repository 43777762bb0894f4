"""``data prepare``: an official download -> normalised annotations, optionally smaller media.

Output folder ``OUT``:

- ``dataset.json``: ``{"version": 1, "source_format", "source_root", "media_root", "classes",
  "label_sets", "frame_template", "frame_start", "splits"}``. ``media_root`` is ``"."`` when the
  media were converted into ``OUT``, else the absolute source root.
- ``{split}.csv`` with columns ``path,start_frame,end_frame,num_frames,labels,video_id,
  frame_rate``: ``path`` relative to ``media_root``; 0-based ``[start_frame, end_frame)``;
  ``labels`` space-separated class indices; empty cells mean "not given".
- ``frames/<item>/000001.jpg`` (``--extract-frames``: JPEG, short side resized when asked) or
  ``videos/<item>.mp4`` (``--short-side`` alone: H.264 re-encode, one keyframe a second, frame
  count and order kept), ``<item>`` being the source path relative to the source root.

Resumable: an output that exists is finished (each is written under a temporary name and renamed
when complete, so a killed run never leaves a partial output under the final name). Bad sources
are reported and left out of the CSVs; they never stop the run. Read with format ``prepared``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from tqdm import tqdm

from gateshift.data import _convert
from gateshift.data.annotations import PREPARED_COLUMNS, load_annotations
from gateshift.data.readers import detect_frame_template
from gateshift.data.records import VideoDataset, VideoRecord

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass
class PrepareReport:
    """What :func:`prepare_dataset` did: records written per split, outputs made, bad sources."""

    out: str
    splits: dict[str, int] = field(default_factory=dict)
    converted: int = 0
    skipped: int = 0  # outputs found finished from an earlier run
    bad: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"out": self.out, "splits": self.splits, "converted": self.converted,
                "skipped": self.skipped, "bad": self.bad}  # fmt: skip


def load_splits(fmt: str, root: Path, overrides: dict[str, Any]) -> dict[str, VideoDataset]:
    """Every split of the download that has an annotation file."""
    found = {}
    for split in SPLITS:
        try:
            found[split] = load_annotations(fmt, root, split, **overrides)
        except FileNotFoundError as err:
            log.info("no %s split: %s", split, err)
    if not found:
        raise FileNotFoundError(f"{root}: no split of format {fmt!r} found")
    return found


def _plan(
    splits: dict[str, VideoDataset],
    root: Path,
    out: Path,
    extract: bool,
    short_side: int | None,
    threads: int,
) -> dict[str, _convert.Job]:
    """One conversion job per distinct source path (EPIC segments share their video)."""
    jobs: dict[str, _convert.Job] = {}
    for data in splits.values():
        template, start = _source_frames(data)
        for record in data.records:
            src = str(record.path)
            if src in jobs:
                continue
            rel = os.path.relpath(record.path, root)
            if rel.startswith(".."):
                rel = record.path.name  # media given outside the root by data_dir
            is_video = template is None
            stem = str(Path(rel).with_suffix("")) if is_video else rel
            if is_video and not extract:
                dst = out / "videos" / f"{stem}.mp4"
                jobs[src] = _convert.Job(src, str(dst), "video", short_side, threads=threads)
            else:
                dst = out / "frames" / stem
                kind: Literal["frames", "resize"] = "frames" if is_video else "resize"
                jobs[src] = _convert.Job(
                    src, str(dst), kind, short_side, template, start, threads=threads
                )
    return jobs


def _source_frames(data: VideoDataset) -> tuple[str | None, int]:
    """(template, first number) when the dataset is frame folders, else (None, 0)."""
    sample = next((r.path for r in data.records if r.path.is_dir()), None)
    if sample is None:
        return None, 0
    if data.frame_template is not None:
        return data.frame_template, data.frame_start
    return detect_frame_template(sample) or ("{:05d}.jpg", 1)


def _run_jobs(jobs: list[_convert.Job], workers: int, progress: bool) -> dict[str, _convert.Result]:
    results: dict[str, _convert.Result] = {}
    bar = tqdm(total=len(jobs), desc="prepare", unit="item", file=sys.stderr, disable=not progress)
    with bar:
        if workers <= 0:
            for job in jobs:
                results[job.src] = _convert.run_job(job)
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(_convert.run_job, job): job for job in jobs}
                for future in as_completed(futures):
                    results[futures[future].src] = future.result()
                    bar.update()
    return results


def _converted(
    record: VideoRecord, out: Path, job: _convert.Job, result: _convert.Result
) -> VideoRecord:
    """The record pointing at the converted media; frames extracted from a video whose rate
    differs from the annotation's (EPIC-55) get their frame numbers converted through time."""
    start, end, rate = record.start_frame, record.end_frame, record.frame_rate
    if job.kind == "frames" and rate and result.fps and abs(rate - result.fps) > 1e-4 * rate:
        start = round(start * result.fps / rate)
        end = None if end is None else max(start + 1, round(end * result.fps / rate))
    if job.kind == "frames":
        rate = None  # frame folders are numbered in the video's own frames now
    return replace(record, path=Path(os.path.relpath(job.dst, out)), start_frame=start,
                   end_frame=end, frame_rate=rate)  # fmt: skip


def _dataset_info(
    fmt: str, root: Path, first: VideoDataset, jobs: dict[str, _convert.Job], convert: bool
) -> dict[str, Any]:
    template, start = _source_frames(first)
    if any(j.kind == "frames" for j in jobs.values()):
        template, start = _convert.FRAME_NAME, 1
    return {
        "version": 1,
        "source_format": fmt,
        "source_root": str(root),
        "media_root": "." if convert else str(root),
        "classes": first.classes,
        "label_sets": first.meta.get("label_sets"),
        "frame_template": template,
        "frame_start": start,
        "splits": {},
    }


def _write_split(file: Path, records: list[VideoRecord], media_root: Path) -> None:
    tmp = file.with_name(file.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(PREPARED_COLUMNS)
        for r in records:
            path = r.path if not r.path.is_absolute() else os.path.relpath(r.path, media_root)
            labels = " ".join(map(str, r.labels))
            row = [path, r.start_frame, r.end_frame, r.num_frames, labels, r.video_id, r.frame_rate]
            writer.writerow(["" if cell is None else cell for cell in row])
    os.replace(tmp, file)


def prepare_dataset(
    fmt: str,
    root: str | Path,
    out: str | Path,
    *,
    extract_frames: bool = False,
    short_side: int | None = None,
    workers: int = 0,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
) -> PrepareReport:
    """Write the ``prepared`` form of the dataset at ``root`` into ``out``; see the docstring."""
    if short_side is not None and short_side < 2:
        raise ValueError(f"short side must be at least 2, got {short_side}")
    root, out = Path(os.path.abspath(root)), Path(os.path.abspath(out))
    splits = load_splits(fmt, root, dict(overrides or {}))
    out.mkdir(parents=True, exist_ok=True)
    report = PrepareReport(str(out))
    convert = extract_frames or short_side is not None
    # One decoder thread per worker process: the processes are the parallelism.
    threads = 1 if workers > 0 else 0
    jobs = _plan(splits, root, out, extract_frames, short_side, threads) if convert else {}
    results = _run_jobs(list(jobs.values()), workers, progress)
    for result in results.values():
        report.converted += result.ok and not result.skipped
        report.skipped += result.skipped
        if not result.ok:
            report.bad.append({"path": result.src, "reason": result.reason})
    info = _dataset_info(fmt, root, next(iter(splits.values())), jobs, convert)
    for name, data in splits.items():
        records = data.records
        if convert:
            records = [_converted(r, out, jobs[str(r.path)], results[str(r.path)])
                       for r in records if results[str(r.path)].ok]  # fmt: skip
        _write_split(out / f"{name}.csv", records, out if convert else root)
        info["splits"][name] = f"{name}.csv"
        report.splits[name] = len(records)
    tmp = out / "dataset.json.tmp"
    tmp.write_text(json.dumps(info, indent=1))
    os.replace(tmp, out / "dataset.json")
    return report
