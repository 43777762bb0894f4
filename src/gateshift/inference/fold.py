"""Batch norms folded into the convolutions that feed them, for inference.

In eval mode a batch norm is a per-channel affine map, ``y = (x - mean) / sqrt(var + eps) * w
+ b``. When its input is a convolution's output and nothing else, the map folds into that
convolution's weight and bias and the batch norm becomes an identity: same outputs (to float
rounding), one pass over the activations fewer. ONNX Runtime and OpenVINO do this to every
exported graph; eager PyTorch does not, and on CPU a batch norm over a channels_last activation
at batch 1 costs as much as a small convolution (MobileNetV2 GSM: 16 % of a streamed frame's
time, see ``benchmarks/streaming.py``). ``gateshift predict``, ``timeline`` and ``stream`` run
their torch models folded; ``evaluate`` and training's validation score the model as trained.

**Which pairs fold.** They are found by running the model once on a random clip with hooks, not
by module names: a convolution's forward hook records its output tensor, a batch norm's
pre-hook records whether its input *is* one of those tensors (the same object). So a
convolution whose output first goes through a temporal module (GSM and GSF sit after the
convolution they wrap, between it and its batch norm) does not fold, and neither do the batch
norms inside a temporal module (GSM's gate normalises the module's input, which the shift also
reads). The folded weights are written into the same convolution modules (so a
:class:`~gateshift.models.temporal.insert.TemporalWrap` holding one keeps holding it, and GSM's
inference caches see new weights and recompute) with ``torch.nn.utils.fusion``'s
``fuse_conv_bn_weights``, and the batch norms are replaced by ``nn.Identity``.

**Checked, not assumed.** The logits on the random clip before and after must agree to
:data:`TOLERANCE` of their largest magnitude, or the model is restored and :class:`FoldError`
raised: a layout this rule gets wrong (a convolution output read by a batch norm and by
something else) is refused, never run with changed outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from gateshift.input_spec import InputSpec
from gateshift.models.recognizer import Recognizer
from gateshift.models.temporal.insert import TemporalWrap

# largest logit difference / largest logit magnitude. A wrong fold moves logits by a good part
# of their scale; rounding moves them by 1e-7..1e-4 in fp32 (a randomly initialised GSM amplifies
# it most), 1e-14 in fp64 (tests/inference/test_fold.py)
TOLERANCE = 1e-3


class FoldError(RuntimeError):
    """Folding changed the model's outputs; the model was restored."""


@dataclass
class _Fold:
    conv: nn.Conv2d
    bn: nn.BatchNorm2d
    parent: nn.Module
    name: str  # the batch norm's attribute in ``parent``
    weight: Tensor
    bias: Tensor | None


def _parents(model: nn.Module) -> dict[int, tuple[nn.Module, str]]:
    return {
        id(child): (parent, name)
        for parent in model.modules()
        for name, child in parent.named_children()
    }


def _temporal_members(model: nn.Module) -> set[int]:
    return {
        id(m)
        for wrap in model.modules()
        if isinstance(wrap, TemporalWrap)
        for m in wrap.temporal.modules()
    }


def _find_pairs(
    model: Recognizer, clip: Tensor
) -> tuple[list[tuple[nn.Conv2d, nn.BatchNorm2d]], Tensor]:
    """The (convolution, batch norm) pairs, each module called once in the pass, where the batch
    norm reads the convolution's output tensor itself; and the logits of ``clip``."""
    inside = _temporal_members(model)
    outputs: dict[int, tuple[nn.Conv2d, Tensor]] = {}  # the tensors are kept: ids stay unique
    pairs: dict[int, tuple[nn.Conv2d, nn.BatchNorm2d]] = {}
    calls: dict[int, int] = {}

    def after_conv(conv: nn.Module, _: object, out: Tensor) -> None:
        assert isinstance(conv, nn.Conv2d)
        calls[id(conv)] = calls.get(id(conv), 0) + 1
        outputs[id(out)] = (conv, out)

    def before_bn(bn: nn.Module, args: tuple[Tensor, ...]) -> None:
        assert isinstance(bn, nn.BatchNorm2d)
        calls[id(bn)] = calls.get(id(bn), 0) + 1
        found = outputs.get(id(args[0]))
        if found is not None and found[1] is args[0]:
            pairs[id(bn)] = (found[0], bn)

    hooks = []
    for module in model.modules():
        if id(module) in inside:
            continue
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(after_conv))
        elif isinstance(module, nn.BatchNorm2d):
            hooks.append(module.register_forward_pre_hook(before_bn))
    try:
        logits = model(clip)
    finally:
        for hook in hooks:
            hook.remove()
    # a module called more than once could meet other inputs or feed other layers: not folded
    once = [(c, b) for c, b in pairs.values() if calls[id(c)] == 1 and calls[id(b)] == 1]
    return once, logits


def fold_batchnorm(
    model: Recognizer, *, clip: Tensor | None = None, spec: InputSpec | None = None
) -> int:
    """Fold every batch norm that reads a convolution's output into that convolution, in place;
    returns how many folded. ``model`` must be in eval mode (training updates batch-norm
    statistics, which a folded model no longer has). ``clip``: the input the outputs are
    checked on, ``(1, T, C, H, W)``; default: a seeded random clip at ``spec``'s crop size
    (default: the model's input spec; a run's bundle may train at another size).

    Raises :class:`FoldError` (and leaves the model as it was) if the folded model's logits
    differ from the original's by more than :data:`TOLERANCE` of their largest magnitude.
    """
    if model.training:
        raise ValueError("fold_batchnorm works on a model in eval mode; call model.eval() first")
    first = next(model.parameters())
    if clip is None:
        spec = spec or model.input_spec
        shape = (1, model.num_segments, len(spec.mean), spec.crop_size, spec.crop_size)
        clip = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    clip = clip.to(first.device)
    # outside inference mode: folded weights made inside it would be inference tensors, which
    # GSM's caches refuse (see load_bundle)
    with torch.inference_mode(False), torch.no_grad():
        pairs, before = _find_pairs(model, clip)
        parents = _parents(model)
        folds: list[_Fold] = []
        try:
            after = _apply(pairs, parents, folds, model, clip)
        except BaseException:
            _restore(folds)
            raise
    scale = before.abs().max().clamp_min(1e-12)
    error = float((after - before).abs().max() / scale)
    if not error <= TOLERANCE:
        _restore(folds)
        raise FoldError(
            f"folding {len(folds)} batch norms into convolutions changed "
            f"{model.name or 'the model'}'s logits by {error:.2e} of their scale (> {TOLERANCE}); "
            "the model was left unfolded"
        )
    return len(folds)


def _apply(
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d]],
    parents: dict[int, tuple[nn.Module, str]],
    folds: list[_Fold],
    model: Recognizer,
    clip: Tensor,
) -> Tensor:
    """Fold ``pairs`` (recording each in ``folds`` first, so it can be undone) and return the
    folded model's logits of ``clip``."""
    for conv, bn in pairs:
        parent, name = parents[id(bn)]
        folds.append(_Fold(conv, bn, parent, name, conv.weight, conv.bias))
        fmt = (
            torch.contiguous_format
            if conv.weight.is_contiguous()
            else torch.channels_last  # place_model's other format
        )
        assert bn.running_mean is not None and bn.running_var is not None
        weight, bias = fuse_conv_bn_weights(
            conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
        )
        conv.weight = nn.Parameter(weight.detach().contiguous(memory_format=fmt))
        conv.bias = nn.Parameter(bias.detach())
        setattr(parent, name, nn.Identity())
    return model(clip)


def _restore(folds: list[_Fold]) -> None:
    for fold in folds:
        fold.conv.weight, fold.conv.bias = fold.weight, fold.bias
        setattr(fold.parent, fold.name, fold.bn)
