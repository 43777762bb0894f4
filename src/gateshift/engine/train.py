"""Training: the papers' recipe from one CPU core to many GPUs, resumable at any moment.

``train(cfg)`` runs one process; under ``torchrun`` each process runs it and
DistributedDataParallel keeps them in step. A run folder (``cfg.out_dir``) holds the resolved
``config.yaml``, ``train.log``, ``metrics.jsonl`` and TensorBoard scalars (``tb/``),
``checkpoints/`` (see :mod:`.checkpoint`) and the inference ``bundle/``
(:mod:`gateshift.inference.bundle`). Precision, autocast and placement on the device come from
the inference layer too, so training runs and validates the model the way evaluation does.

Reproducibility: data order and augmentation depend only on (seed, epoch, index), the global
RNG (dropout) is saved in every checkpoint, and checkpoints fall on optimiser-step boundaries,
so a resumed run continues exactly where the saved one was (on CPU: the same weights).
A loss that is not finite stops the run before anything is saved; the last checkpoint stays.
``train.compile`` runs the training forward through ``torch.compile``
(:mod:`gateshift.inference.compiled`); checkpoints, the bundle and validation use the plain
module, so their keys and results are those of an eager run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from gateshift._version import __version__
from gateshift.config import Config, to_dict, to_yaml
from gateshift.data.clip_stats import typical_clip
from gateshift.data.datasets import Batch
from gateshift.engine import checkpoint as ckpt
from gateshift.engine.allocator import keep_freed_memory
from gateshift.engine.build import build_model, model_kwargs
from gateshift.engine.data import build_loader, build_split, input_spec, load_split
from gateshift.engine.distributed import DistContext, all_reduce_sum, barrier, init_distributed
from gateshift.engine.metrics import compute_metrics, public
from gateshift.engine.optim import (
    apply_partial_bn,
    build_optimizer,
    build_scheduler,
    freeze_norm_stats,
)
from gateshift.engine.scores import collect_scores
from gateshift.engine.tracking import MetricsLog
from gateshift.inference.bundle import BUNDLE_DIR, save_bundle
from gateshift.inference.compiled import compile_model
from gateshift.inference.device import place_model
from gateshift.inference.network import TorchNetwork, eval_mode
from gateshift.inference.precision import autocast, resolve_precision
from gateshift.inference.settings import Views
from gateshift.models.recognizer import Recognizer

log = logging.getLogger(__name__)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class Progress:
    """Counters saved in checkpoints: where the run is."""

    epoch: int = 0  # epoch in progress (0-based)
    batch: int = 0  # batches of that epoch done by each process
    step: int = 0  # optimiser steps done
    best: float = -math.inf
    best_epoch: int = -1


def timed(iterable: Iterable[Batch], clock: list[float]) -> Iterator[Batch]:
    """Yield from ``iterable``, adding the seconds spent waiting for each item to ``clock[0]``."""
    items = iter(iterable)
    while True:
        start = time.perf_counter()
        try:
            item = next(items)
        except StopIteration:
            return
        clock[0] += time.perf_counter() - start
        yield item


def head_loss(logits: Tensor, labels: Tensor, splits: tuple[int, ...]) -> Tensor:
    """Cross-entropy summed over label sets (one for most datasets, verb + noun for EPIC)."""
    parts = torch.split(logits.float(), list(splits), dim=1)
    return sum((F.cross_entropy(p, labels[:, i]) for i, p in enumerate(parts)), torch.zeros(()))


class Trainer:
    def __init__(
        self, cfg: Config, ctx: DistContext | None = None, *, progress_bars: bool = True
    ) -> None:
        self.cfg = cfg
        self.progress_bars = progress_bars  # off when several trainings share one console
        self.ctx = ctx or init_distributed(cfg.train.device)
        self.device = self.ctx.device
        self.run_dir = Path(cfg.out_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.dtype = resolve_precision(cfg.train.precision, self.device)
        if cfg.train.keep_freed_memory and self.device.type == "cpu":
            keep_freed_memory()  # process-wide; engine/allocator.py (ResNet-50 steps 17-30% faster)
        self.progress = Progress()
        self.bad_seen: set[str] = set()
        self.bad_count = 0
        if not self.ctx.is_main:  # one voice: the other processes only report problems
            logging.getLogger("gateshift").setLevel(logging.WARNING)
        self._prepare_run_dir()
        try:
            self._build()
        except BaseException:
            self._detach_log()
            raise
        self.metrics = MetricsLog(
            self.run_dir, tensorboard=cfg.train.tensorboard, enabled=self.ctx.is_main
        )

    # ------------------------------------------------------------------ set-up

    def _prepare_run_dir(self) -> None:
        self._log_handler: logging.Handler | None = None
        if self.ctx.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(to_yaml(self.cfg))
            # the run's own log file records INFO whatever the console shows; detached in fit()
            handler = logging.FileHandler(self.run_dir / "train.log")
            handler.setLevel(logging.INFO)
            handler.setFormatter(
                logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
            )
            package = logging.getLogger("gateshift")
            if package.getEffectiveLevel() > logging.INFO:
                package.setLevel(logging.INFO)
            package.addHandler(handler)
            self._log_handler = handler
        barrier(self.ctx)

    def _build(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        train_ann = load_split(cfg, cfg.data.train_split)
        self.classes = train_ann.classes
        splits = tuple(len(c) for c in self.classes)
        torch.manual_seed(cfg.seed)  # identical initial weights on every process
        model = build_model(cfg, splits[0] if len(splits) == 1 else splits)
        if cfg.model.partial_bn:
            apply_partial_bn(model)
        self.model: Recognizer = place_model(
            model, device=self.device, channels_last=cfg.train.channels_last
        )
        self.spec = input_spec(cfg, model.input_spec)
        self.train_split = build_split(
            cfg, cfg.data.train_split, self.spec, train=True, annotations=train_ann
        )
        # the training videos' typical length, the time scale of timelines (bundle "clips")
        train_data = self.train_split.dataset
        self.typical_clip = (
            typical_clip(train_data.records, train_data.reader) if ctx.is_main else None
        )
        self.val_split = (
            build_split(cfg, cfg.data.val_split, self.spec, train=False)
            if cfg.train.eval_every > 0
            else None
        )
        self._build_loaders()
        # the training forward; self.model stays the plain module that checkpoints save
        self.ddp: nn.Module = model
        if ctx.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(model, device_ids=ids)
        if cfg.train.compile:
            self.ddp = compile_model(self.ddp, what="training forward")
        global_batch = cfg.train.batch_size * cfg.train.accumulate * ctx.world_size
        self.optimizer = build_optimizer(model, cfg.optim, model.head, global_batch)
        self.batches_per_epoch = len(self.train_loader)
        self.steps_per_epoch = self.batches_per_epoch // cfg.train.accumulate
        self.scheduler = build_scheduler(
            self.optimizer, cfg.optim, cfg.train.epochs, self.steps_per_epoch
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)
        torch.manual_seed(cfg.seed + 1 + ctx.rank)  # dropout differs between processes

    def _build_loaders(self) -> None:
        cfg, ctx = self.cfg, self.ctx
        common: dict[str, Any] = {
            "workers": cfg.data.num_workers,
            "seed": cfg.seed,
            "rank": ctx.rank,
            "world": ctx.world_size,
            "pin_memory": self.device.type == "cuda",
        }
        self.train_loader, self.train_sampler = build_loader(
            self.train_split, batch_size=cfg.train.batch_size, train=True, **common
        )
        if len(self.train_loader) < cfg.train.accumulate:
            raise ValueError(
                f"train.batch_size={cfg.train.batch_size} x train.accumulate="
                f"{cfg.train.accumulate}: the {cfg.data.train_split} split has only "
                f"{len(self.train_split.dataset)} videos for {ctx.world_size} process(es)"
            )
        if self.val_split is not None:
            self.val_loader, self.val_sampler = build_loader(
                self.val_split, batch_size=cfg.eval.batch_size, train=False, **common
            )

    # ------------------------------------------------------------------ checkpoints

    def _state(self) -> dict[str, Any]:
        return {
            "format": ckpt.FORMAT_VERSION,
            "gateshift": __version__,
            "model_name": self.model.name,
            "num_classes": self.model.num_classes,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": ckpt.rng_state(),
            "progress": asdict(self.progress),
            "config": to_dict(self.cfg),
            "classes": self.classes,
        }

    def save_checkpoint(self, name: str) -> None:
        """``last.pt`` plus ``name`` (``epoch_NNN.pt`` / ``step_NNNNNNN.pt``), atomically."""
        if self.ctx.is_main:
            state = self._state()
            ckpt.atomic_save(state, self.ckpt_dir / name)
            ckpt.atomic_save(state, self.ckpt_dir / "last.pt")
            ckpt.prune(self.ckpt_dir, self.cfg.train.keep_checkpoints)
        barrier(self.ctx)

    def resume(self) -> bool:
        """Continue from a checkpoint per ``train.resume``; True when one was loaded."""
        setting = self.cfg.train.resume
        if setting == "never":
            if ckpt.latest_checkpoint(self.ckpt_dir) is not None:
                raise ValueError(
                    f"{self.run_dir} already holds a run; use train.resume=auto to continue it "
                    "or another out_dir"
                )
            return False
        path = ckpt.latest_checkpoint(self.ckpt_dir) if setting == "auto" else Path(setting)
        if path is None:
            return False
        payload = ckpt.load_checkpoint(path)
        ckpt.check_compatible(
            payload, model_name=self.model.name, num_classes=self.model.num_classes, path=path
        )
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.scheduler.load_state_dict(payload["scheduler"])
        self.scaler.load_state_dict(payload["scaler"])
        self.progress = Progress(**payload["progress"])
        ckpt.set_rng_state(payload["rng"])
        log.info(
            "resumed from %s (epoch %d, step %d)", path, self.progress.epoch + 1, self.progress.step
        )
        return True

    def save_bundle(self, *, validated: bool) -> None:
        if not self.ctx.is_main:
            return
        save_bundle(
            self.run_dir / BUNDLE_DIR,
            self.model,
            model_kwargs=model_kwargs(self.cfg),
            classes=self.classes,
            sampling=asdict(self.train_split.sampling),
            views=Views(num_clips=self.cfg.eval.num_clips, num_crops=self.cfg.eval.num_crops),
            config_yaml=to_yaml(self.cfg),
            extra={
                "input_spec": self.spec.to_dict(),
                "validated": validated,
                "epoch": self.progress.epoch,
                "step": self.progress.step,
                "clips": self.typical_clip.to_dict() if self.typical_clip else None,
            },
        )

    # ------------------------------------------------------------------ loop

    def note_bad(self, bad: list[tuple[str, str]]) -> None:
        """Warn once per unreadable file; count every skip."""
        self.bad_count += len(bad)
        for path, reason in bad:
            if path not in self.bad_seen:
                self.bad_seen.add(path)
                log.warning("skipping unreadable video %s: %s", path, reason)

    def _micro_step(self, batch: Batch, sync: bool) -> float:
        clips = batch.clips[:, 0].to(self.device, non_blocking=True)  # (N, T, C, H, W)
        labels = batch.labels.to(self.device, non_blocking=True)
        no_sync = getattr(self.ddp, "no_sync", None)
        context = no_sync() if (no_sync is not None and not sync) else nullcontext()
        with context:
            with autocast(self.device, self.dtype):
                logits = self.ddp(clips)
            loss = head_loss(logits, labels, self.model.head.splits)
            finite = all_reduce_sum(torch.isfinite(loss).float().reshape(1), self.ctx)
            if finite.item() < self.ctx.world_size:
                raise TrainingDiverged(
                    f"loss is {loss.item()} at epoch {self.progress.epoch + 1}, step "
                    f"{self.progress.step + 1}; stopped without saving, the last good checkpoint "
                    f"in {self.ckpt_dir} is intact (try a lower optim.lr)"
                )
            self.scaler.scale(loss / self.cfg.train.accumulate).backward()
        return float(loss.item())

    def _optimizer_step(self) -> float:
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        clip = self.cfg.optim.clip_grad_norm
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else math.inf)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.progress.step += 1
        return float(norm)

    def _done(self) -> bool:
        return 0 < self.cfg.train.max_steps <= self.progress.step

    def train_one_epoch(self) -> dict[str, float]:
        cfg, p = self.cfg, self.progress
        self.train_sampler.set_epoch(p.epoch, skip=p.batch * cfg.train.batch_size)
        self.ddp.train()
        if cfg.model.partial_bn:
            freeze_norm_stats(self.model)
        total_loss, seen, start, waited = 0.0, 0, time.perf_counter(), [0.0]
        bar = tqdm(
            timed(self.train_loader, waited),
            initial=p.batch,
            total=self.batches_per_epoch,
            desc=f"epoch {p.epoch + 1}/{cfg.train.epochs}",
            disable=not (self.ctx.is_main and self.progress_bars) or None,
        )
        for batch in bar:
            self.note_bad(batch.bad)
            p.batch += 1
            sync = p.batch % cfg.train.accumulate == 0
            if len(batch):
                total_loss += self._micro_step(batch, sync) * len(batch)
                seen += len(batch)
            if not sync:
                continue
            grad_norm = self._optimizer_step()
            rate = seen * self.ctx.world_size / max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(loss=f"{total_loss / max(seen, 1):.4f}", clips_s=f"{rate:.1f}")
            if p.step % cfg.train.log_every == 0:
                self.metrics.write(
                    "train",
                    p.step,
                    epoch=p.epoch + p.batch / self.batches_per_epoch,
                    loss=total_loss / max(seen, 1),
                    grad_norm=grad_norm,
                    lr=self.optimizer.param_groups[0]["lr"],
                    clips_per_s=rate,
                )
            if cfg.train.checkpoint_every and p.step % cfg.train.checkpoint_every == 0:
                self.save_checkpoint(f"step_{p.step:07d}.pt")
            if self._done():
                break
        elapsed = time.perf_counter() - start
        # every process saw its own share: reduce so the summary is the epoch's
        totals = all_reduce_sum(
            torch.tensor([total_loss, float(seen)], device=self.device), self.ctx
        )
        loss_sum, clips = float(totals[0]), float(totals[1])
        return {
            "loss": loss_sum / max(clips, 1.0),
            "clips": clips,
            "clips_per_s": clips / max(elapsed, 1e-9),
            "data_wait": waited[0] / max(elapsed, 1e-9),  # share of the time spent waiting for data
        }

    def validate(self) -> dict[str, Any]:
        assert self.val_split is not None
        with eval_mode(self.model):
            scores = collect_scores(
                TorchNetwork(self.model, self.device, self.dtype),
                self.val_loader,
                ctx=self.ctx,
                on_bad=self.note_bad,
                progress=self.ctx.is_main,
                total=len(self.val_loader),
            )
        return compute_metrics(scores.scores, scores.labels, self.model.head.splits)

    def _end_epoch(self, summary: dict[str, float]) -> None:
        cfg, p = self.cfg, self.progress
        epoch = p.epoch + 1
        summary["skipped_videos"] = self.bad_count
        self.metrics.write("epoch", p.step, epoch=epoch, **summary)
        log.info(
            "epoch %d: loss %.4f, %.1f clips/s (%.0f%% waiting for data), %d unreadable videos "
            "skipped",
            epoch,
            summary["loss"],
            summary["clips_per_s"],
            100 * summary["data_wait"],
            self.bad_count,
        )
        self.bad_count = 0
        improved = False
        if self.val_split is not None and (
            epoch % cfg.train.eval_every == 0 or epoch == cfg.train.epochs
        ):
            metrics = public(self.validate())
            self.metrics.write("val", p.step, epoch=epoch, **metrics)
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
            log.info("epoch %d validation: %s", epoch, shown)
            value = metrics[cfg.train.best_metric]
            if value > p.best:
                p.best, p.best_epoch, improved = value, epoch, True
        p.epoch, p.batch = epoch, 0
        self.save_checkpoint(f"epoch_{epoch:03d}.pt")
        if improved:
            if self.ctx.is_main:
                ckpt.atomic_save(self._state(), self.ckpt_dir / "best.pt")
            self.save_bundle(validated=True)
        elif p.best_epoch < 0:
            self.save_bundle(validated=False)

    def fit(self) -> Progress:
        try:
            self.resume()
            cfg, p = self.cfg, self.progress
            while p.epoch < cfg.train.epochs and not self._done():
                summary = self.train_one_epoch()
                if self._done() and p.batch < self.batches_per_epoch:
                    self.save_checkpoint(f"step_{p.step:07d}.pt")  # stopped mid-epoch
                    if p.best_epoch < 0:
                        self.save_bundle(validated=False)
                    break
                self._end_epoch(summary)
        finally:
            self.metrics.close()
            self._detach_log()
        return self.progress

    def _detach_log(self) -> None:
        if self._log_handler is not None:
            logging.getLogger("gateshift").removeHandler(self._log_handler)
            self._log_handler.close()
            self._log_handler = None


def train(cfg: Config) -> Progress:
    """Run (or resume) the training described by ``cfg``."""
    return Trainer(cfg).fit()
