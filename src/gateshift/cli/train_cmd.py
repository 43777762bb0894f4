"""``gateshift train CONFIG [key=value ...]``: train (or resume) a model."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gateshift.config import load_config


def register(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a model from a YAML config (+ key=value overrides)",
        description=(
            "Train from a YAML config under configs/ with dotted overrides, e.g. "
            "`gateshift train configs/demo.yaml optim.lr=0.02 model.num_segments=16`. "
            "Resumes from the latest checkpoint in out_dir (train.resume=auto). Several "
            "processes: `torchrun --nproc_per_node N -m gateshift train CONFIG ...`."
        ),
        epilog="Every key with its default and meaning: `gateshift config` (e.g. 'optim.*').",
    )
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    p.add_argument("--print-config", action="store_true", help="print the resolved config, exit")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gateshift.config import to_yaml
    from gateshift.engine.distributed import shutdown
    from gateshift.engine.train import TrainingDiverged, train

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(to_yaml(cfg), end="")
        return 0
    try:
        progress = train(cfg)
    except TrainingDiverged as err:
        print(f"gateshift train: {err}", file=sys.stderr)
        return 3
    finally:
        shutdown()
    if os.environ.get("RANK", "0") != "0":
        return 0  # under torchrun, the main process reports
    best = f", best {cfg.train.best_metric} {progress.best:.4f} (epoch {progress.best_epoch})"
    print(
        f"done: {progress.epoch} epochs, {progress.step} steps"
        + (best if progress.best_epoch > 0 else "")
        + f"; run folder {cfg.out_dir}"
    )
    return 0
