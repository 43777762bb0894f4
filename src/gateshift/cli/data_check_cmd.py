"""``gateshift data check PATH``: decode every item of a dataset and list the bad ones."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateshift.cli._options import add_output_options, parse_options
from gateshift.data.annotations import FORMATS, load_annotations
from gateshift.data.check import CheckReport, check_dataset


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="decode every video / frame folder of a dataset and report bad items",
        description=(
            "Read every item of one split (the frames a TSN sampler would touch, plus the first "
            "and last frame) and report counts, classes, durations, frame rates, resolutions and "
            "every bad item with its reason. Exit code 0 when anything is usable, 1 when nothing."
        ),
    )
    p.add_argument("path", help="dataset root")
    p.add_argument("--format", default="folder", choices=FORMATS, help="annotation format")
    p.add_argument("--split", default="train", help="train (default), val or test")
    p.add_argument("--segments", type=int, default=8, help="segments a clip needs (default 8)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default 0: inline)")
    add_output_options(p, set_example="data_dir=frames")
    p.set_defaults(handler=run)


def _print_text(report: CheckReport) -> None:
    print(f"{report.format} {report.split} at {report.root}")
    print(f"items {report.items}   ok {report.ok}   bad {len(report.bad)}")
    for name, summary in report.summaries().items():
        if summary is not None:
            lo, mid, hi = summary["min"], summary["median"], summary["max"]
            print(f"  {name:<11} min {lo:g}   median {mid:g}   max {hi:g}")
    if report.infos:
        common = ", ".join(f"{k} ({v})" for k, v in report.resolutions().items())
        print(f"  resolutions {common}")
    sets = report.classes.values() if report.classes else []
    nested = bool(sets) and all(isinstance(v, dict) for v in sets)
    for name, counts in report.classes.items() if nested else [("classes", report.classes)]:
        if counts:
            low = min(counts, key=lambda k: counts[k])
            high = max(counts, key=lambda k: counts[k])
            print(
                f"{name}: {len(counts)} (fewest items {counts[low]} {low!r}, "
                f"most {counts[high]} {high!r})"
            )
    if report.bad:
        print("bad items:")
        for item in report.bad:
            print(f"  {item['path']}: {item['reason']}")


def run(args: argparse.Namespace) -> int:
    if args.segments < 1 or args.workers < 0:
        raise ValueError("--segments must be positive and --workers not negative")
    dataset = load_annotations(args.format, args.path, args.split, **parse_options(args.set))
    report = check_dataset(
        dataset, num_segments=args.segments, workers=args.workers, progress=not args.no_progress
    )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        _print_text(report)
    return 0 if report.ok > 0 else 1
