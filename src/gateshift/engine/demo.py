"""The main job on the embedded dataset: GSM against TSN, same backbone, same budget, on a CPU.

``run_demo(out)`` writes the temporal-reasoning dataset (:mod:`gateshift.data.synthetic`) to
``out/data``, trains ``resnet18_gsm`` and ``resnet18_tsn`` (a slim ResNet-18 trained from
scratch, the same settings for both, :data:`DEMO_SETTINGS`; ``configs/demo.yaml`` is the GSM
half) into ``out/gsm`` and ``out/tsn``, evaluates both on the validation split, and writes
``out/results.json``, ``out/per_class.csv`` and ``out/learning_curves.png``. Every video of a
class and its time-reversed twin look the same frame by frame, so TSN, which averages per-frame
scores, cannot tell them apart; GSM's gated shifts can. That is the papers' central claim,
shown on data the user can look at.

With two or more cores the two trainings run at the same time, each in a spawned process with
half the cores (``jobs=2``, the default there; ``jobs=1`` runs them one after the other). The
demo's slim network is too small to keep two cores busy: a ResNet-18 of width 24 at 56 px trains
at about 46 clips/s on one core of the project's AMD EPYC and only about 58 on two (every op is
small, so thread hand-offs and memory traffic dominate), so two one-core trainings side by side
took 0.79x the time of one after the other (a 10-epoch trial recipe, seed 0: 481 s vs
610 s). Each run's results are the same kind either way; the thread count only changes
floating-point summation order.

Both train in bf16 autocast on CPUs with AMX and in fp32 elsewhere (:func:`demo_precision`);
``overrides={"train.precision": ...}`` (``gateshift demo --precision``) chooses.
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import os
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from gateshift.config import Config, load_config
from gateshift.data.synthetic import generate
from gateshift.engine.evaluate import evaluate_run, per_class_rows
from gateshift.engine.tracking import read_metrics
from gateshift.engine.train import Trainer
from gateshift.inference.precision import cpu_has_amx

log = logging.getLogger(__name__)

#: the demo recipe (dotted config overrides); both models use it unchanged. A slim ResNet-18
#: (base width 24 instead of 64) trained from scratch with AdamW: the papers' SGD recipe is made
#: for fine-tuning from ImageNet weights, which cannot be downloaded here.
DEMO_SETTINGS: dict[str, Any] = {
    "model.num_segments": 8,
    "model.width": 24,
    "model.dropout": 0.0,
    "data.format": "folder",
    "data.crop_size": 56,
    "data.resize_size": 56,  # evaluation sees the whole frame, as training does
    "data.scales": "[1.0]",
    "data.num_workers": 1,
    "optim.name": "adamw",
    "optim.lr": 0.003,
    "optim.lr_batch": 16,
    "optim.weight_decay": 1e-4,
    "optim.warmup_epochs": 4.0,
    "optim.warmup_factor": 0.04,
    "optim.bias_lr_mult": 1.0,
    "train.epochs": 30,
    "train.batch_size": 16,
    "train.eval_every": 5,
    "train.log_every": 10,
    "train.device": "cpu",
    "eval.batch_size": 16,
}
#: ``gateshift demo --precision`` choices; ``auto`` is :func:`demo_precision`
DEMO_PRECISIONS = ("auto", "fp32", "bf16")


def demo_precision(setting: str = "auto") -> str:
    """The demo's ``train.precision``: ``auto`` is bf16 on CPUs with AMX, else fp32.

    Measured on a 2-core Intel Xeon with AMX (2026-12-02): the whole demo took 425 s in bf16
    against 783 s in fp32 at seed 0 (GSM 92.4% both, TSN 25.0% / 23.5%), 494 s against 592 s at
    seed 2 (GSM 88.6% / 92.4%: one rotation lost to its twin, inside fp32's spread at that seed).
    Without AMX, bf16 is not the fast path for this small network: emulated on AVX2-only CPUs
    (4.9x slower than fp32), and not measured on AVX512-BF16 CPUs without AMX.
    """
    if setting not in DEMO_PRECISIONS:
        raise ValueError(f"demo precision: {setting!r} is not one of {', '.join(DEMO_PRECISIONS)}")
    if setting != "auto":
        return setting
    return "bf16" if cpu_has_amx() else "fp32"


#: the two models the demo compares, in the order of its tables
KINDS = ("gsm", "tsn")
#: the dataset the demo generates
DEMO_DATA: dict[str, int] = {"videos_per_class": 48, "size": 64, "num_frames": 16}


def demo_config(
    kind: str, data_root: Path, out_dir: Path, *, seed: int, overrides: dict[str, Any]
) -> Config:
    settings = {**DEMO_SETTINGS, **overrides}
    dotted = [f"{k}={v}" for k, v in settings.items()]
    dotted += [
        f"model.name=resnet18_{kind}",
        f"data.root={data_root}",
        f"out_dir={out_dir}",
        f"seed={seed}",
    ]
    return load_config(None, dotted)


def _ensure_data(root: Path, seed: int, data: dict[str, int], workers: int) -> None:
    marker = root / "synthetic.json"
    if marker.is_file():
        saved = json.loads(marker.read_text())
        if saved.get("seed") == seed and all(saved.get(k) == v for k, v in data.items()):
            log.info("using the synthetic dataset already in %s", root)
            return
    generate(root, seed=seed, force=True, workers=workers, **data)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def default_jobs() -> int:
    """Train both models at once when there are at least two cores (see the module docstring)."""
    return 2 if usable_cores() >= 2 else 1


def train_and_evaluate(
    kind: str,
    data_root: Path,
    out_dir: Path,
    *,
    seed: int,
    overrides: dict[str, Any],
    threads: int | None = None,
    log_level: int | None = None,
) -> dict[str, Any]:
    """Train ``resnet18_<kind>`` with the demo recipe into ``out_dir`` and evaluate it.

    ``threads`` sets torch's intra-op threads (a training process of its own, next to the other
    model's); ``log_level`` configures this process's console logging with a ``[kind]`` prefix.
    """
    if log_level is not None:  # a spawned worker: nothing configured its logging
        logging.basicConfig(
            level=log_level,
            format=f"%(asctime)s %(levelname)s [{kind}] %(name)s: %(message)s",
            datefmt="%H:%M:%S",
        )
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    cfg = demo_config(kind, data_root, out_dir, seed=seed, overrides=overrides)
    log.info("training resnet18_%s (%d epochs) into %s", kind, cfg.train.epochs, out_dir)
    Trainer(cfg, progress_bars=log_level is None).fit()
    train_seconds = time.perf_counter() - start
    report = evaluate_run(out_dir, device="cpu")
    rows = per_class_rows(report.confusion[0], report.classes[0])
    return {
        **{k: report.metrics[k] for k in ("top1", "top5", "mean_class_accuracy", "num_videos")},
        "per_class": {name: acc for name, _, acc in rows},
        "train_seconds": round(train_seconds, 1),
    }


def _train_in_parallel(
    out: Path, *, seed: int, overrides: dict[str, Any], jobs: int
) -> dict[str, dict[str, Any]]:
    """Both trainings at once, one spawned process each, the cores split between them; a bar
    follows their epochs (read from each run's metrics file)."""
    threads = max(1, usable_cores() // jobs)
    level = logging.getLogger().getEffectiveLevel()
    epochs = int(demo_config("gsm", out, out, seed=seed, overrides=overrides).train.epochs)
    # spawn, not fork: torch's thread pools and the parent's OpenMP state do not survive a fork
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = {
            kind: pool.submit(
                train_and_evaluate,
                kind,
                out / "data",
                out / kind,
                seed=seed,
                overrides=overrides,
                threads=threads,
                log_level=level,
            )
            for kind in KINDS
        }
        log.info("training %s at once, %d thread(s) each", " and ".join(KINDS), threads)
        with tqdm(total=epochs * len(KINDS), desc="demo epochs", unit="epoch") as bar:
            while not all(f.done() for f in futures.values()):
                wait(list(futures.values()), timeout=2.0, return_when=FIRST_EXCEPTION)
                done = sum(len(read_metrics(out / k, "epoch")) for k in KINDS)
                bar.update(max(0, done - bar.n))
        return {kind: future.result() for kind, future in futures.items()}


def run_demo(
    out: str | Path,
    *,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    data: dict[str, int] | None = None,
    jobs: int | None = None,
) -> dict[str, Any]:
    """Run the whole comparison; returns what ``results.json`` holds.

    ``jobs``: 2 trains GSM and TSN at the same time in two processes (the default with two or
    more cores), 1 one after the other.
    """
    out = Path(out)
    # bf16 where it is the fast path (demo_precision), unless the caller chose
    overrides = {"train.precision": demo_precision(), **(overrides or {})}
    jobs = default_jobs() if jobs is None else jobs
    if jobs not in (1, 2):
        raise ValueError(f"jobs must be 1 or 2, got {jobs}")
    data_settings = {**DEMO_DATA, **(data or {})}
    start = time.perf_counter()
    _ensure_data(out / "data", seed, data_settings, workers=min(jobs, usable_cores()))
    results: dict[str, Any] = {
        "settings": {**DEMO_SETTINGS, **overrides},
        "data": data_settings,
        "seed": seed,
        "jobs": jobs,
    }
    if jobs == 2:
        results.update(_train_in_parallel(out, seed=seed, overrides=overrides, jobs=jobs))
    else:
        for kind in KINDS:
            results[kind] = train_and_evaluate(
                kind, out / "data", out / kind, seed=seed, overrides=overrides
            )
    results["seconds"] = round(time.perf_counter() - start, 1)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    _write_per_class(out / "per_class.csv", results)
    plot_learning_curves(out / "learning_curves.png", {k: out / k for k in KINDS})
    return results


def _write_per_class(path: Path, results: dict[str, Any]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "gsm_accuracy", "tsn_accuracy"])
        for name in results["gsm"]["per_class"]:
            writer.writerow(
                [
                    name,
                    f"{results['gsm']['per_class'][name]:.4f}",
                    f"{results['tsn']['per_class'][name]:.4f}",
                ]
            )


def plot_learning_curves(path: Path, runs: dict[str, Path]) -> None:
    """Validation top-1 and training loss per epoch for each run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for name, run in runs.items():
        val = read_metrics(run, "val")
        epochs = read_metrics(run, "epoch")
        acc_ax.plot(
            [r["epoch"] for r in val],
            [100 * r["top1"] for r in val],
            marker="o",
            label=name.upper(),
        )
        loss_ax.plot(
            [r["epoch"] for r in epochs],
            [r["loss"] for r in epochs],
            marker="o",
            label=name.upper(),
        )
    acc_ax.set(
        xlabel="epoch",
        ylabel="validation top-1 (%)",
        ylim=(0, 100),
        title="accuracy on the embedded dataset",
    )
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="training loss")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
