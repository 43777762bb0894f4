"""Clips/s of a full training step (data + forward + backward + optimiser step), and data wait.

    python benchmarks/train_throughput.py [--steps 20] [--rounds 3]
        [--models demo demo_tsn resnet50] [--data /tmp/gs_train_bench]

Runs :class:`gateshift.engine.train.Trainer` itself (the loop ``gateshift train`` runs) on the
embedded dataset, so loading, augmentation, the model, the loss, gradient clipping and the
optimiser are all in the time. ``data wait`` is the share of the time the loop spent waiting
for the loader. A few untimed steps come first (worker start-up, allocator warm-up).

Settings: the demo recipe (``configs/demo.yaml``: slim ResNet-18 GSM, 8x56, batch 16), and
ResNet-50 GSM at 8x224 (batch 4, the embedded dataset rendered at 256 px), each in fp32 and with
bf16 autocast on CPU (``train.precision=bf16``); on a CUDA machine also the GPU with bf16
autocast. The settings take turns within every round and the table gives each one's fastest
round, so a drift of the machine's speed hits fp32 and bf16 alike; "vs fp32" is the bf16 row's
step time over its fp32 row's.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _machine import cpu_name  # benchmarks/_machine.py (scripts run from benchmarks/)

from gateshift.config import load_config
from gateshift.data.synthetic import generate
from gateshift.engine.demo import DEMO_SETTINGS
from gateshift.engine.train import Trainer

RESNET50 = {
    "model.name": "resnet50_gsm",
    "model.num_segments": 8,
    "data.format": "folder",
    "train.batch_size": 4,
    "train.channels_last": True,
    "data.num_workers": 1,
}


DEMO = {"model.name": "resnet18_gsm", **DEMO_SETTINGS}  # the settings leave the name to the demo
DEMO_TSN = {**DEMO, "model.name": "resnet18_tsn"}


def measure(settings: dict[str, Any], root: Path, steps: int, warmup: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        overrides = {**settings, "data.root": str(root), "out_dir": out, "train.resume": "never"}
        overrides.update({"train.tensorboard": False, "train.max_steps": warmup})
        cfg = load_config(None, [f"{k}={v}" for k, v in overrides.items()])
        trainer = Trainer(cfg)
        trainer.train_one_epoch()  # warm-up steps, untimed
        trainer.cfg.train.max_steps = warmup + steps
        start = time.perf_counter()
        summary = trainer.train_one_epoch()
        seconds = time.perf_counter() - start
        trainer.metrics.close()
    return {"clips_per_s": summary["clips"] / seconds, "data_wait": summary["data_wait"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps (ResNet-50: a quarter)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each setting's best counts")
    parser.add_argument(
        "--models",
        nargs="+",
        default=["demo", "resnet50"],
        choices=["demo", "demo_tsn", "resnet50"],
        help="demo_tsn: the demo recipe without a temporal module, GSM's baseline",
    )
    parser.add_argument("--data", type=Path, default=Path("/tmp/gs_train_bench"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    small, large = args.data / "demo64", args.data / "s256"
    if not (small / "train").exists():
        generate(small, seed=0)
    if not (large / "train").exists():
        generate(large, seed=0, videos_per_class=4, val_per_class=1, size=256)
    cuda = torch.cuda.is_available()
    models = {  # name -> (label, settings, data, timed steps); each runs in fp32 and in bf16
        "demo": ("demo recipe (resnet18_gsm width 24, 8x56, batch 16)", DEMO, small, args.steps),
        "demo_tsn": ("demo recipe as resnet18_tsn", DEMO_TSN, small, args.steps),
        "resnet50": ("resnet50_gsm 8x224, batch 4", RESNET50, large, args.steps // 4),
    }
    cases, fp32_of = [], {}  # fp32_of: bf16 row -> its fp32 row
    for key in args.models:
        label, settings, root, steps = models[key]
        for precision, suffix in (("fp32", "fp32"), ("bf16", "bf16 autocast")):
            on_cpu = {**settings, "train.precision": precision, "train.device": "cpu"}
            cases.append((f"{label}, {suffix}", on_cpu, root, steps))
        fp32_of[f"{label}, bf16 autocast"] = f"{label}, fp32"
    if cuda:
        gpu = {**RESNET50, "train.precision": "bf16", "train.device": "cuda",
               "train.batch_size": 16, "data.num_workers": 8}  # fmt: skip
        cases.append(("resnet50_gsm 8x224, batch 16, bf16, CUDA", gpu, large, args.steps))
    device = torch.cuda.get_device_name() if cuda else "no GPU"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads on {cpu_name()}, {device}")
    best: dict[str, dict[str, float]] = {}
    for round_ in range(args.rounds):
        for name, settings, root, steps in cases:
            result = measure(settings, root, max(steps, 2), warmup=2)
            print(f"round {round_ + 1}: {name}: {result['clips_per_s']:.2f} clips/s", flush=True)
            if name not in best or result["clips_per_s"] > best[name]["clips_per_s"]:
                best[name] = result
    print(f"fastest of {args.rounds} rounds")
    print("| setting | clips/s | data wait | vs fp32 |")
    print("|---|---|---|---|")
    for name, result in best.items():
        base = best.get(fp32_of.get(name, ""))
        ratio = f"{base['clips_per_s'] / result['clips_per_s']:.2f}x" if base else ""
        print(
            f"| {name} | {result['clips_per_s']:.2f} | {100 * result['data_wait']:.0f}% | {ratio} |"
        )


if __name__ == "__main__":
    main()
