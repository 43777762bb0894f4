"""Evaluation of a trained run with the papers' protocol, and score ensembles.

``evaluate_run`` rebuilds the run's model from its bundle and its data from the saved config
(with overrides), scores every video of a split with ``eval.num_clips`` clips x
``eval.num_crops`` crops (logits averaged, by :mod:`gateshift.inference`), and writes under
``<run>/eval/<split>_<clips>x<crops>/``: ``metrics.json``, ``per_class.csv``, ``confusion.csv``
and ``confusion.png``. ``ensemble`` fuses saved scores of several runs by summing them, as the
GSM paper's 8+12+16+24-frame ensemble does.
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gateshift.config import Config
from gateshift.engine.data import SplitData, build_loader, build_split, input_spec
from gateshift.engine.distributed import DistContext
from gateshift.engine.metrics import compute_metrics, per_class_accuracy, public
from gateshift.engine.scores import Scores, collect_scores
from gateshift.inference.bundle import Bundle, load_bundle, load_bundle_config
from gateshift.inference.compiled import check_compilable, compile_model
from gateshift.inference.device import resolve_device
from gateshift.inference.network import Network, TorchNetwork
from gateshift.inference.onnx_runtime import RUNTIMES, load_onnx
from gateshift.inference.settings import Views, eval_overrides, inference_settings

log = logging.getLogger(__name__)


@dataclass
class EvalReport:
    metrics: dict[str, Any]  # JSON-friendly
    confusion: list[Tensor]
    classes: list[list[str]]
    scores: Scores
    video_ids: list[str]
    out_dir: Path


def _split(cfg: Config, split: str, bundle: Bundle, views: Views, run: Path) -> SplitData:
    """The split's data with the test views, checked against the classes the run learnt."""
    spec = input_spec(cfg, bundle.input_spec)  # data.crop_size / resize_size overrides apply
    data = build_split(
        cfg, split, spec, train=False, num_clips=views.num_clips, num_crops=views.num_crops
    )
    if data.annotations.classes != bundle.classes:
        raise ValueError(
            f"the {split} split's classes differ from the ones {run} was trained on; "
            "scores would be meaningless"
        )
    return data


def _onnx_network(
    run: Path, onnx: str | Path | None, bundle: Bundle, runtime: str, dtype: torch.dtype | None
) -> Network:
    """The run's exported file as the network, checked to be this run's model."""
    path = Path(onnx) if onnx is not None else run / "export" / "model.onnx"
    exported = load_onnx(path, runtime=runtime, dtype=dtype)
    if exported.classes != bundle.classes or exported.num_segments != bundle.model.num_segments:
        raise ValueError(f"{path} holds another model than {run} (classes or segments differ)")
    return exported.network


def evaluate_run(
    run: str | Path,
    overrides: Sequence[str] = (),
    *,
    num_clips: int | None = None,
    num_crops: int | None = None,
    device: str = "auto",
    precision: str | None = None,
    backend: str = "torch",
    onnx: str | Path | None = None,
    compile: bool = False,
) -> EvalReport:
    """Evaluate the run's bundle on ``eval.split`` (default: the validation split).

    ``num_clips``, ``num_crops`` and ``precision`` are the overrides ``eval.num_clips``,
    ``eval.num_crops`` and ``eval.precision`` (applied after ``overrides``); the precision
    (``auto``, ``fp32``, ``bf16``, ``fp16``) defaults to the run's ``train.precision``. The model
    runs in channels_last when the run's ``train.channels_last`` is set (as in predict).
    ``backend="onnxruntime"`` (or ``"openvino"``) scores with the exported file ``onnx``
    (default ``RUN/export/model.onnx``) instead, same data, views and metrics; results go to
    ``RUN/eval/<split>_<clips>x<crops>_<backend>/``. ``compile``: run the torch backend's model
    through ``torch.compile`` (:mod:`gateshift.inference.compiled`); same scores.
    """
    if compile:
        check_compilable(backend)
    run = Path(run)
    keys = eval_overrides(num_clips=num_clips, num_crops=num_crops, precision=precision)
    cfg = load_bundle_config(run, [*overrides, *keys])
    settings = inference_settings(cfg)
    clips, crops = settings.views.num_clips, settings.views.num_crops
    split = cfg.eval.split or cfg.data.val_split
    dev = resolve_device(device, what="device")
    dtype = settings.dtype(dev)  # before any loading: a precision this device lacks fails fast
    bundle = load_bundle(run, device=dev, channels_last=settings.channels_last)
    data = _split(cfg, split, bundle, settings.views, run)
    loader, _ = build_loader(
        data,
        batch_size=cfg.eval.batch_size,
        workers=cfg.data.num_workers,
        train=False,
        seed=cfg.seed,
    )
    ctx = DistContext(rank=0, world_size=1, local_rank=0, device=dev)
    model = compile_model(bundle.model, what="evaluation") if compile else bundle.model
    network: Network = TorchNetwork(model, dev, dtype)  # load_bundle: in eval mode
    if backend in RUNTIMES:
        network = _onnx_network(run, onnx, bundle, backend, settings.dtype(torch.device("cpu")))
    elif backend != "torch":
        raise ValueError(f"unknown backend {backend!r}; choose torch, {', '.join(RUNTIMES)}")
    scores = collect_scores(network, loader, ctx=ctx, total=len(loader))
    for path, reason in dict(scores.bad).items():
        log.warning("skipped unreadable video %s: %s", path, reason)
    full = compute_metrics(scores.scores, scores.labels, bundle.model.head.splits)
    metrics = public(full) | {
        "num_clips": clips,
        "num_crops": crops,
        "split": split,
        "skipped_videos": len(scores.bad),
    }
    confusion = full["confusion"] if isinstance(full["confusion"], list) else [full["confusion"]]
    ids = [
        data.annotations.records[int(i)].video_id or str(data.annotations.records[int(i)].path)
        for i in scores.indices
    ]
    out = run / "eval" / f"{split}_{clips}x{crops}{'' if backend == 'torch' else '_' + backend}"
    report = EvalReport(metrics, confusion, bundle.classes, scores, ids, out)
    write_report(report, bundle)
    return report


def write_report(report: EvalReport, bundle: Bundle) -> None:
    out = report.out_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report.metrics, indent=2))
    names = ["", "verb_", "noun_"] if len(report.classes) == 2 else [""]
    for head, (confusion, classes) in enumerate(zip(report.confusion, report.classes, strict=True)):
        prefix = names[head + 1] if len(report.classes) == 2 else ""
        write_per_class(out / f"{prefix}per_class.csv", confusion, classes)
        np.savetxt(out / f"{prefix}confusion.csv", confusion.numpy(), fmt="%d", delimiter=",")
        plot_confusion(out / f"{prefix}confusion.png", confusion, classes, title=bundle.model.name)


def per_class_rows(confusion: Tensor, classes: list[str]) -> list[tuple[str, int, float]]:
    """(class, videos, accuracy) per class; accuracy NaN for classes without videos."""
    recall, support = per_class_accuracy(confusion)
    return [(c, int(s), float(r)) for c, s, r in zip(classes, support, recall, strict=True)]


def write_per_class(path: Path, confusion: Tensor, classes: list[str]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", "videos", "accuracy"])
        for name, support, acc in per_class_rows(confusion, classes):
            writer.writerow([name, support, "" if support == 0 else f"{acc:.4f}"])


def plot_confusion(path: Path, confusion: Tensor, classes: list[str], *, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(classes)
    rows = confusion.double() / confusion.sum(1, keepdim=True).clamp(min=1)
    side = min(max(4.0, 0.35 * k + 2), 40.0)
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(rows.numpy(), cmap="Blues", vmin=0, vmax=1)
    if k <= 60:
        ax.set_xticks(range(k), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(k), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}: confusion (row-normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@dataclass
class SavedScores:
    path: Path
    scores: Tensor
    labels: Tensor
    video_ids: list[str]
    splits: list[int]
    model: str


def read_scores(path: str | Path) -> SavedScores:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            return SavedScores(
                path,
                torch.from_numpy(f["scores"]),
                torch.from_numpy(f["labels"]),
                [str(v) for v in f["video_ids"]],
                [int(s) for s in f["splits"]],
                str(f["model"]),
            )
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(
            f"{path} is not a scores file written by `gateshift evaluate`: {err}"
        ) from err


def ensemble(paths: Sequence[str | Path], weights: Sequence[float] | None = None) -> dict[str, Any]:
    """Sum the scores of several runs on the same videos; metrics of each and of the sum."""
    runs = [read_scores(p) for p in paths]
    if len(runs) < 2:
        raise ValueError("an ensemble needs at least two scores files")
    weights = list(weights) if weights else [1.0] * len(runs)
    if len(weights) != len(runs):
        raise ValueError(f"{len(weights)} weights for {len(runs)} scores files")
    first = runs[0]
    for other in runs[1:]:
        if other.video_ids != first.video_ids or other.splits != first.splits:
            raise ValueError(f"{other.path} scores other videos or classes than {first.path}")
        if not torch.equal(other.labels, first.labels):
            raise ValueError(f"{other.path} has other labels than {first.path}")
    fused = sum((w * r.scores.float() for w, r in zip(weights, runs, strict=True)), torch.zeros(()))
    result = {str(r.path): public(compute_metrics(r.scores, r.labels, r.splits)) for r in runs}
    result["ensemble"] = public(compute_metrics(fused, first.labels, first.splits))
    return result
