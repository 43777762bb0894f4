"""``gateshift demo [--out DIR]``: the main job: GSM vs TSN on the embedded dataset."""

from __future__ import annotations

import argparse
import math
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="GSM vs TSN on the embedded temporal-reasoning dataset (CPU, ~10 min)",
        description=(
            "Generate the embedded dataset (classes told apart only by the order of frames), "
            "train GSM and TSN with the same slim ResNet-18 and budget, evaluate both and save "
            "results.json, per_class.csv and learning_curves.png in --out."
        ),
    )
    p.add_argument("--out", default="demo", help="output folder (default ./demo)")
    p.add_argument("--seed", type=int, default=0, help="dataset and training seed (default 0)")
    p.add_argument("--epochs", type=int, help="training epochs per model (default 30)")
    p.add_argument(
        "--jobs",
        type=int,
        choices=(1, 2),
        help="2: train GSM and TSN at the same time, the cores split between them (the default "
        "with 2 or more cores); 1: one after the other with every core",
    )
    p.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16"),
        default="auto",
        help="training precision of both models; auto (default): bf16 autocast on CPUs with "
        "AMX (Intel Sapphire Rapids and later: 1.2-1.8x faster there, top-1 within the seeds' "
        "spread), else fp32",
    )
    p.set_defaults(handler=run)


def _pct(value: float) -> str:
    return "  n/a" if math.isnan(value) else f"{100 * value:5.1f}"


def run(args: argparse.Namespace) -> int:
    from gateshift.engine.demo import demo_precision, run_demo

    overrides: dict[str, Any] = {"train.precision": demo_precision(args.precision)}
    if args.epochs:
        overrides["train.epochs"] = args.epochs
    results = run_demo(args.out, seed=args.seed, overrides=overrides, jobs=args.jobs)
    gsm, tsn = results["gsm"], results["tsn"]
    print(f"\nGSM vs TSN on the embedded dataset ({gsm['num_videos']} validation videos)")
    print(f"{'class':<26}{'GSM %':>8}{'TSN %':>8}")
    for name in gsm["per_class"]:
        print(f"{name:<26}{_pct(gsm['per_class'][name]):>8}{_pct(tsn['per_class'][name]):>8}")
    print(f"{'top-1':<26}{_pct(gsm['top1']):>8}{_pct(tsn['top1']):>8}")
    print(
        f"{'mean class accuracy':<26}{_pct(gsm['mean_class_accuracy']):>8}"
        f"{_pct(tsn['mean_class_accuracy']):>8}"
    )
    print(f"{'precision':<26}{results['settings']['train.precision']:>16}")
    print(f"{'training time (s)':<26}{gsm['train_seconds']:>8.0f}{tsn['train_seconds']:>8.0f}")
    print(
        f"\nwritten to {args.out}/: results.json, per_class.csv, learning_curves.png "
        f"({results['seconds']:.0f} s in all)"
    )
    return 0
