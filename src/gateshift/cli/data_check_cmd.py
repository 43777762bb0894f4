"""``gateshift data check PATH``: decode every item of a dataset (every split, or one) and list
the bad ones."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateshift.cli._options import add_output_options, parse_options
from gateshift.data.annotations import FORMATS, load_annotations
from gateshift.data.check import CheckReport, SplitsReport, check_dataset, check_splits


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check",
        help="decode every video / frame folder of a dataset and report bad items",
        description=(
            "Read every item of every split present (train, val, test; or only --split) at the "
            "frames a TSN sampler would touch, plus the first and last frame, and report per "
            "split the counts, classes, durations, frame rates and resolutions, then every bad "
            "item of all splits with its reason. Exit code 0 when anything is usable, 1 when "
            "nothing."
        ),
    )
    p.add_argument("path", help="dataset root")
    p.add_argument("--format", default="folder", choices=FORMATS, help="annotation format")
    p.add_argument(
        "--split", help="check only this split: train, val or test (default: every split present)"
    )
    p.add_argument("--segments", type=int, default=8, help="segments a clip needs (default 8)")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default 0: inline)")
    add_output_options(p, set_example="data_dir=frames")
    p.set_defaults(handler=run)


def _print_text(report: CheckReport, *, list_bad: bool = True) -> None:
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
    if report.bad and list_bad:
        print("bad items:")
        for item in report.bad:
            print(f"  {item['path']}: {item['reason']}")


def _print_splits(result: SplitsReport) -> None:
    for report in result.reports:
        _print_text(report, list_bad=False)
        print()
    for split, why in result.not_checked.items():
        print(f"{split}: not checked ({why})")
    print(f"{'split':<10} {'items':>7} {'ok':>7} {'bad':>7}")
    for report in result.reports:
        print(f"{report.split:<10} {report.items:>7} {report.ok:>7} {len(report.bad):>7}")
    print(f"all splits: items {result.items}   ok {result.ok}   bad {len(result.bad)}")
    if result.bad:
        print("bad items:")
        for item in result.bad:
            print(f"  [{item['split']}] {item['path']}: {item['reason']}")


def run(args: argparse.Namespace) -> int:
    if args.segments < 1 or args.workers < 0:
        raise ValueError("--segments must be positive and --workers not negative")
    options = parse_options(args.set)
    progress = not args.no_progress
    result: CheckReport | SplitsReport
    if args.split is None:
        result = check_splits(
            args.format,
            args.path,
            options=options,
            num_segments=args.segments,
            workers=args.workers,
            progress=progress,
        )
    else:
        dataset = load_annotations(args.format, args.path, args.split, **options)
        result = check_dataset(
            dataset, num_segments=args.segments, workers=args.workers, progress=progress
        )
    if args.json:
        print(json.dumps(result.to_dict()))
    elif isinstance(result, SplitsReport):
        _print_splits(result)
    else:
        _print_text(result)
    return 0 if result.ok > 0 else 1
