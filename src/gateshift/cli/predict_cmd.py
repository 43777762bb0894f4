"""``gateshift predict RUN VIDEO...``: top-k classes of new videos."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gateshift.cli._options import (
    add_backend_options,
    add_view_options,
    chosen_backend,
    view_overrides,
)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="classify videos with a trained run",
        description=(
            "Top-k classes with probabilities for each video (file or frame folder), from the "
            "run's inference bundle alone, with the same sampling, preprocessing, views and "
            "precision as evaluate (--clips, --crops and --precision set eval.num_clips, "
            "eval.num_crops and eval.precision of the run's config). RUN may also be an .onnx "
            "file written by `gateshift export`: it then runs on ONNX Runtime from the file alone. "
            "With --out, each argument may also be a folder, searched recursively for video "
            "files and frame folders, or a list file (any file without a video extension): one "
            "path per line, relative paths taken from the list file's folder, # comments. The "
            "videos are decoded in --workers processes and scored --batch-size at a time, one "
            "row per video appended to the file (.csv or .jsonl) as it is done; a video that "
            "cannot be read is a row with the reason. Run again to resume: videos the file "
            "already has rows for are skipped."
        ),
    )
    p.add_argument("run", help="run folder (or its bundle folder), or an exported .onnx file")
    p.add_argument(
        "videos",
        nargs="+",
        metavar="VIDEO",
        help="video files or frame folders; with --out also folders to search and list files",
    )
    p.add_argument("--top-k", type=int, default=5, help="classes to show (default 5)")
    add_view_options(p)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, ... (torch backend)")
    add_backend_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--out", metavar="FILE", help="append one row per video to FILE (.csv or .jsonl), resuming"
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="with --out: decoding processes (default: the cores less one, 1 to 8; 0: none)",
    )
    p.add_argument(
        "--batch-size", type=int, default=8, metavar="B", help="with --out: videos per batch (8)"
    )
    p.add_argument("--no-progress", action="store_true", help="with --out: no progress bar")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.out:
        return _run_folder(args)
    if args.workers is not None:
        raise ValueError("--workers decodes for --out; give --out FILE")
    from gateshift.data.discover import is_frame_folder
    from gateshift.deploy.predict import predict

    for video in map(Path, args.videos):
        if video.is_dir() and not is_frame_folder(video):
            raise ValueError(
                f"{video} is a folder but not a frame folder (numbered images): to classify "
                "every video under it, give --out FILE (.csv or .jsonl)"
            )

    results = predict(args.run, args.videos, view_overrides(args), **_network_options(args))
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        for r in results:
            if r.error:
                print(f"{r.video}: cannot read ({r.error})")
                continue
            print(r.video)
            for head in r.top:
                for name, _, prob in head:
                    print(f"  {100 * prob:6.2f} %  {name}")
    return 1 if all(r.error for r in results) else 0


def _network_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options single-video and folder prediction share: backend, file, compile, top-k,
    device."""
    return {
        "backend": chosen_backend(args),
        "onnx": args.onnx,
        "compile": args.compile,
        "top_k": args.top_k,
        "device": args.device,
    }


def _run_folder(args: argparse.Namespace) -> int:
    from gateshift.deploy.predict_folder import predict_folder

    if args.json:
        raise ValueError("--json prints the predictions; with --out they go to the file")
    done = predict_folder(
        args.run,
        args.videos,
        args.out,
        view_overrides(args),
        **_network_options(args),
        workers=args.workers,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    skipped = f", {done.skipped} already in {args.out}" if done.skipped else ""
    print(
        f"{done.found} videos{skipped}; wrote {done.written} rows ({done.errors} unreadable) "
        f"to {args.out} in {done.seconds:.1f} s: {done.videos_per_s:.1f} videos/s"
    )
    return 1 if done.written and done.errors == done.written else 0
