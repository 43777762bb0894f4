"""``gateshift diagnose RUN [key=value ...]``: top-1 with frames in order, reversed, shuffled
and one frame repeated."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gateshift.cli._options import add_view_options, view_overrides


def register(sub: Any) -> None:
    p = sub.add_parser(
        "diagnose",
        help="does the model use frame order? top-1 with frames reversed, shuffled, repeated",
        description=(
            "Score the run's validation split (eval.split if set) with the evaluation pipeline, "
            "frames in order, reversed, shuffled (a permutation per video from --seed) and the "
            "middle frame repeated T times; print the top-1 table and write diagnose.json and "
            "order_accuracy.png to --out (default RUN/diagnose/<split>/). A model that ignores "
            "time (TSN) scores the same in order and reversed."
        ),
    )
    p.add_argument("run", help="run folder (out_dir of `gateshift train`)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    add_view_options(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ...")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffled orders (default 0)")
    p.add_argument("--out", metavar="DIR", help="output folder (default RUN/diagnose/<split>)")
    p.add_argument("--json", metavar="FILE", help="also write the fractions as JSON to FILE")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gateshift.deploy.diagnose import diagnose_run, write_diagnosis

    result = diagnose_run(
        args.run, [*args.overrides, *view_overrides(args)], device=args.device, seed=args.seed
    )
    out = Path(args.out) if args.out else Path(args.run) / "diagnose" / result.split
    files = write_diagnosis(result, out)
    print(f"{args.run}: {result.model}, {result.split} split, {result.labels.shape[0]} videos")
    print(f"  {'frames':<16}{'top-1 %':>9}")
    for name, acc in result.accuracy.items():
        print(f"  {name:<16}{100 * acc:9.2f}")
    print(f"  written to {files['json']} and {files['chart']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=2))
    return 0
