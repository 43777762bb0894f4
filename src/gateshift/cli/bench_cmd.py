"""``gateshift bench data PATH``: clips/s of the training input pipeline on a dataset."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from gateshift.cli._options import add_output_options, parse_options
from gateshift.data.annotations import FORMATS, load_annotations
from gateshift.data.bench import bench_pipeline
from gateshift.input_spec import CAFFE_BGR_224, IMAGENET_RGB_224

SPECS = {"imagenet": IMAGENET_RGB_224, "caffe": CAFFE_BGR_224}


def register(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmarks: bench data")
    bench_sub = p.add_subparsers(dest="bench_command", required=True, metavar="BENCH_COMMAND")
    d = bench_sub.add_parser(
        "data",
        help="clips/s of the training pipeline (read + sample + augment + normalise)",
        description=(
            "Time the training input pipeline on one split of a dataset: read, TSN segment "
            "sampling, multi-scale crop, flip and normalisation, exactly as `gateshift train` "
            "runs them. With --workers 0 (default) the time per clip is split into reading "
            "and transforming."
        ),
    )
    d.add_argument("path", help="dataset root")
    d.add_argument("--format", default="folder", choices=FORMATS, help="annotation format")
    d.add_argument("--split", default="train", help="split to read (default train)")
    d.add_argument("--segments", type=int, default=8, help="frames per clip (default 8)")
    d.add_argument("--size", type=int, default=224, help="crop size (default 224)")
    d.add_argument("--workers", type=int, default=0, help="loader workers (default 0: inline)")
    d.add_argument("--clips", type=int, default=200, help="clips timed (default 200)")
    d.add_argument("--warmup", type=int, default=10, help="untimed clips first (default 10)")
    d.add_argument(
        "--spec",
        default="imagenet",
        choices=sorted(SPECS),
        help="normalisation: imagenet (ResNet, MobileNetV2) or caffe (BGR 0-255, Inception)",
    )
    add_output_options(d, set_example="data_dir=frames")
    d.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.size < 1:
        raise ValueError(f"--size must be positive, got {args.size}")
    spec = dataclasses.replace(
        SPECS[args.spec], crop_size=args.size, resize_size=max(args.size, args.size * 8 // 7)
    )
    dataset = load_annotations(args.format, args.path, args.split, **parse_options(args.set))
    result = bench_pipeline(
        dataset,
        spec,
        num_segments=args.segments,
        workers=args.workers,
        clips=args.clips,
        warmup=args.warmup,
        progress=not (args.no_progress or args.json),
    )
    if args.json:
        print(json.dumps({"path": str(dataset.root), "split": args.split, **result.to_dict()}))
        return 0
    print(f"{dataset.format} {args.split} at {dataset.root}: {len(dataset.records)} items")
    print(
        f"{result.clips_per_s:.1f} clips/s ({result.clips} clips of {result.segments} frames at "
        f"{result.size} px, {result.workers} workers, {result.seconds:.2f} s)"
    )
    if result.read_ms is not None and result.transform_ms is not None:
        per_clip = 1000 / result.clips_per_s
        other = per_clip - result.read_ms - result.transform_ms
        print(
            f"per clip: {per_clip:.2f} ms = read {result.read_ms:.2f} ms + transform "
            f"{result.transform_ms:.2f} ms + other {other:.2f} ms"
        )
    if result.bad:
        print(f"{result.bad} unreadable items skipped (see `gateshift data check`)")
    return 0
