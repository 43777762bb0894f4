"""Optimiser groups, multipliers, partial BN and the warm-up + cosine schedule."""

from __future__ import annotations

import math

import pytest
import torch

import gateshift
from gateshift.config import OptimConfig
from gateshift.engine.optim import (
    apply_partial_bn,
    build_optimizer,
    build_scheduler,
    freeze_norm_stats,
    frozen_norms,
    lr_factor,
    scaled_lr,
)


def _model() -> gateshift.models.Recognizer:
    return gateshift.create_model("resnet18_gsm", num_classes=4, num_segments=2)


def test_groups_and_multipliers() -> None:
    model = _model()
    cfg = OptimConfig(lr=0.01, lr_batch=32, weight_decay=5e-4, head_lr_mult=5.0)
    opt = build_optimizer(model, cfg, model.head, global_batch=32)
    groups = {g["name"]: g for g in opt.param_groups}
    assert set(groups) == {"weight", "bias", "norm", "head_weight", "head_bias"}
    by_id = {id(p): name for name, g in groups.items() for p in g["params"]}
    named = dict(model.named_parameters())
    assert by_id[id(named["backbone.conv1.weight"])] == "weight"
    gate = "backbone.layer1.0.conv2.temporal"
    assert by_id[id(named[f"{gate}.conv3D.weight"])] == "weight"
    assert by_id[id(named[f"{gate}.conv3D.bias"])] == "bias"
    assert by_id[id(named[f"{gate}.bn.weight"])] == "norm"
    assert by_id[id(named["backbone.bn1.bias"])] == "norm"
    assert by_id[id(named["head.fc.weight"])] == "head_weight"
    assert by_id[id(named["head.fc.bias"])] == "head_bias"
    assert len(by_id) == len(named)  # every parameter in exactly one group
    expected = {  # (lr, weight decay) actually set on the optimiser
        "weight": (0.01, 5e-4), "bias": (0.02, 0.0), "norm": (0.01, 0.0),
        "head_weight": (0.05, 5e-4), "head_bias": (0.1, 0.0),
    }  # fmt: skip
    for name, (lr, wd) in expected.items():
        assert groups[name]["lr"] == pytest.approx(lr)
        assert groups[name]["weight_decay"] == pytest.approx(wd)


def test_weight_decay_is_applied_per_group() -> None:
    model = _model()
    opt = build_optimizer(model, OptimConfig(weight_decay=0.1, momentum=0.0), model.head, 32)
    bias = dict(model.named_parameters())["backbone.layer1.0.conv2.temporal.conv3D.bias"]
    weight = dict(model.named_parameters())["backbone.conv1.weight"]
    with torch.no_grad():
        bias.fill_(1.0)
    before_w, before_b = weight.detach().clone(), bias.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # only weight decay moves parameters
    opt.step()
    assert torch.equal(bias, before_b)  # no decay on biases
    torch.testing.assert_close(weight, before_w * (1 - 0.01 * 0.1))


def test_lr_scales_with_global_batch() -> None:
    assert scaled_lr(OptimConfig(lr=0.01, lr_batch=32), 8) == pytest.approx(0.0025)
    assert scaled_lr(OptimConfig(lr=0.01, lr_batch=32), 128) == pytest.approx(0.04)


def test_partial_bn_freezes_all_backbone_bns_but_the_first() -> None:
    model = _model()
    apply_partial_bn(model)
    named = dict(model.named_parameters())
    assert named["backbone.bn1.weight"].requires_grad
    assert not named["backbone.layer1.0.bn1.weight"].requires_grad
    assert named["backbone.layer1.0.conv2.temporal.bn.weight"].requires_grad  # gate BN stays
    model.train()
    freeze_norm_stats(model)
    assert model.backbone.bn1.training and not model.backbone.layer1[0].bn1.training
    assert len(frozen_norms(model)) == 19  # 20 backbone BNs in ResNet-18, the first stays
    groups = build_optimizer(model, OptimConfig(), model.head, 32).param_groups
    trainable = {id(p) for g in groups for p in g["params"]}
    assert id(named["backbone.layer1.0.bn1.weight"]) not in trainable


def _formula(epoch: float, lr: float = 0.01, warm: float = 10, total: float = 60) -> float:
    if epoch < warm:
        return lr * (0.1 + 0.9 * epoch / warm)
    return lr * 0.5 * (1 + math.cos(math.pi * (epoch - warm) / (total - warm)))


@pytest.mark.parametrize("epoch", [0, 2.5, 5, 9.75, 10, 22.5, 35, 47.5, 59.5, 60])
def test_schedule_matches_the_formula(epoch: float) -> None:
    assert 0.01 * lr_factor(OptimConfig(), 60)(epoch) == pytest.approx(_formula(epoch))


def test_exponential_warmup_rises_by_the_same_ratio_each_step_to_the_same_peak() -> None:
    cfg = OptimConfig(warmup_epochs=4, warmup_factor=0.04, warmup_shape="exponential")
    factor, linear = (
        lr_factor(cfg, 10),
        lr_factor(OptimConfig(warmup_epochs=4, warmup_factor=0.04), 10),
    )
    assert factor(0) == pytest.approx(0.04) and factor(4) == pytest.approx(1.0)
    assert factor(2) == pytest.approx(0.2)  # the geometric mean of 0.04 and 1
    ratios = [factor(e + 0.5) / factor(e) for e in (0, 1, 2, 3)]
    assert max(ratios) == pytest.approx(min(ratios))
    assert all(factor(e) < linear(e) for e in (0.5, 1, 2, 3.5))  # lower all the way up
    assert [factor(e) for e in (4, 7, 10)] == pytest.approx([linear(e) for e in (4, 7, 10)])


def test_scheduler_steps_per_iteration_with_multipliers() -> None:
    model = _model()
    cfg = OptimConfig()
    opt = build_optimizer(model, cfg, model.head, global_batch=32)
    sched = build_scheduler(opt, cfg, epochs=60, steps_per_epoch=4)
    seen = {}
    for step in range(60 * 4 + 1):
        seen[step] = {g["name"]: g["lr"] for g in opt.param_groups}
        opt.step()
        sched.step()
    for epoch in (0, 5, 10, 35, 60):
        assert seen[epoch * 4]["weight"] == pytest.approx(_formula(epoch))
        assert seen[epoch * 4]["bias"] == pytest.approx(2 * _formula(epoch))
    assert seen[22]["weight"] == pytest.approx(_formula(5.5))
