"""``gateshift data prepare FORMAT``: official download -> normalised annotations (+ media)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from gateshift.cli._options import add_output_options, parse_options
from gateshift.data.annotations import FORMATS
from gateshift.data.prepare import prepare_dataset


def register(sub: Any) -> None:
    p = sub.add_parser(
        "prepare",
        help="turn an official download into normalised annotation files (and smaller media)",
        description=(
            "Write OUT/dataset.json and OUT/{train,val,test}.csv (read them with --format "
            "prepared). --extract-frames writes JPEG frames, --short-side alone re-encodes "
            "videos to H.264 mp4; both in parallel and resumable (finished outputs are kept)."
        ),
    )
    p.add_argument("format", choices=[f for f in FORMATS if f != "prepared"], help="source format")
    p.add_argument("--root", required=True, help="the download's root folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--extract-frames", action="store_true", help="write JPEG frame folders")
    p.add_argument("--short-side", type=int, help="resize so the short side is at most this")
    p.add_argument("--workers", type=int, default=0, help="worker processes (default 0: inline)")
    add_output_options(p, set_example="media=videos")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.workers < 0:
        raise ValueError("--workers must not be negative")
    report = prepare_dataset(
        args.format,
        args.root,
        args.out,
        extract_frames=args.extract_frames,
        short_side=args.short_side,
        workers=args.workers,
        overrides=parse_options(args.set),
        progress=not args.no_progress,
    )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        splits = ", ".join(f"{k} {v}" for k, v in report.splits.items())
        print(f"wrote {report.out}: {splits} records")
        print(f"converted {report.converted}, already done {report.skipped}, bad {len(report.bad)}")
        for item in report.bad:
            print(f"  {item['path']}: {item['reason']}")
    return 0 if any(report.splits.values()) else 1
