"""``gateshift predict RUN VIDEO...``: top-k classes of new videos."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from gateshift.cli._options import add_backend_options, add_view_options, view_overrides


def register(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="classify videos with a trained run",
        description=(
            "Top-k classes with probabilities for each video (file or frame folder), from the "
            "run's inference bundle alone, with the same sampling, preprocessing, views and "
            "precision as evaluate (--clips, --crops and --precision set eval.num_clips, "
            "eval.num_crops and eval.precision of the run's config). RUN may also be an .onnx "
            "file written by `gateshift export`: it then runs on ONNX Runtime from the file alone."
        ),
    )
    p.add_argument("run", help="run folder (or its bundle folder), or an exported .onnx file")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files or frame folders")
    p.add_argument("--top-k", type=int, default=5, help="classes to show (default 5)")
    add_view_options(p)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, ... (torch backend)")
    add_backend_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gateshift.deploy.predict import predict

    results = predict(
        args.run,
        args.videos,
        view_overrides(args),
        backend=args.backend,
        onnx=args.onnx,
        top_k=args.top_k,
        device=args.device,
    )
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
