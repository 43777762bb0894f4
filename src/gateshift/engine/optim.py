"""The optimiser of the papers' recipe: SGD with TSN's per-group multipliers, warm-up + cosine.

Parameter groups (TSN, arXiv 1608.00859, as used by GSM/GSF), each with an ``lr_mult`` and a
``decay_mult`` that are actually applied (the released code computes them and never uses them):

=============  ==================================  =====================================
group          members                              lr x / weight decay x
=============  ==================================  =====================================
weight         conv, gate and linear weights        1 / 1
bias           their biases                         ``bias_lr_mult`` / ``bias_decay_mult``
norm           BN scale and shift                   1 / ``bn_decay_mult``
head_weight    the new classifier's weight          ``head_lr_mult`` / 1
head_bias      the new classifier's bias            ``head_lr_mult * bias_lr_mult`` / bias
=============  ==================================  =====================================

Partial BN (TSN): every BatchNorm of the backbone except the first is frozen (statistics and
affine parameters); the BNs on the gate path of GSM/GSF modules stay trainable, as in the
authors' code where they are BatchNorm3d and the freeze only touches BatchNorm2d.

``optim.name=adamw`` swaps SGD for AdamW (decoupled weight decay) over the same groups: the
papers fine-tune from ImageNet with SGD, but a small net trained from scratch (the demo) learns
several times faster with AdamW.

Learning rate: ``lr`` is given for a global batch of ``lr_batch`` clips and scaled linearly with
the actual global batch; it rises from ``warmup_factor * lr`` to ``lr`` over ``warmup_epochs``,
then follows a half cosine to ``min_lr`` at the last epoch, updated every optimiser step. The
rise is linear (``warmup_shape=linear``, the papers') or exponential (``exponential``: the
factor is ``warmup_factor ** (1 - epoch / warmup_epochs)``, the same ratio every step), which
keeps the rate near its start for longer and reaches the same peak. Training from scratch, a
high rate in the first steps can leave a net at chance for good (the demo's issue-17 trials in
the README); an exponential rise lets a high peak follow a low start.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from gateshift.config import OptimConfig
from gateshift.models.temporal.insert import TemporalWrap

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_NORM_TYPES = (*_BATCH_NORMS, nn.GroupNorm, nn.LayerNorm)


def _temporal_norms(model: nn.Module) -> set[int]:
    """ids of the norm layers that live inside temporal modules (the gate's BN)."""
    ids = set()
    for module in model.modules():
        if isinstance(module, TemporalWrap):
            ids |= {id(m) for m in module.temporal.modules() if isinstance(m, _NORM_TYPES)}
    return ids


def frozen_norms(model: nn.Module) -> list[nn.Module]:
    """The BatchNorms partial BN freezes: all backbone BNs but the first."""
    inside = _temporal_norms(model)
    norms: list[nn.Module] = [
        m for m in model.modules() if isinstance(m, _BATCH_NORMS) and id(m) not in inside
    ]
    return norms[1:]


def apply_partial_bn(model: nn.Module) -> None:
    """Freeze affine parameters of :func:`frozen_norms`; call :func:`freeze_norm_stats` too."""
    for m in frozen_norms(model):
        for p in m.parameters():
            p.requires_grad_(False)


def freeze_norm_stats(model: nn.Module) -> None:
    """Put the partially frozen BNs in eval mode (after every ``model.train()``)."""
    for m in frozen_norms(model):
        m.eval()


def param_groups(
    model: nn.Module, cfg: OptimConfig, head: nn.Module | None
) -> list[dict[str, Any]]:
    """Parameters split into the groups of the module docstring, with their multipliers."""
    head_ids = {id(p) for p in head.parameters()} if head is not None else set()
    norm_ids = {
        id(p) for m in model.modules() if isinstance(m, _NORM_TYPES) for p in m.parameters()
    }
    spec = {
        "weight": (1.0, 1.0),
        "bias": (cfg.bias_lr_mult, cfg.bias_decay_mult),
        "norm": (1.0, cfg.bn_decay_mult),
        "head_weight": (cfg.head_lr_mult, 1.0),
        "head_bias": (cfg.head_lr_mult * cfg.bias_lr_mult, cfg.bias_decay_mult),
    }
    members: dict[str, list[nn.Parameter]] = {name: [] for name in spec}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_bias = name.endswith("bias") or p.dim() == 1
        if id(p) in head_ids:
            members["head_bias" if is_bias else "head_weight"].append(p)
        elif id(p) in norm_ids:
            members["norm"].append(p)
        else:
            members["bias" if is_bias else "weight"].append(p)
    return [
        {"params": members[name], "name": name, "lr_mult": lr_mult, "decay_mult": decay_mult}
        for name, (lr_mult, decay_mult) in spec.items()
        if members[name]
    ]


def scaled_lr(cfg: OptimConfig, global_batch: int) -> float:
    """``lr`` per ``lr_batch`` clips, scaled linearly to the global batch."""
    return cfg.lr * global_batch / cfg.lr_batch


def build_optimizer(
    model: nn.Module, cfg: OptimConfig, head: nn.Module | None, global_batch: int
) -> torch.optim.Optimizer:
    """SGD with momentum (the papers) or AdamW, over :func:`param_groups`."""
    base = scaled_lr(cfg, global_batch)
    groups = param_groups(model, cfg, head)
    for group in groups:
        group["lr"] = base * group["lr_mult"]
        group["weight_decay"] = cfg.weight_decay * group["decay_mult"]
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=base)
    return torch.optim.SGD(groups, lr=base, momentum=cfg.momentum)


def lr_factor(cfg: OptimConfig, epochs: int) -> Callable[[float], float]:
    """Multiplier of the base lr at a (fractional) epoch: warm-up, then half cosine."""
    warmup = min(cfg.warmup_epochs, float(epochs))

    def factor(epoch: float) -> float:
        if epoch < warmup:
            if cfg.warmup_shape == "exponential":
                return float(cfg.warmup_factor ** (1.0 - epoch / warmup))
            return cfg.warmup_factor + (1.0 - cfg.warmup_factor) * epoch / warmup
        span = max(epochs - warmup, 1e-12)
        progress = min(max((epoch - warmup) / span, 0.0), 1.0)
        floor = cfg.min_lr / cfg.lr
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, epochs: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule: step ``s`` is at epoch ``s / steps_per_epoch``."""
    factor = lr_factor(cfg, epochs)
    per_epoch = max(steps_per_epoch, 1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: factor(step / per_epoch))
