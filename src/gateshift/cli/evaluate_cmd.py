"""``gateshift evaluate RUN [key=value ...]``: accuracies, confusion matrix, per-class table."""

from __future__ import annotations

import argparse
import json
import math
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
        "evaluate",
        help="evaluate a trained run (N clips x M crops, the papers' protocol)",
        description=(
            "Score every video of a split with the run's inference bundle, averaging logits over "
            "clips x crops; print top-1, top-5 and mean class accuracy (EPIC: verb, noun, action) "
            "and write metrics.json, per_class.csv, confusion.csv/png under RUN/eval/. "
            "Overrides change the saved config, e.g. eval.split=test data.root=/elsewhere; "
            "--clips, --crops and --precision set eval.num_clips, eval.num_crops and "
            "eval.precision."
        ),
    )
    p.add_argument("run", help="run folder (out_dir of `gateshift train`)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    add_view_options(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (torch backend)")
    add_backend_options(p)
    p.add_argument("--json", metavar="FILE", help="also write the metrics as JSON to FILE")
    p.add_argument("--save-scores", metavar="FILE", help="save video scores (.npz) for ensembles")
    p.set_defaults(handler=run)


def _pct(value: float) -> str:
    return "   n/a" if math.isnan(value) else f"{100 * value:6.2f}"


def run(args: argparse.Namespace) -> int:
    from gateshift.engine.evaluate import evaluate_run, per_class_rows

    report = evaluate_run(
        args.run,
        [*args.overrides, *view_overrides(args)],
        device=args.device,
        backend=chosen_backend(args),
        onnx=args.onnx,
        compile=args.compile,
    )
    m = report.metrics
    print(
        f"{args.run}: {m['split']} split, {m['num_videos']} videos, "
        f"{m['num_clips']} clip(s) x {m['num_crops']} crop(s)"
    )
    keys = [k for k in m if k.endswith(("top1", "top5", "mean_class_accuracy"))]
    for key in keys:
        print(f"  {key:<28}{_pct(m[key])} %")
    if m.get("skipped_videos"):
        print(f"  skipped {m['skipped_videos']} unreadable video(s) (see the warnings above)")
    for confusion, classes in zip(report.confusion, report.classes, strict=True):
        if len(classes) <= 40:
            print(f"  {'class':<32}{'videos':>7}{'accuracy %':>12}")
            for name, support, acc in per_class_rows(confusion, classes):
                print(f"  {name:<32}{support:>7}{_pct(acc):>12}")
    print(f"  written to {report.out_dir}")
    if args.json:
        Path(args.json).write_text(json.dumps(m, indent=2))
    if args.save_scores:
        report.scores.save(
            args.save_scores,
            video_ids=report.video_ids,
            classes=report.classes,
            model=str(args.run),
        )
        print(f"  scores saved to {args.save_scores}")
    return 0
