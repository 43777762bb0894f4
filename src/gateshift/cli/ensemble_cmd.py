"""``gateshift ensemble SCORES...``: fuse saved scores of several runs (sum, as the paper)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "ensemble",
        help="fuse saved scores of several runs",
        description=(
            "Sum the video scores saved by `gateshift evaluate --save-scores` for several runs "
            "on the same videos (the GSM paper's 8+12+16+24-frame ensemble) and report each "
            "run's metrics and the ensemble's."
        ),
    )
    p.add_argument("scores", nargs="+", help=".npz files from evaluate --save-scores")
    p.add_argument("--weights", type=float, nargs="+", help="one weight per file (default 1)")
    p.add_argument("--json", metavar="FILE", help="write all metrics as JSON to FILE")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gateshift.engine.evaluate import ensemble

    result = ensemble(args.scores, args.weights)
    print(f"{'scores':<48}{'top1 %':>8}{'top5 %':>8}{'mean class %':>14}")
    for name, m in result.items():
        print(
            f"{name:<48}{100 * m['top1']:>8.2f}{100 * m['top5']:>8.2f}"
            f"{100 * m['mean_class_accuracy']:>14.2f}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0
